"""A real Prefect server (``prefect server start``) for the end-to-end tests of deployments, schedules,
Retry, triggers, the UI and Dask.

The rest of the suite uses the in-process ``prefect_api`` harness; this server is separate: it runs as a child
process on 127.0.0.1 with its own ``PREFECT_HOME`` (database, UI build) in a temp dir, and the test process only
talks to it inside ``server.client()`` (``temporary_settings``), never through a global ``PREFECT_API_URL``.

Use it from a test module with::

    pytest_plugins = ["prefect_server"]

which registers the session-scoped fixtures ``prefect_server`` (one server for the whole session, shared by
every module that asks for it) and ``served_deployments`` (one ``python -m deployments.serve`` process).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
T = TypeVar("T")

# Variables of the pytest process that must not leak into the server or the runner processes.
_PRIVATE = ("PREFECT_API_URL", "PREFECT_API_KEY", "PREFECT_HOME", "PREFECT_LOGGING_LEVEL")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(
    probe: Callable[[], T | None], *, timeout: float = 90.0, interval: float = 0.25, what: str = "condition"
) -> T:
    """Poll ``probe`` until it returns something truthy; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = probe()
        except Exception as exc:  # a transient error while the thing comes up
            last_error = exc
            value = None
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what} (last error: {last_error!r})")


