"""Session-wide test environment: one embedded Hub and (on demand) one Prefect harness per session.

The Hub endpoint is read by ``huggingface_hub`` and ``datasets`` at import time, so the port is chosen and the
environment set here, before any test module imports them.
"""

from __future__ import annotations

import os
import socket
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # imported for real only after HF_ENDPOINT is set below
    from huggingface_hub import HfApi

_SESSION_DIR = Path(tempfile.mkdtemp(prefix="hfds-tests-"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


HUB_PORT = _free_port()
HUB_URL = f"http://127.0.0.1:{HUB_PORT}"
ALICE, ALICE_TOKEN = "alice", "hf_alice_test_token_0123456789"
BOB, BOB_TOKEN = "bob", "hf_bob_test_token_0123456789"

os.environ.update(
    {
        "HF_ENDPOINT": HUB_URL,
        "HF_HUB_DISABLE_XET": "1",  # localhub speaks LFS, not Xet (hub-protocol §8)
        "HF_HOME": str(_SESSION_DIR / "hf-home"),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "HF_DATASETS_CACHE": str(_SESSION_DIR / "hf-datasets-cache"),
        "PREFECT_HOME": str(_SESSION_DIR / "prefect-home"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_RESULTS_LOCAL_STORAGE_PATH": str(_SESSION_DIR / "prefect-results"),
        "PREFECT_LOGGING_LEVEL": "WARNING",
        # Stage retries as in production, but fast: 2 retries, 0.1 s then 0.2 s apart.
        "HFDS_STAGE_RETRIES": "2",
        "HFDS_STAGE_RETRY_DELAY": "0.1",
        "HFDS_CACHE_DIR": str(_SESSION_DIR / "hfds-cache"),
    }
)
os.environ.pop("HF_TOKEN", None)
os.environ.pop("HUGGING_FACE_HUB_TOKEN", None)


@pytest.fixture(scope="session")
def session_dir() -> Path:
    return _SESSION_DIR


@pytest.fixture(scope="session")
def hub(session_dir: Path) -> Iterator[object]:
    """The embedded Hub, serving on ``HF_ENDPOINT`` for the whole session."""
    from localhub import LocalHub

    server = LocalHub(
        data_dir=session_dir / "localhub-data",
        port=HUB_PORT,
        users={ALICE: ALICE_TOKEN, BOB: BOB_TOKEN},
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def _clean_faults(request: pytest.FixtureRequest) -> Iterator[None]:
    """Faults set by one test never leak into the next."""
    yield
    if "hub" in request.fixturenames:
        request.getfixturevalue("hub").faults.clear()  # type: ignore[attr-defined]


@pytest.fixture
def repo_id() -> str:
    """A fresh dataset repo id in alice's namespace."""
    return f"{ALICE}/ds-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def api(hub: object) -> HfApi:
    """A client of the embedded Hub, as alice."""
    from huggingface_hub import HfApi

    return HfApi(token=ALICE_TOKEN)


@pytest.fixture
def repo(api: HfApi, repo_id: str) -> str:
    """A fresh, empty dataset repo of alice's."""
    api.create_repo(repo_id, repo_type="dataset")
    return repo_id


@pytest.fixture(scope="session")
def prefect_api(session_dir: Path) -> Iterator[None]:
    """One Prefect test harness (a real Prefect API server) for the whole session; results isolated."""
    from prefect.settings import (
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
        PREFECT_RESULTS_LOCAL_STORAGE_PATH,
        temporary_settings,
    )
    from prefect.testing.utilities import prefect_test_harness

    # Heartbeats play no part in what the tests check, and Prefect 3.8 joins the heartbeat thread (1 s sleeps)
    # at the end of every flow run: off, each in-process flow run is up to 1 s faster.
    settings = {
        PREFECT_RESULTS_LOCAL_STORAGE_PATH: str(session_dir / "prefect-results"),
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None,
    }
    with (
        temporary_settings(settings),
        prefect_test_harness(server_startup_timeout=120),
    ):
        yield


# Groups started first under pytest-xdist: the longest, so that no worker is left with one at the end.
_LONGEST_FIRST = ("prefect-server", "tests/test_reliability_crash.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Group the tests for pytest-xdist (``make test`` runs two workers with ``--dist loadgroup``).

    A module stays on one worker, so that its module fixtures are set up once; the modules that use the session's
    ``prefect server start`` share one worker, so that one server serves them all.
    """
    for item in items:
        item.add_marker(pytest.mark.xdist_group(_group(item)))
    rank = {group: i for i, group in enumerate(_LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(_group(item), len(rank)))  # stable: the rest keep their order


def _group(item: pytest.Item) -> str:
    """The test's xdist group: the shared server's, else its module's path."""
    plugins = getattr(getattr(item, "module", None), "pytest_plugins", ())
    return "prefect-server" if "prefect_server" in plugins else item.nodeid.split("::")[0]
