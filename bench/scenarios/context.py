"""What every scenario shares: the work directory, the embedded Hub and the Prefect server (both child
processes), the environment of a measured child, and the Hub's admin routes (stats, request log, faults).

Standard library only (see ``bench.measure`` on why the parent stays small).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.measure import ROOT

USER, TOKEN = "bench", "hf_bench_token_0123456789"
CACHE = ROOT / ".bench-cache"

# Variables of the caller that must not leak into a measured child (it gets its own Hub and Prefect settings).
_PRIVATE_PREFIXES = ("HF_", "HUGGING_FACE_", "PREFECT_", "HFDS_", "BENCH_")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(probe: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            if probe():
                return
        time.sleep(0.2)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


def _stop(proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


def peak_rss_of(pid: int) -> float | None:
    """VmHWM (peak RSS) of a running process, in MiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


@dataclass
class Context:
    """One benchmark run's shared infrastructure."""

    work: Path
    quick: bool
    repeats: int
    log: Callable[[str], None] = print
    hub_url: str = ""
    prefect_api: str = ""
    _procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _names: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    # --- infrastructure ------------------------------------------------------------------------------------------

    def start_hub(self) -> None:
        port = free_port()
        log = (self.work / "localhub.log").open("wb")
        self._procs["hub"] = subprocess.Popen(
            [sys.executable, "-m", "localhub", "--port", str(port), "--data-dir", str(self.work / "hub"),
             "--user", f"{USER}:{TOKEN}"],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        log.close()
        self.hub_url = f"http://127.0.0.1:{port}"
        _wait(lambda: isinstance(self.admin("GET", "stats"), dict), 60, "the embedded Hub")

    def start_prefect(self) -> float:
        """``prefect server start`` with its own home in the work dir; returns the seconds it took to be up."""
        port = free_port()
        home = self.work / "prefect-server"
        home.mkdir(parents=True, exist_ok=True)
        env = self.clean_env()
        env.update(
            {
                "PREFECT_HOME": str(home),
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                "PREFECT_UI_ENABLED": "false",
                "PREFECT_SERVER_API_HOST": "127.0.0.1",
                "PREFECT_SERVER_API_PORT": str(port),
                "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
            }
        )
        log = (self.work / "prefect-server.log").open("wb")
        started = time.perf_counter()
        self._procs["prefect"] = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            cwd=home, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        log.close()
        self.prefect_api = f"http://127.0.0.1:{port}/api"

        def healthy() -> bool:
            if self._procs["prefect"].poll() is not None:
                raise RuntimeError(f"prefect server exited; see {self.work / 'prefect-server.log'}")
            with urllib.request.urlopen(f"{self.prefect_api}/health", timeout=2) as r:  # noqa: S310
                return r.status == 200

        _wait(healthy, 180, f"the Prefect server at {self.prefect_api}")
        return time.perf_counter() - started

    def process_peak_rss(self, name: str) -> float | None:
        proc = self._procs.get(name)
        return peak_rss_of(proc.pid) if proc else None

    def stop(self) -> None:
        for name in list(self._procs):
            _stop(self._procs.pop(name))

    # --- children ------------------------------------------------------------------------------------------------

    @staticmethod
    def clean_env() -> dict[str, str]:
        """This environment without the variables a measured child must not inherit (Hub, Prefect, caches)."""
        return {k: v for k, v in os.environ.items() if not k.startswith(_PRIVATE_PREFIXES)}

    def fresh_dir(self, prefix: str) -> Path:
        path = self.work / "runs" / f"{prefix}-{next(self._names):03d}"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def hub_env(self, home: Path, *, prefect: bool = False) -> dict[str, str]:
        """The environment of a measured child: the embedded Hub, a fresh ``HF_HOME`` (``home``), the token;
        with ``prefect``, the benchmark's Prefect server and result storage."""
        env = self.clean_env()
        env.update(
            {
                "HF_ENDPOINT": self.hub_url,
                "HF_HUB_DISABLE_XET": "1",
                "HF_TOKEN": TOKEN,
                "HF_HOME": str(home / "hf-home"),
                "HF_HUB_DISABLE_TELEMETRY": "1",
                "HF_HUB_DISABLE_PROGRESS_BARS": "1",
                "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
            }
        )
        if prefect:
            env.update(
                {
                    "PREFECT_API_URL": self.prefect_api,
                    "PREFECT_HOME": str(self.work / "prefect-client"),
                    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                    "PREFECT_RESULTS_LOCAL_STORAGE_PATH": str(self.work / "prefect-results"),
                    "HFDS_CACHE_DIR": str(home / "hfds-cache"),
                }
            )
        return env

    def repo(self, tool: str) -> str:
        return f"{USER}/{tool}-{next(self._names):03d}"

    # --- the Hub's admin routes ------------------------------------------------------------------------------

    def admin(self, method: str, what: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(  # noqa: S310 - loopback URL we started
            f"{self.hub_url}/_localhub/{what}", data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=30) as r:  # noqa: S310
            return json.loads(r.read() or b"null")

    def hub_stats(self) -> dict[str, Any]:
        return dict(self.admin("GET", "stats"))

    def hub_requests(self) -> list[dict[str, Any]]:
        return list(self.admin("GET", "requests"))

    def clear_requests(self) -> None:
        self.admin("DELETE", "requests")

    def hub_config(self, **settings: int) -> dict[str, int]:
        """Change the embedded Hub's settings (``localhub.api.HubConfig``), e.g. ``upload_bytes_per_s``."""
        return dict(self.admin("PUT", "config", settings))

    def add_fault(self, **rule: Any) -> str:
        return str(self.admin("POST", "faults", rule)["id"])

    def clear_faults(self) -> None:
        self.admin("DELETE", "faults")

    def commits(self, repo: str, revision: str = "main") -> list[dict[str, Any]]:
        """The repo's commits, newest first (id, title), read through the Hub API (after the figures are taken:
        this request is logged like any other)."""
        req = urllib.request.Request(  # noqa: S310
            f"{self.hub_url}/api/datasets/{repo}/commits/{revision}", headers={"authorization": f"Bearer {TOKEN}"}
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as r:  # noqa: S310
                return list(json.loads(r.read()))
        except urllib.error.HTTPError as e:
            if e.code == 404:
                return []
            raise
