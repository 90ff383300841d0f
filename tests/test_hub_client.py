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
from reliability_support import wait_for

from tasks.generation.checkpoint_worker_client import WORKER_COMMAND as _WORKER_COMMAND
from tasks.hub_client import DEFAULT_TIMEOUT_S, TIMEOUT_ENV, fill_timeouts, hub_api, request_timeout


@pytest.fixture
def default_factory() -> Iterator[None]:
    """huggingface_hub's own client factory, as in a process that never ran a task; put back afterwards."""
    from huggingface_hub.utils import _http

    saved = _http._GLOBAL_CLIENT_FACTORY
    set_client_factory(_http.default_client_factory)
    yield
    set_client_factory(saved)


def _timeouts(session: httpx2.Client, **request_kwargs: Any) -> dict[str, float | None]:
    """The timeouts a request of ``session`` is sent with, once its request hooks ran (as ``send`` runs them)."""
    request = session.build_request("GET", "http://hub.invalid/api/whoami-v2", **request_kwargs)
    for hook in session.event_hooks["request"]:
        hook(request)
    return dict(request.extensions["timeout"])


BOUND = {"connect": 30.0, "read": DEFAULT_TIMEOUT_S, "write": DEFAULT_TIMEOUT_S, "pool": DEFAULT_TIMEOUT_S}
UNBOUNDED = {"connect": None, "read": None, "write": None, "pool": None}


def test_huggingface_hub_alone_never_times_out(default_factory: None) -> None:
    # What the bound is for: without it, a request the Hub never answers waits forever.
    assert _timeouts(get_session()) == UNBOUNDED


@pytest.mark.usefixtures("default_factory")
def test_every_request_without_a_timeout_gets_the_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TIMEOUT_ENV, raising=False)
    assert isinstance(hub_api(), HfApi)
    session = get_session()
    assert _timeouts(session) == BOUND
    # huggingface_hub's repo_info and paginated listings pass timeout=None explicitly: bounded all the same
    assert _timeouts(session, timeout=None) == BOUND
    # a timeout the call sets is its own (hf_hub_download's 10 s)
    assert _timeouts(session, timeout=10.0) == dict.fromkeys(BOUND, 10.0)
    close_session()  # what huggingface_hub does after a connection error: the next client is new
    assert _timeouts(get_session()) == BOUND
    monkeypatch.setenv(TIMEOUT_ENV, "7.5")  # read per request
    assert _timeouts(get_session()) == dict.fromkeys(BOUND, 7.5)
    hub_api()  # installed once: a second call adds no second hook
    assert get_session().event_hooks["request"].count(fill_timeouts) == 1


@pytest.mark.usefixtures("default_factory")
def test_zero_leaves_requests_as_huggingface_hub_makes_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TIMEOUT_ENV, "0")
    assert request_timeout() is None
    hub_api()
    assert fill_timeouts in get_session().event_hooks["request"]
    assert _timeouts(get_session()) == UNBOUNDED


@pytest.mark.usefixtures("default_factory")
def test_a_users_client_factory_is_kept_with_its_own_timeout() -> None:
    proxy_like = httpx2.Client(
        timeout=httpx2.Timeout(12.0, connect=None), headers={"x-through": "corporate-proxy"}
    )
    set_client_factory(lambda: proxy_like)
    hub_api()
    session = get_session()
    assert session is proxy_like and session.headers["x-through"] == "corporate-proxy"
    assert _timeouts(session) == {**dict.fromkeys(BOUND, 12.0), "connect": 30.0}  # only the unset one is filled


@pytest.mark.usefixtures("default_factory")
def test_a_factory_installed_after_the_first_client_is_bounded_at_the_next() -> None:
    hub_api()
    set_client_factory(lambda: httpx2.Client(timeout=None))  # the user's, after the tasks' first client
    assert _timeouts(get_session()) == UNBOUNDED
    hub_api()
    assert _timeouts(get_session()) == BOUND


