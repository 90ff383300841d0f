"""Benchmark of the generation flow on the no-LLM example, with and without checkpoints to the embedded Hub.

    python -m bench.generation [--records 10000 100000] [--batch-size 1000] [--interval 1] [--repeat 1]
        [--heartbeats] [--json FILE]

The parent serves two embedded Hubs (``python -m localhub``, each its own process): one at normal priority, as
in the other scenarios, and one in the background (niceness +10, like the checkpoint's commit worker). It runs the
measurements in a child process whose environment points ``huggingface_hub`` at the first (``HF_ENDPOINT``,
``HF_HUB_DISABLE_XET=1`` must be set before the library is imported). The child warms Prefect's ephemeral API up
with a small run, then, for each size, runs ``generate_dataset`` (wall time of the whole flow run, Prefect
included):

- ``plain``: no checkpoint: records/s;
- ``checkpoint``: checkpoints every ``--interval`` seconds to a branch of a Hub repo, ``final_flush=False``:
  what checkpointing costs while generating, with the Hub's own work (receiving, hashing, storing) competing
  for the same cores at the same priority;
- ``checkpoint-bg-hub``: the same against the background Hub, whose work then takes only the CPU the run leaves:
  closer to what a user pays on huggingface.co, where the Hub's work is not on the user's cores. (The child
  switches Hubs by setting ``huggingface_hub.constants.ENDPOINT`` before the run, which is what ``HF_ENDPOINT``
  sets at import.)
- ``checkpoint+flush``: the same as ``checkpoint`` with the final flush (which waits for the interval to elapse
  since the last commit, by design: at most one commit per interval).

It also times the engine alone (``write_batch`` in a loop, no Prefect) to show the orchestration overhead. It
prints a Markdown table; this is a benchmark, not a test.

Flow runs are made as ``python -m flows.generate`` makes them (``flows.terminal_run``: no flow-run heartbeats).
With heartbeats (``--heartbeats``, what a flow called from Python does), Prefect joins its heartbeat thread,
which sleeps in whole seconds, at the end of the run: a 3-4 s run then measures as a whole number of seconds
after the heartbeat's start, and a 0.1 s difference can show up as 0 or as 1 s (33 %). ``--repeat N`` runs the
four modes N times, interleaved (plain, checkpoint, checkpoint-bg-hub, flush, plain, ...), and reports medians;
each row also holds every run and, per checkpoint commit, its duration in the committer thread.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "multilingual_greetings.yaml"
BENCH_USER, BENCH_TOKEN = "bench", "hf_bench_token"
BACKGROUND_NICENESS = 10  # the background Hub's niceness: the checkpoint worker's (see checkpoint_worker.NICENESS)
MODES = ("plain", "checkpoint", "checkpoint-bg-hub", "checkpoint+flush")


def _cpu_seconds(pid: int) -> float:
    """CPU seconds used so far by process ``pid`` (0 where /proc is missing)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def _child(args: argparse.Namespace) -> int:
    """Runs inside the child process, with HF_ENDPOINT already set (the normal-priority Hub)."""
    from huggingface_hub import HfApi, constants
    from pydantic import SecretStr

    import flows.generate as generate_module
    from flows.generate import generate_dataset
    from flows.terminal_run import terminal_run
    from tasks.generation.batch import write_batch
    from tasks.generation.checkpoint import Checkpointer, CheckpointTarget
    from tasks.generation.plan import get_plan
    from tasks.generation.source import from_config

    class _Recorded(Checkpointer):  # the flow's own checkpointer, kept so its commits and waits can be reported
        def __init__(self, *a: Any, **kw: Any) -> None:
            super().__init__(*a, **kw)
            self.waits = {"prepare": 0.0, "close": 0.0}
            checkpointers.append(self)

        def prepare(self, **kw: Any) -> Any:
            started = time.perf_counter()
            try:
                return super().prepare(**kw)
            finally:
                self.waits["prepare"] += time.perf_counter() - started

        def close(self, **kw: Any) -> Any:
            started = time.perf_counter()
            try:
                return super().close(**kw)
            finally:
                self.waits["close"] += time.perf_counter() - started

    checkpointers: list[_Recorded] = []
    generate_module.Checkpointer = _Recorded  # type: ignore[misc]

    def run_flow(*a: Any, **kw: Any) -> Any:
        with nullcontext() if args.heartbeats else terminal_run():
            return generate_dataset(*a, **kw)

    work = Path(args.work)
    config = from_config(EXAMPLE)
    run_flow(config, 2000, work / "warmup", batch_size=args.batch_size)  # starts the ephemeral API
    # mode -> (Hub URL, Hub process id)
    hubs = {mode: (constants.ENDPOINT, args.hub_pid) for mode in MODES}
    hubs["checkpoint-bg-hub"] = (args.background_hub, args.background_hub_pid)
    rows: list[dict[str, Any]] = []
    for n in args.records:
        plan = get_plan(config)
        engine_dir = work / f"engine-{n}"
        started = time.perf_counter()
        for i in range(-(-n // args.batch_size)):
            write_batch(plan, engine_dir, seed=0, batch_index=i, num_rows=min(args.batch_size, n - i * args.batch_size))
        engine = time.perf_counter() - started
        shutil.rmtree(engine_dir)

        results: dict[str, list[float]] = {mode: [] for mode in MODES}
        commits: dict[str, list[int]] = {mode: [] for mode in MODES}
        commit_s: dict[str, list[list[float]]] = {mode: [] for mode in MODES}
        cpu: dict[str, list[tuple[float, float]]] = {mode: [] for mode in MODES}  # (this process, the Hub)
        waits: dict[str, list[tuple[float, float]]] = {mode: [] for mode in MODES}  # (prepare, close) in the flow
        for round_no in range(args.repeat):
            for mode in MODES:
                out = work / f"{mode.replace('+', '-')}-{n}"
                checkpoint = None
                url, hub_pid = hubs[mode]
                constants.ENDPOINT = url  # where the flow's checkpointer (and its worker) commit
                if mode != "plain":
                    repo = f"{BENCH_USER}/gen-bench-{n}-{mode.replace('+', '-')}-{round_no}"
                    HfApi(endpoint=url, token=BENCH_TOKEN).create_repo(repo, repo_type="dataset", exist_ok=True)
                    checkpoint = CheckpointTarget(
                        repo_id=repo,
                        branch="checkpoint",
                        interval_seconds=args.interval,
                        token=SecretStr(BENCH_TOKEN),
                        final_flush=mode == "checkpoint+flush",
                    )
                checkpointers.clear()
                cpu_before, hub_before = time.process_time(), _cpu_seconds(hub_pid)
                started = time.perf_counter()
                result = run_flow(config, n, out, batch_size=args.batch_size, checkpoint=checkpoint, resume=False)
                results[mode].append(time.perf_counter() - started)
                hub_cpu = _cpu_seconds(hub_pid) - hub_before
                cpu[mode].append((round(time.process_time() - cpu_before, 3), round(hub_cpu, 3)))
                commits[mode].append(len(result.checkpoint_commits))
                commit_s[mode].append([round(c.seconds, 4) for k in checkpointers for c in k.commits])
                waits[mode].append(
                    (
                        round(sum(k.waits["prepare"] for k in checkpointers), 3),
                        round(sum(k.waits["close"] for k in checkpointers), 3),
                    )
                )
                assert result.num_records == n
                shutil.rmtree(out)
                print(
                    f"  {n:,} {mode}: {results[mode][-1]:.2f} s, CPU s (generation, Hub) {cpu[mode][-1]}, "
                    f"prepare/close waits (s) {waits[mode][-1]}, commits (s) {commit_s[mode][-1]}",
                    file=sys.stderr,
                )
        median = {mode: statistics.median(results[mode]) for mode in MODES}
        rows.append(
            {
                "records": n,
                "engine_s": engine,
                "plain_s": median["plain"],
                "checkpoint_s": median["checkpoint"],
                "flush_s": median["checkpoint+flush"],
                "checkpoint_bg_hub_s": median["checkpoint-bg-hub"],
                "commits": round(statistics.median(commits["checkpoint"])),
                "commits_flush": round(statistics.median(commits["checkpoint+flush"])),
                "heartbeats": args.heartbeats,
                "runs": results,
                "commit_seconds": commit_s,
                "cpu_seconds": cpu,
                "prepare_close_seconds": waits,
            }
        )
    Path(args.json_out).write_text(json.dumps(rows))
    return 0


def _table(rows: list[dict[str, Any]], interval: float) -> str:
    lines = [
        f"| records | engine only rec/s | flow rec/s | checkpoint every {interval:g}s: rec/s (slowdown, commits) "
        "| the same, Hub in the background: rec/s (slowdown) | + final flush: s (slowdown, commits) |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        n = r["records"]
        slow = 100 * (r["checkpoint_s"] / r["plain_s"] - 1)
        slow_bg = 100 * (r["checkpoint_bg_hub_s"] / r["plain_s"] - 1)
        slow_flush = 100 * (r["flush_s"] / r["plain_s"] - 1)
        lines.append(
            f"| {n:,} | {n / r['engine_s']:,.0f} | {n / r['plain_s']:,.0f} ({r['plain_s']:.1f} s) "
            f"| {n / r['checkpoint_s']:,.0f} ({slow:+.1f} %, {r['commits']}) "
            f"| {n / r['checkpoint_bg_hub_s']:,.0f} ({slow_bg:+.1f} %) "
            f"| {r['flush_s']:.1f} ({slow_flush:+.1f} %, {r['commits_flush']}) |"
        )
    return "\n".join(lines)


@contextmanager
def _served_hub(data_dir: Path, niceness: int) -> Iterator[tuple[str, int]]:
    """Serve an embedded Hub in its own process at ``niceness`` (added to this process's); yield its URL and pid."""

    def lower_priority() -> None:
        os.nice(niceness)

    command = [sys.executable, "-m", "localhub", "--port", "0", "--data-dir", str(data_dir),
               "--user", f"{BENCH_USER}:{BENCH_TOKEN}"]  # fmt: skip
    hub = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, text=True, preexec_fn=lower_priority if niceness else None
    )
    try:
        assert hub.stdout is not None
        first_line = hub.stdout.readline()  # "localhub serving at http://127.0.0.1:PORT (...)"
        found = re.search(r"serving at (\S+)", first_line)
        if found is None:
            raise RuntimeError(f"the embedded Hub did not start (exit code {hub.poll()}): {first_line!r}")
        yield found.group(1), hub.pid
    finally:
        hub.terminate()
        hub.wait(timeout=30)


def main(argv: list[str] | None = None) -> int:
    """Parse arguments; as the parent, serve the Hubs and start the child; print the table."""
    parser = argparse.ArgumentParser(prog="python -m bench.generation", description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--interval", type=float, default=1.0, help="checkpoint interval in seconds")
    parser.add_argument("--repeat", type=int, default=1, help="interleaved runs of each mode (medians reported)")
    parser.add_argument(
        "--heartbeats", action="store_true", help="keep Prefect's flow-run heartbeats (1 s-step end of run)"
    )
    parser.add_argument("--json", help="also write the measurements to this file")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--json-out", help=argparse.SUPPRESS)
    parser.add_argument("--hub-pid", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--background-hub", help=argparse.SUPPRESS)
    parser.add_argument("--background-hub-pid", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return _child(args)

    work = Path(tempfile.mkdtemp(prefix="hfds-bench-gen-"))
    try:
        with (
            _served_hub(work / "hub", 0) as (url, pid),
            _served_hub(work / "background-hub", BACKGROUND_NICENESS) as (background_url, background_pid),
        ):
            env = dict(os.environ)
            env.update(
                {
                    "HF_ENDPOINT": url,
                    "HF_HUB_DISABLE_XET": "1",
                    "HF_TOKEN": BENCH_TOKEN,
                    "HF_HOME": str(work / "hf-home"),
                    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
                    "HF_HUB_DISABLE_TELEMETRY": "1",
                    "PREFECT_HOME": str(work / "prefect-home"),
                    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                    "PREFECT_LOGGING_LEVEL": "WARNING",
                    # The temporary server creates its database in this fresh home first, and Prefect waits 20 s
                    # for it: too short on slow shared cores (as for `--local-hub`, see flows/embedded_hub.py).
                    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
                }
            )
            env.pop("PREFECT_API_URL", None)  # the ephemeral API, like a first-time user
            json_out = work / "results.json"
            command = [
                sys.executable, "-m", "bench.generation", "--child", "--work", str(work / "runs"),
                "--json-out", str(json_out), "--batch-size", str(args.batch_size), "--interval", str(args.interval),
                "--repeat", str(args.repeat), *(["--heartbeats"] if args.heartbeats else []),
                "--hub-pid", str(pid), "--background-hub", background_url,
                "--background-hub-pid", str(background_pid), "--records", *map(str, args.records),
            ]  # fmt: skip
            print(f"running {' '.join(command[2:])} against the embedded Hubs ...", file=sys.stderr)
            child = subprocess.run(command, env=env, cwd=ROOT)
        if child.returncode != 0:
            print(f"benchmark child failed with exit code {child.returncode}", file=sys.stderr)
            return child.returncode
        rows = json.loads(json_out.read_text())
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"no-LLM example ({EXAMPLE.name}), batch size {args.batch_size}, {os.cpu_count()} CPUs, "
        f"median of {args.repeat} run(s), heartbeats {'on' if args.heartbeats else 'off'}"
    )
    print(_table(rows, args.interval))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
