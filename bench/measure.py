"""Measuring child processes: wall time, peak RSS, a JSON result; interleaved repeats; medians.

Every measured tool runs in its own child process, so its peak RSS is its own. The parent reads it from the
child's resource usage (``os.wait4``: ``ru_maxrss`` of the child and of any descendant it waited for).

The parent must stay small: on Linux a child's ``ru_maxrss`` starts at the RSS of the process it was forked
from (the high-water mark survives ``exec``), so a parent holding pyarrow or data would inflate every figure.
This module and the orchestration import the standard library only.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULT_ENV = "BENCH_RESULT_FILE"  # where a child writes its JSON result (see write_result)


class ChildFailed(RuntimeError):
    """A measured child exited non-zero (or timed out); the message ends with the tail of its log."""


@dataclass
class Run:
    """One measured child process."""

    wall_s: float
    peak_rss_mib: float
    returncode: int
    result: dict[str, Any] = field(default_factory=dict)
    log: Path | None = None


def write_result(data: Mapping[str, Any]) -> None:
    """Called in a child: hand ``data`` (JSON-serialisable) back to the parent."""
    path = os.environ.get(RESULT_ENV)
    if path:
        Path(path).write_text(json.dumps(data, default=str))
    else:
        print(json.dumps(data, default=str))


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def run_child(
    command: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    log: Path | None = None,
    timeout: float = 1800.0,
    cwd: Path = ROOT,
    check: bool = True,
) -> Run:
    """Run ``command``, wait for it with ``os.wait4``; wall seconds, peak RSS (MiB) and its JSON result.

    The child's stdout and stderr go to ``log`` (a temp file by default). It may write a JSON result to the
    file named by ``$BENCH_RESULT_FILE`` (see :func:`write_result`). A child still running after ``timeout``
    seconds is killed with its whole process group.
    """
    if log is None:
        fd, name = tempfile.mkstemp(prefix="bench-child-", suffix=".log")
        os.close(fd)
        log = Path(name)
    log.parent.mkdir(parents=True, exist_ok=True)
    fd, result_name = tempfile.mkstemp(prefix="bench-result-", suffix=".json")
    os.close(fd)
    result_path = Path(result_name)
    child_env = dict(os.environ if env is None else env)
    child_env[RESULT_ENV] = str(result_path)
    child_env.setdefault("PYTHONUNBUFFERED", "1")
    timed_out = threading.Event()
    with log.open("ab") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(
            list(command), env=child_env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )

        def kill() -> None:
            timed_out.set()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)

        timer = threading.Timer(timeout, kill)
        timer.daemon = True
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    try:
        text = result_path.read_text()
        result = json.loads(text) if text.strip() else {}
    except (OSError, ValueError):
        result = {}
    finally:
        result_path.unlink(missing_ok=True)
    run = Run(wall_s=wall, peak_rss_mib=usage.ru_maxrss / 1024, returncode=proc.returncode, result=result, log=log)
    if check and (proc.returncode != 0 or timed_out.is_set()):
        why = f"timed out after {timeout:.0f} s" if timed_out.is_set() else f"exit code {proc.returncode}"
        raise ChildFailed(f"{' '.join(map(str, command[:4]))} ... {why}; log {log}:\n{_tail(log)}")
    return run


def python_child(module: str, *args: str, python: str | Path = sys.executable) -> list[str]:
    """The command line of ``python -m module args...``."""
    return [str(python), "-m", module, *args]


# --- repeats ----------------------------------------------------------------------------------------------------


def interleave(
    tools: Mapping[str, Callable[[int], dict[str, Any]]],
    repeats: int,
    *,
    progress: Callable[[str], None] | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Run every tool once per round, in the same order each round (A B C, A B C, ...): slow drifts of the
    machine (page cache, other load) then touch every tool alike. Each callable gets the round number and
    returns its figures; the result maps tool name → one dict per round."""
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in tools}
    for round_no in range(repeats):
        for name, fn in tools.items():
            started = time.perf_counter()
            figures = fn(round_no)
            results[name].append(figures)
            if progress is not None:
                progress(f"  round {round_no + 1}/{repeats} {name}: {time.perf_counter() - started:.1f} s")
    return results


@dataclass
class Summary:
    """Median and range of one figure over the repeats."""

    median: float
    min: float
    max: float
    runs: list[float]

    def as_dict(self) -> dict[str, Any]:
        return {"median": self.median, "min": self.min, "max": self.max, "runs": self.runs}


def summarize(values: Sequence[float]) -> Summary:
    vals = [float(v) for v in values]
    if not vals:
        nan = float("nan")
        return Summary(nan, nan, nan, [])
    return Summary(statistics.median(vals), min(vals), max(vals), vals)


def summarize_runs(runs: Sequence[Mapping[str, Any]]) -> dict[str, Summary]:
    """Per numeric key of the round dicts, its summary (keys absent from a round are skipped)."""
    keys: list[str] = []
    for r in runs:
        keys += [
            k for k, v in r.items() if isinstance(v, int | float) and not isinstance(v, bool) and k not in keys
        ]
    return {k: summarize([r[k] for r in runs if k in r]) for k in keys}


@dataclass
class Slowdown:
    """How much slower B is than A, in %, from alternating runs: the ratio of the medians, and a bootstrap
    interval of it."""

    pct: float
    low_pct: float
    high_pct: float
    pairs: int


def paired_slowdown(
    base: Sequence[float], other: Sequence[float], *, confidence: float = 0.9, resamples: int = 2000, seed: int = 0
) -> Slowdown:
    """Slowdown of ``other`` against ``base`` (``100 × (median(other) / median(base) − 1)``), with the
    ``confidence`` interval of a paired bootstrap.

    ``base[i]`` and ``other[i]`` ran one after the other, so pairs are resampled whole: a slow stretch of the
    machine weighs on both sides of the pairs it touched. The seed is fixed, so the same runs always give the
    same interval (the report can be rendered again from the JSON).
    """
    pairs = min(len(base), len(other))
    if pairs == 0:
        nan = float("nan")
        return Slowdown(nan, nan, nan, 0)
    a, b = [float(x) for x in base[:pairs]], [float(x) for x in other[:pairs]]

    def pct(indices: Sequence[int]) -> float:
        return 100 * (statistics.median(b[i] for i in indices) / statistics.median(a[i] for i in indices) - 1)

    rng = random.Random(seed)
    draws = sorted(pct([rng.randrange(pairs) for _ in range(pairs)]) for _ in range(resamples))
    tail = (1 - confidence) / 2
    low, high = draws[int(tail * (resamples - 1))], draws[int((1 - tail) * (resamples - 1))]
    return Slowdown(pct(range(pairs)), low, high, pairs)