def test_a_listing_the_hub_does_not_answer_is_sent_again(
    hub: Any, repo_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over HTTP: ``list_repo_tree`` (timeout=None in huggingface_hub) under 3 s of latency with a 1 s bound
    times out, and huggingface_hub's own back-off sends it again, which the Hub answers."""
    api = hub_api(token=ALICE_TOKEN)
    api.create_repo(repo_id, repo_type="dataset", exist_ok=True)
    monkeypatch.setenv(TIMEOUT_ENV, "1")
    hub.faults.add("tree", latency=3.0, count=1, repo=repo_id)
    hub.clear_requests()
    assert [f.path for f in api.list_repo_tree(repo_id, repo_type="dataset")] == [".gitattributes"]
    # (the Hub logs the held request when it has answered it, 3 s after it came)
    assert wait_for(lambda: sum(1 for r in hub.requests if r.route == "tree") == 2, timeout=10)


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
def test_the_checkpoint_worker_gives_up_on_a_commit_the_hub_never_answers(
    hub: Any, repo_id: str, tmp_path: Path
) -> None:
    """The worker is its own process (it imports no Prefect): its client is bounded too. The Hub holds the
    commit for 5 s, then drops it; with a 1 s bound the worker answers a timeout (the checkpointer retries later)."""
    HfApi(token=ALICE_TOKEN).create_repo(repo_id, repo_type="dataset", exist_ok=True)
    hub.faults.add("commit", latency=5.0, drop="before", repo=repo_id)
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
            "gitignore": "",
        }
        worker.stdin.write(json.dumps(request) + "\n")
        worker.stdin.flush()
        answer = json.loads(worker.stdout.readline())
    finally:
        worker.kill()
        worker.wait()
    assert answer["error"] == "ReadTimeout", answer


@pytest.mark.parametrize(("status", "someone_gave_up"), [(504, True), (500, False), (503, False), (429, False)])
def test_a_gateway_timeout_counts_as_giving_up_waiting_like_a_client_timeout(
    status: int, someone_gave_up: bool
) -> None:
    # huggingface.co answers 504 for a commit that outlasts its gateway, and may finish the commit behind it: the
    # lost-answer check then looks again for a while, as after a client timeout.
    from huggingface_hub.errors import HfHubHTTPError

    from tasks.retry_policy import timed_out

    request = httpx2.Request("POST", f"{HUB_URL}/api/datasets/alice/x/commit/main")
    error = HfHubHTTPError("gateway", response=httpx2.Response(status, request=request))  # type: ignore[arg-type]
    assert timed_out(error) is someone_gave_up
    assert timed_out(RuntimeError("wrapped")) is False
    wrapped = RuntimeError("Error while uploading")
    wrapped.__cause__ = error
    assert timed_out(wrapped) is someone_gave_up
    assert timed_out(httpx2.ReadTimeout("read", request=request))


@pytest.mark.parametrize(("status", "transient"), [(520, True), (529, True), (503, True), (501, False), (505, False)])
def test_which_5xx_a_hub_task_retries(hub: Any, status: int, transient: bool) -> None:
    """A proxy's 520-524 or an overloaded server's 529 passes like a 503; 501 and 505 do not (the LLM client
    classifies them the same way: ``retry_policy.transient_status``)."""
    from huggingface_hub.errors import HfHubHTTPError
    from reliability_support import fast_client_backoff

    from tasks.retry_policy import http_status, is_transient

    repo = f"alice/status-{status}"
    HfApi(token=ALICE_TOKEN).create_repo(repo, repo_type="dataset", exist_ok=True)
    hub.faults.add("repo-info", status=status, count=None, repo=repo)
    with fast_client_backoff(), pytest.raises(HfHubHTTPError) as raised:
        hub_api(token=ALICE_TOKEN).repo_info(repo, repo_type="dataset")
    assert http_status(raised.value) == status
    assert is_transient(raised.value) is transient
