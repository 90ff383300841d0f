"""The bound on Hub requests (``tasks/hub_client.py``): huggingface_hub's own client waits forever.

Pure tests of the client the project's tasks get, plus the checkpoint worker (its own process) against the
embedded Hub. The push's stages under a Hub that stops answering are in ``test_reliability_faults.py`` (the
latency cells).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from conftest import ALICE_TOKEN, HUB_URL
from huggingface_hub import HfApi
from huggingface_hub.utils import close_session, get_session, set_client_factory

from tasks.generation.checkpoint import _WORKER_COMMAND
from tasks.hub_client import DEFAULT_TIMEOUT_S, TIMEOUT_ENV, hub_api, request_timeout


@pytest.fixture
def default_factory() -> Iterator[None]:
    """huggingface_hub's own client factory, as in a process that never ran a task; put back afterwards."""
    from huggingface_hub.utils import _http

    saved = _http._GLOBAL_CLIENT_FACTORY
    set_client_factory(_http.default_client_factory)
    yield
    set_client_factory(saved)


def test_huggingface_hub_alone_never_times_out(default_factory: None) -> None:
    # What the bound is for: without it, a request the Hub never answers waits forever.
    assert get_session().timeout == httpx2.Timeout(None)


@pytest.mark.usefixtures("default_factory")
def test_the_tasks_client_times_out_and_keeps_its_bound_after_a_new_client(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(TIMEOUT_ENV, raising=False)
    assert isinstance(hub_api(), HfApi)
    assert get_session().timeout == httpx2.Timeout(DEFAULT_TIMEOUT_S, connect=30.0)
    close_session()  # what huggingface_hub does after a connection error: the next client is new
    assert get_session().timeout == httpx2.Timeout(DEFAULT_TIMEOUT_S, connect=30.0)
    monkeypatch.setenv(TIMEOUT_ENV, "7.5")
    close_session()
    assert get_session().timeout == httpx2.Timeout(7.5, connect=7.5)
    hub_api()  # installed once: a second call changes nothing
    assert get_session().timeout == httpx2.Timeout(7.5, connect=7.5)


@pytest.mark.usefixtures("default_factory")
def test_zero_leaves_the_client_unbounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TIMEOUT_ENV, "0")
    assert request_timeout() is None
    hub_api()
    assert get_session().timeout == httpx2.Timeout(None)


@pytest.mark.usefixtures("default_factory")
def test_a_users_client_factory_is_kept_with_its_own_timeout() -> None:
    proxy_like = httpx2.Client(timeout=httpx2.Timeout(12.0), headers={"x-through": "corporate-proxy"})
    set_client_factory(lambda: proxy_like)
    hub_api()
    session = get_session()
    assert session is proxy_like
    assert session.timeout == httpx2.Timeout(12.0)


@pytest.mark.parametrize("value", ["abc", "-1", "inf", "nan", "5 s"])
def test_a_bad_bound_is_refused_with_the_variable_and_the_fix(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(TIMEOUT_ENV, value)
    with pytest.raises(ValueError, match=rf"{TIMEOUT_ENV}=.*not a number of seconds.*0 for no limit"):
        hub_api()


def test_default_and_explicit_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TIMEOUT_ENV, raising=False)
    assert request_timeout() == DEFAULT_TIMEOUT_S
    monkeypatch.setenv(TIMEOUT_ENV, " 45 ")
    assert request_timeout() == 45.0


@pytest.mark.usefixtures("hub")
def test_the_checkpoint_worker_gives_up_on_a_commit_the_hub_never_answers(hub: Any, tmp_path: Path) -> None:
    """The worker is its own process (it imports no Prefect): its client is bounded too. The Hub holds the
    commit for 20 s; with a 1 s bound the worker answers a timeout, which the checkpointer retries later."""
    repo_id = "alice/worker-timeout"
    HfApi(token=ALICE_TOKEN).create_repo(repo_id, repo_type="dataset", exist_ok=True)
    hub.faults.add("commit", latency=20.0, drop="before", repo=repo_id)
    env = {**os.environ, TIMEOUT_ENV: "1"}
    worker = subprocess.Popen(
        _WORKER_COMMAND, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=tmp_path
    )
    try:
        assert worker.stdout is not None and worker.stdin is not None
        assert json.loads(worker.stdout.readline()) == {"ready": True}
        request = {
            "endpoint": HUB_URL,
            "token": ALICE_TOKEN,
            "repo_id": repo_id,
            "revision": "main",
            "message": "Checkpoint",
            "files": [],
            "content": [["note.txt", "aGVsbG8="]],
            "deletes": [],
        }
        worker.stdin.write(json.dumps(request) + "\n")
        worker.stdin.flush()
        answer = json.loads(worker.stdout.readline())
    finally:
        worker.kill()
        worker.wait()
    assert answer["error"] == "ReadTimeout", answer
