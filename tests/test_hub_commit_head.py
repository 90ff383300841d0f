"""The head a stage hands to the next (``commit_plan(head_hint=...)``), through the real client and the embedded Hub.

A hint spares reading the branch; it must never make a stage skip or lose a change when the branch moved since.
"""

from __future__ import annotations

from typing import Any

from huggingface_hub import CommitOperationAdd, HfApi

from tasks.hub_commit import HubTarget, commit_plan
from tasks.stage_plan import CommitPlan, PlannedFile


def _plan(label: str, files: dict[str, bytes], scope: str | None = None) -> CommitPlan:
    return CommitPlan(
        stage="data",
        label=label,
        message=f"Upload {label}",
        files=tuple(PlannedFile(path_in_repo=p, content=c) for p, c in files.items()),
        scope=scope,
    )


def _head(api: HfApi, repo: str) -> str:
    sha = api.repo_info(repo, repo_type="dataset").sha
    assert sha is not None
    return sha


def _routes(hub: Any) -> list[str]:
    return [r.route for r in hub.requests]


def _content(api: HfApi, repo: str, path: str) -> bytes:
    with open(api.hf_hub_download(repo, path, repo_type="dataset", revision="main"), "rb") as fh:
        return fh.read()


def test_a_current_hint_spares_reading_the_branch(hub: Any, api: HfApi, repo: str) -> None:
    target, token = HubTarget(repo_id=repo), str(api.token)
    first = commit_plan(api, target, _plan("card", {"README.md": b"---\nlicense: mit\n---\n# card\n"}), token)
    hub.clear_requests()
    second = commit_plan(api, target, _plan("config", {"builder_config.json": b"{}"}), token, head_hint=first.head)
    assert "repo-info" not in _routes(hub)
    [commit] = second.commits
    assert api.list_repo_commits(repo, repo_type="dataset")[1].commit_id == first.head  # made on the hinted head
    assert second.head == commit.oid == _head(api, repo)


def test_a_stale_hint_is_refused_then_the_plan_is_compared_at_the_head(hub: Any, api: HfApi, repo: str) -> None:
    target, token = HubTarget(repo_id=repo), str(api.token)
    stale = commit_plan(api, target, _plan("card", {"README.md": b"---\nlicense: mit\n---\n# card\n"}), token).head
    api.create_commit(  # someone else commits meanwhile
        repo, [CommitOperationAdd("notes.txt", b"theirs")], commit_message="Their change", repo_type="dataset"
    )
    moved = _head(api, repo)
    hub.clear_requests()
    outcome = commit_plan(api, target, _plan("config", {"builder_config.json": b"{}"}), token, head_hint=stale)
    assert [r.status for r in hub.requests if r.route == "commit"] == [412, 200]
    assert api.list_repo_commits(repo, repo_type="dataset")[1].commit_id == moved
    assert _content(api, repo, "notes.txt") == b"theirs"  # their change kept
    assert _content(api, repo, "builder_config.json") == b"{}"
    assert outcome.head == _head(api, repo)


def test_nothing_to_change_at_a_stale_hint_is_checked_at_the_head(hub: Any, api: HfApi, repo: str) -> None:
    """The plan's files are unchanged at the hinted head, but someone changed them since: the stage must not
    report "unchanged" and leave their version; it compares again where the branch is and commits."""
    target, token = HubTarget(repo_id=repo), str(api.token)
    plan = _plan("data", {"data/a.txt": b"ours"}, scope="data")
    stale = commit_plan(api, target, plan, token).head
    api.create_commit(
        repo, [CommitOperationAdd("data/a.txt", b"theirs")], commit_message="Their change", repo_type="dataset"
    )
    outcome = commit_plan(api, target, plan, token, head_hint=stale)
    assert len(outcome.commits) == 1
    assert _content(api, repo, "data/a.txt") == b"ours"


def test_nothing_to_change_at_a_current_hint_makes_no_commit(hub: Any, api: HfApi, repo: str) -> None:
    target, token = HubTarget(repo_id=repo), str(api.token)
    plan = _plan("data", {"data/a.txt": b"ours"}, scope="data")
    head = commit_plan(api, target, plan, token).head
    hub.clear_requests()
    outcome = commit_plan(api, target, plan, token, head_hint=head)
    assert outcome.commits == [] and outcome.head == head
    assert "commit" not in _routes(hub)
