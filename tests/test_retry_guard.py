"""Which commits stop a Retry (tasks.retry_guard), read from a real branch history on the embedded Hub.

The end-to-end case (last night's failed run retried from the UI after tonight's push) is in test_prefect_ops.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from conftest import ALICE_TOKEN
from huggingface_hub import CommitOperationAdd, HfApi

from tasks.hub_commit import HubTarget
from tasks.retry_guard import RetryOrigin, newer_run_commit, run_named_by

LAST_NIGHT, TONIGHT = str(uuid.uuid4()), str(uuid.uuid4())
LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)


def commit(api: HfApi, repo_id: str, title: str, run: str | None, revision: str = "main") -> str:
    info = api.create_commit(
        repo_id,
        [CommitOperationAdd(path_in_repo=f"{uuid.uuid4().hex}.txt", path_or_fileobj=title.encode())],
        commit_message=title,
        commit_description=f"Prefect-Flow-Run: {run}" if run else "",
        repo_type="dataset",
        revision=revision,
    )
    return str(info.oid)


def origin(started: datetime = LONG_AGO, root: str = LAST_NIGHT) -> RetryOrigin:
    return RetryOrigin(root_run=root, first_started=started, retried_run=root)


def newer(api: HfApi, repo_id: str, retry: RetryOrigin, revision: str = "main") -> str | None:
    found = newer_run_commit(api, HubTarget(repo_id=repo_id, revision=revision), ALICE_TOKEN, retry)
    return None if found is None else str(found["id"])


def test_a_commit_of_another_run_since_the_retried_run_started_stops_the_retry(api: HfApi, repo: str) -> None:
    commit(api, repo, "Upload dataset card", LAST_NIGHT)
    tonight = commit(api, repo, "Upload dataset card", TONIGHT)
    by_hand = commit(api, repo, "Edit README.md", None)  # no trailer: not a run, does not stop the Retry itself
    assert newer(api, repo, origin()) == tonight
    # The same commit older than the retried run's first start was there before it: the Retry resumes.
    assert newer(api, repo, origin(started=datetime.now(UTC) + timedelta(days=1))) is None
    assert by_hand and run_named_by(f"Prefect-Flow-Run: {TONIGHT.upper()}") == TONIGHT


def test_the_retried_runs_own_latest_commit_ends_the_search(api: HfApi, repo: str) -> None:
    commit(api, repo, "Upload dataset card", TONIGHT)  # before the retried run's own commits
    commit(api, repo, "Upload dataset card", LAST_NIGHT)
    commit(api, repo, "Upload main dataset files", LAST_NIGHT)
    assert newer(api, repo, origin()) is None
    assert newer(api, repo, origin(root=LAST_NIGHT.upper())) is None  # ids compared case-insensitively


def test_other_branches_and_missing_repos_do_not_stop_a_retry(api: HfApi, repo: str) -> None:
    api.create_branch(repo, branch="checkpoint", repo_type="dataset")
    commit(api, repo, "Checkpoint", TONIGHT, revision="checkpoint")
    assert newer(api, repo, origin()) is None
    assert newer(api, repo, origin(), revision="no-such-branch") is None
    assert newer(api, f"alice/missing-{uuid.uuid4().hex[:8]}", origin()) is None
