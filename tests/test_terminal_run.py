"""The command-line entry points run their flow without heartbeats; Python callers keep Prefect's setting.

Prefect 3.8 joins its heartbeat thread at the end of every synchronous flow run (up to 1 s of waiting), so the
CLIs switch heartbeats off for their own run (see ``flows.terminal_run``). Checked on the real engine: a flow
run with heartbeats on emits ``prefect.flow-run.heartbeat`` as it starts; one started by the CLI emits none.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from prefect import get_client
from prefect.client.schemas.filters import FlowFilter, FlowFilterName
from prefect.client.schemas.sorting import FlowRunSort
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, get_current_settings, temporary_settings

from flows import push
from flows.terminal_run import terminal_run
from tests.factories import make_dataset_folder


def test_terminal_run_turns_heartbeats_off_only_inside() -> None:
    with temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: 60}):
        outer = get_current_settings()
        with terminal_run():
            inner = get_current_settings()
            assert inner.flows.heartbeat_frequency is None
            assert inner.api.url == outer.api.url and inner.results == outer.results  # nothing else changes
        assert get_current_settings().flows.heartbeat_frequency == 60


def test_terminal_run_gives_prefects_temporary_server_time_unless_the_user_set_it(tmp_path: Path) -> None:
    # A command's first flow run on a fresh machine starts Prefect's temporary server, which creates its database
    # first (13.5 s on an idle machine here, over 20 s with the cores shared, and a push CLI child failed so):
    # Prefect waits 20 s for it by default. In a child: a fresh home, no setting in the environment or a profile.
    code = (
        "from prefect.settings import PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS as T, temporary_settings\n"
        "from flows.terminal_run import terminal_run\n"
        "with terminal_run(): print(T.value())\n"
        "with temporary_settings({T: 45}), terminal_run(): print(T.value())\n"  # as a profile or env value is
        "print(T.value())\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env["PREFECT_HOME"] = str(tmp_path / "prefect-home")
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=root, capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.split() == ["120", "45", "20"], out.stderr[-2000:]


def _heartbeat_runs(since: float) -> set[str]:
    """Flow run ids that emitted a heartbeat event since ``since`` (epoch seconds)."""
    start = datetime.fromtimestamp(since, tz=UTC).isoformat()
    body: dict[str, Any] = {
        "filter": {"event": {"name": ["prefect.flow-run.heartbeat"]}, "occurred": {"since": start}},
        "limit": 50,
    }
    with get_client(sync_client=True) as client:
        events = client._client.post("/events/filter", json=body).json()["events"]
    return {e["resource"]["prefect.resource.id"].removeprefix("prefect.flow-run.") for e in events}


def _latest_push_run_id() -> str:
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["push-dataset"])),
            sort=FlowRunSort.START_TIME_DESC,
            limit=1,
        )
    return str(runs[0].id)


@pytest.mark.usefixtures("prefect_api")
def test_cli_run_sends_no_heartbeat_but_a_python_call_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = make_dataset_folder(tmp_path / "ds", batches=1, rows_per_batch=5)
    since = time.time() - 1
    with temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: 30}):
        push.push_dataset(folder, "alice/heartbeats", "A dry run.", dry_run=True)
        from_python = _latest_push_run_id()
        assert push.main([str(folder), "alice/heartbeats", "--description", "A dry run.", "--dry-run"]) == 0
        from_cli = _latest_push_run_id()
    assert from_cli != from_python
    deadline = time.monotonic() + 30
    while from_python not in (seen := _heartbeat_runs(since)) and time.monotonic() < deadline:
        time.sleep(0.5)  # events reach the API asynchronously
    assert from_python in seen
    assert from_cli not in seen
