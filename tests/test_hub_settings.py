"""Settings of this process that no retry can fix: a Hub task fails at once, saying which setting is wrong.

- ``HF_HUB_OFFLINE``: huggingface_hub raises ``OfflineModeIsEnabled``, a ``ConnectionError``, from its request
  hook; no request leaves the process.
- ``HF_ENDPOINT`` without ``https://`` (``huggingface.co``, ``127.0.0.1:8765``): httpx raises
  ``UnsupportedProtocol``, a ``TransportError``, before any connection.
- ``hf_xet`` used (``HF_HUB_DISABLE_XET`` unset, as on huggingface.co) with a Hub that has no Xet storage, as
  localhub: its token endpoint answers 400, and hf_xet reports any HTTP failure as a ``ConnectionError`` that
  names the status. (On huggingface.co the same holds for a 4xx from the token endpoint or the Xet storage.)

Taken for a dropped connection, each was retried with back-off (75 s in production) and a commit was looked for
on the Hub after it, before the run failed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ALICE_TOKEN, HUB_URL
from factories import make_dataset_folder
from huggingface_hub import CommitOperationAdd, constants
from prefect import flow, get_client
from pydantic import SecretStr

from flows.push import push_dataset
from tasks.hub_client import hub_api
from tasks.hub_commit import HubTarget
from tasks.prepare_repo import prepare_repo
from tasks.retry_policy import describe_failure, is_transient, may_have_landed


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """``HF_HUB_OFFLINE=1``, as huggingface_hub reads it (once, at import, into ``constants``)."""
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    yield "HF_HUB_OFFLINE"


@pytest.fixture
def endpoint_without_scheme(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """``HF_ENDPOINT=127.0.0.1:PORT``, as huggingface_hub reads it (once, at import, into ``constants``)."""
    monkeypatch.setattr(constants, "ENDPOINT", HUB_URL.removeprefix("http://"))
    yield "protocol"


@pytest.fixture
def xet_without_xet_storage(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """``HF_HUB_DISABLE_XET`` unset, as huggingface_hub reads it (once, at import, into ``constants``)."""
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", False)
    monkeypatch.setenv("HFDS_UPLOAD_AHEAD", "0")  # the stage uploads its files itself
    yield "400 Bad Request"


@pytest.fixture(params=["offline", "endpoint_without_scheme"])
def bad_setting(request: pytest.FixtureRequest) -> str:
    """One of the settings, applied; the word the failure's message must hold."""
    return str(request.getfixturevalue(request.param))


def test_the_failure_is_not_transient(hub: object, repo: str, bad_setting: str) -> None:
    with pytest.raises(Exception) as raised:  # each setting has its own exception
        hub_api(token=ALICE_TOKEN).repo_info(repo, repo_type="dataset")
    assert not is_transient(raised.value)
    assert not may_have_landed(raised.value)  # no request reached the Hub: nothing to look for there
    assert bad_setting in describe_failure(raised.value)


def test_a_task_fails_at_once(hub: object, repo_id: str, prefect_api: None, bad_setting: str) -> None:
    @flow
    def prepare() -> None:
        prepare_repo(HubTarget(repo_id=repo_id), SecretStr(ALICE_TOKEN))

    state = prepare(return_state=True)
    assert state.is_failed()
    with get_client(sync_client=True) as client:
        from prefect_server import final_task_runs  # here: test_prefect_ops registers the module as a plugin later

        runs = final_task_runs(client, [state.state_details.flow_run_id], expect=["prepare-repo"])
    assert [r.run_count for r in runs] == [1]  # not 1 + HFDS_STAGE_RETRIES
    assert bad_setting in str(runs[0].state.message)


def test_hf_xets_report_of_a_refusal_is_not_transient(
    hub: object, repo: str, xet_without_xet_storage: str
) -> None:
    parquet = CommitOperationAdd("data/a.parquet", b"PAR1" + bytes(100) + b"PAR1")  # LFS: .gitattributes
    with pytest.raises(ConnectionError) as raised:
        hub_api(token=ALICE_TOKEN).preupload_lfs_files(repo, [parquet], repo_type="dataset")
    assert xet_without_xet_storage in str(raised.value)
    assert not is_transient(raised.value) and not may_have_landed(raised.value)


def test_a_stage_whose_upload_hf_xet_reports_refused_fails_at_once(
    hub: object, repo_id: str, prefect_api: None, tmp_path: Path, xet_without_xet_storage: str
) -> None:
    folder = make_dataset_folder(tmp_path / "ds", batches=1, images=0, processor_dir=None, processor_file=None)
    state = push_dataset(folder, repo_id, "Xet refused.", token=SecretStr(ALICE_TOKEN), stages=["data"],
                         return_state=True)  # fmt: skip
    assert state.is_failed()
    with get_client(sync_client=True) as client:
        from prefect_server import final_task_runs, task_run_base_name  # see above

        runs = final_task_runs(client, [state.state_details.flow_run_id], expect=["push-data"])
    assert [r.run_count for r in runs if task_run_base_name(r) == "push-data"] == [1]  # not 1 + HFDS_STAGE_RETRIES