def _stop(process: subprocess.Popen[Any], timeout: float = 15.0) -> None:
    """Stop a child started in its own session: SIGTERM to its process group, then SIGKILL."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


# Task states of a push that failed at its processors stage, once retried from the UI: the stages that had
# committed come from Prefect's cache, the others run again.
RETRIED_FROM_PROCESSORS = {
    "prepare-repo": "Completed",  # token check and repo creation: run again (idempotent, not cached)
    "check-retry": "Completed",  # a Retry first checks that no other run has pushed to the branch since
    # the uploads made ahead of their stages (tasks.preupload) had finished: taken from the cache too
    "preupload-data": "Cached",
    "preupload-images": "Cached",
    "preupload-processors": "Cached",
    "push-card": "Cached",
    "push-data": "Cached",
    "push-images": "Cached",
    "push-processors": "Completed",
    "push-builder-config": "Completed",
    "push-metadata": "Completed",
}


def flow_run_count(flow_name: str) -> int:
    """How many runs of the flow ``flow_name`` the current Prefect API holds."""
    from prefect import get_client

    with get_client(sync_client=True) as client:
        response = client._client.post("/flow_runs/count", json={"flows": {"name": {"any_": [flow_name]}}})
    return int(response.json())


def events_named(name: str) -> list[dict[str, Any]]:
    """The latest 50 events called ``name`` that the current Prefect API holds, newest first."""
    from prefect import get_client

    with get_client(sync_client=True) as client:
        response = client._client.post("/events/filter", json={"filter": {"event": {"name": [name]}}, "limit": 50})
    return list(response.json()["events"])


def final_task_runs(
    client: Any, flow_run_ids: list[Any], timeout: float = 15.0, expect: Iterable[str] = ()
) -> list[Any]:
    """The task runs of these flow runs, read until each has a final state and every name in ``expect`` is among
    them (or ``timeout``): Prefect 3 records task runs and their states from events, which the server may write
    after the flow run itself has ended (a run's last task can still be missing then)."""
    from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterFlowRunId

    deadline = time.monotonic() + timeout
    while True:
        runs = list(
            client.read_task_runs(
                task_run_filter=TaskRunFilter(flow_run_id=TaskRunFilterFlowRunId(any_=flow_run_ids))
            )
        )
        named = {task_run_base_name(r) for r in runs}
        done = all(r.state is not None and r.state.is_final() for r in runs) and set(expect) <= named
        if done or time.monotonic() > deadline:
            return runs
        time.sleep(0.05)


def task_run_base_name(task_run: Any) -> str:
    """A task run's name without the ``-<dynamic key>`` Prefect appends to a default name (whole, or its first
    3 characters); a name given by ``task_run_name`` (``preupload-data``) is kept."""
    for suffix in (f"-{task_run.dynamic_key}", f"-{task_run.dynamic_key[:3]}"):
        if task_run.name.endswith(suffix):
            return str(task_run.name[: -len(suffix)])
    return str(task_run.name)


class PrefectServer:
    """``prefect server start --host 127.0.0.1 --port P`` with its own home, started and stopped by the tests."""

    def __init__(self, home: Path, port: int | None = None) -> None:
        self.home = home
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.api_url = f"{self.url}/api"
        self.log_path = home / "server.log"
        self._process: subprocess.Popen[bytes] | None = None

    def base_env(self, **extra: str) -> dict[str, str]:
        """The environment of a process that talks to this server (the pytest process's, minus its Prefect
        profile, plus ``PREFECT_API_URL``)."""
        env = {k: v for k, v in os.environ.items() if k not in _PRIVATE}
        env.update(
            {
                "PREFECT_API_URL": self.api_url,
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                "PREFECT_LOGGING_LEVEL": "INFO",
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(extra)
        return env

    def start(self, timeout: float = 120.0) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if k not in _PRIVATE}
        env.update(
            {
                "PREFECT_HOME": str(self.home),
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                "PREFECT_UI_ENABLED": "true",
                # The UI's browser code calls this URL (its default is port 4200, whatever --port says).
                "PREFECT_UI_API_URL": self.api_url,
                "PREFECT_SERVER_API_HOST": "127.0.0.1",
                "PREFECT_SERVER_API_PORT": str(self.port),
                # Scheduled runs appear within seconds of a deployment's registration, not after a minute.
                "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "2",
                "PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED": "false",
                "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
            }
        )
        log = self.log_path.open("wb")
        self._process = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(self.port)],
            env=env,
            cwd=self.home,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        wait_for(self._healthy, timeout=timeout, interval=0.25, what=f"Prefect server health at {self.api_url}")

    def _healthy(self) -> bool:
        assert self._process is not None
        if self._process.poll() is not None:
            raise RuntimeError(f"prefect server exited with {self._process.returncode}:\n{self.log_tail()}")
        try:
            return httpx.get(f"{self.api_url}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self._process is not None:
            _stop(self._process)
            self._process = None

    @contextlib.contextmanager
    def client(self) -> Iterator[Any]:
        """A sync Prefect client for this server, with ``PREFECT_API_URL`` set only inside the block."""
        from prefect.client.orchestration import get_client
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings({PREFECT_API_URL: self.api_url}), get_client(sync_client=True) as client:
            yield client

    # --- helpers the tests share -------------------------------------------------------------------------------

    def wait_for_final_state(self, flow_run_id: UUID, timeout: float = 120.0, after: UUID | None = None) -> Any:
        """The flow run once it is in a final state (Completed, Failed, Crashed, Cancelled).

        ``after``: the id of a final state the run is known to be leaving (a retry set by the UI, which writes the
        new state asynchronously); that state does not count, so the wait cannot return before the retry begins.
        """

        def probe() -> Any:
            with self.client() as client:
                run = client.read_flow_run(flow_run_id)
            state = run.state
            return run if state is not None and state.is_final() and state.id != after else None

        return wait_for(probe, timeout=timeout, what=f"flow run {flow_run_id} to finish")

    def task_run_states(self, flow_run_id: UUID) -> dict[str, str]:
        """Task run name (without the ``-<key>`` Prefect adds to a default name) → name of its latest state, for the
        task runs of a flow run."""

        with self.client() as client:
            runs = final_task_runs(client, [flow_run_id])
        states: dict[str, str] = {}
        for run in sorted(runs, key=lambda r: r.expected_start_time or r.created):
            states[task_run_base_name(run)] = run.state.name if run.state else ""
        return states

    def runs_of(self, deployment_id: UUID) -> list[Any]:
        """The flow runs of a deployment, oldest first."""
        from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

        with self.client() as client:
            runs = client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id]))
            )
        return sorted(runs, key=lambda r: r.created)

    def run_deployment(self, name: str, params: dict[str, Any]) -> UUID:
        """Create a run of deployment ``name`` with ``{"params": params}`` and return its id; a runner or worker
        polling the deployment starts it."""
        with self.client() as client:
            deployment = client.read_deployment_by_name(name)
            run = client.create_flow_run_from_deployment(deployment.id, parameters={"params": params})
        return run.id

    def artifacts(self, flow_run_id: UUID) -> list[Any]:
        """The artifacts attached to a flow run (all its attempts)."""
        from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

        with self.client() as client:
            return list(
                client.read_artifacts(
                    artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
                )
            )

    wait_for = staticmethod(wait_for)

    def logs(self, flow_run_id: UUID) -> list[Any]:
        from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

        with self.client() as client:
            return list(client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id]))))


