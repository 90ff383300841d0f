"""``HF_HUB_OFFLINE``: huggingface_hub refuses every request, so a push cannot succeed; it must say so at once.

huggingface_hub raises ``OfflineModeIsEnabled``, a ``ConnectionError``, from its request hook: no request
leaves the process. Taken for a dropped connection, it was retried with back-off (75 s in production) and a
commit was looked for on the Hub after it, before the run failed with a network-looking error.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from conftest import ALICE_TOKEN
from huggingface_hub import constants
from huggingface_hub.errors import OfflineModeIsEnabled
from prefect import flow, get_client
from prefect_server import final_task_runs
from pydantic import SecretStr

from tasks.hub_client import hub_api
from tasks.hub_commit import HubTarget
from tasks.prepare_repo import prepare_repo
from tasks.retry_policy import describe_failure, is_transient, may_have_landed


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """``HF_HUB_OFFLINE=1``, as huggingface_hub reads it (once, at import, into ``constants``)."""
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    yield


def test_offline_mode_is_not_a_transient_failure(hub: object, repo: str, offline: None) -> None:
    with pytest.raises(OfflineModeIsEnabled) as raised:
        hub_api(token=ALICE_TOKEN).repo_info(repo, repo_type="dataset")
    assert not is_transient(raised.value)
    assert not may_have_landed(raised.value)  # no request left the process: nothing to look for on the Hub
    assert "HF_HUB_OFFLINE" in describe_failure(raised.value)


def test_a_task_fails_at_once_in_offline_mode(hub: object, repo_id: str, prefect_api: None, offline: None) -> None:
    @flow
    def prepare() -> None:
        prepare_repo(HubTarget(repo_id=repo_id), SecretStr(ALICE_TOKEN))

    state = prepare(return_state=True)
    assert state.is_failed()
    with get_client(sync_client=True) as client:
        runs = final_task_runs(client, [state.state_details.flow_run_id], expect=["prepare-repo"])
    assert [r.run_count for r in runs] == [1]  # not 1 + HFDS_STAGE_RETRIES
    assert "HF_HUB_OFFLINE" in str(runs[0].state.message)