class ServedDeployments:
    """``python -m deployments.serve`` in a child process, against a ``PrefectServer`` and the embedded Hub.

    The test session serves with: a cron schedule ``SCHEDULE_CRON`` pushing ``scheduled_repo`` with
    ``SCHEDULED_RECORDS`` records, and a verify trigger restricted to pushes to repos starting with
    ``CHAIN_PREFIX`` (so that only the chain tests start verify runs).
    """

    NAMES = ("generate-then-push/scheduled", "push-folder/push-only", "verify-after-push/on-push")
    SCHEDULE_CRON = "0 3 * * *"
    SCHEDULED_RECORDS = 40
    CHAIN_PREFIX = "alice/chain-"

    def __init__(self, server: PrefectServer, env: Mapping[str, str], log_path: Path) -> None:
        self.server = server
        self.log_path = log_path
        self.deployments: dict[str, Any] = {}
        self.scheduled_repo = f"alice/nightly-{uuid.uuid4().hex[:8]}"
        args = [
            "--repo",
            self.scheduled_repo,
            "--records",
            str(self.SCHEDULED_RECORDS),
            "--cron",
            self.SCHEDULE_CRON,
            "--verify-match",
            f"hf.dataset.{self.CHAIN_PREFIX}*",
        ]
        log = log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "deployments.serve", *args],
            env=dict(env),
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def wait_registered(self, names: list[str], timeout: float = 120.0) -> dict[str, Any]:
        """Deployment ``flow/deployment`` name → deployment, once all are registered and the runner polls."""

        def probe() -> dict[str, Any] | None:
            if self.process.poll() is not None:
                raise RuntimeError(f"the serve process exited with {self.process.returncode}:\n{self.log_tail()}")
            found = {}
            with self.server.client() as client:
                for name in names:
                    found[name] = client.read_deployment_by_name(name)
            return found

        deployments = wait_for(probe, timeout=timeout, interval=0.5, what=f"deployments {names} to register")
        # The runner starts polling right after registering; its start message says so.
        wait_for(
            lambda: "being served" in self.log_path.read_text(errors="replace"),
            timeout=timeout,
            what="the runner to start",
        )
        return deployments

    def stop(self) -> None:
        _stop(self.process, timeout=20)


@pytest.fixture(scope="session")
def served_deployments(prefect_server: PrefectServer, hub: Any, session_dir: Path) -> Iterator[ServedDeployments]:
    """``python -m deployments.serve`` against the session's server and embedded Hub (alice's token in its env).

    Stage retries are shortened (1 retry, 0.2 s) so that a faulted stage fails in a second; the runner polls
    every second.
    """
    from conftest import ALICE_TOKEN, HUB_URL

    work = session_dir / "served"
    work.mkdir(exist_ok=True)
    env = prefect_server.base_env(
        PREFECT_HOME=str(work / "prefect-home"),
        PREFECT_RESULTS_LOCAL_STORAGE_PATH=str(work / "prefect-results"),
        PREFECT_RUNNER_POLL_FREQUENCY="1",
        HF_ENDPOINT=HUB_URL,
        HF_HUB_DISABLE_XET="1",
        HF_TOKEN=ALICE_TOKEN,
        HFDS_STAGE_RETRIES="1",
        HFDS_STAGE_RETRY_DELAY="0.2",
        HFDS_WORK_DIR=str(work / "generated"),
    )
    served = ServedDeployments(prefect_server, env, work / "serve.log")
    try:
        served.deployments = served.wait_registered(list(served.NAMES))
        yield served
    finally:
        served.stop()


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[PrefectServer]:
    """One ``prefect server start`` for the whole session (its own home in a temp dir)."""
    home = Path(tempfile.mkdtemp(prefix="hfds-prefect-server-"))
    server = PrefectServer(home)
    server.start()
    try:
        yield server
    finally:
        server.stop()
