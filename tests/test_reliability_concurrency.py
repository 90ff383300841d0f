"""Concurrent pushes: two folders to two repos at once, and two pushes racing on one repo.

What a user should expect when two pushes race on one repo (docs/reliability.md): every stage commit is atomic and
made on the head it read (``parent_commit``); a concurrent commit turns it into a 412 that the stage retries after
re-reading the branch. So each stage ends with exactly one push's complete content (the last writer of that stage
wins), nothing is half-written, and both runs complete. Stages are not a transaction *together*, though: the repo
may end with the data of one push and the processors or metadata of the other.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import ALICE_TOKEN
from factories import make_dataset_folder
from huggingface_hub import hf_hub_download
from reliability_support import (
    DESCRIPTION,
    child_env,
    metadata_problems,
    normalised_card,
    push,
    read_text,
    record_figures,
    repo_files,
    start_child,
    titles,
)

pytestmark = pytest.mark.usefixtures("prefect_api", "hub")

FIGURES: dict[str, Any] = {}


@pytest.fixture(scope="module", autouse=True)
def _figures() -> Iterator[None]:
    yield
    record_figures("concurrency", FIGURES)


def _cli(folder: Path, repo_id: str) -> list[str]:
    return [str(folder), repo_id, "--description", DESCRIPTION]


def _stage_views(repo_id: str) -> dict[str, Any]:
    """The repo cut into what each stage owns."""
    files = repo_files(repo_id)

    def under(prefix: str) -> dict[str, str]:
        return {p: i for p, i in files.items() if p.startswith(prefix)}

    return {
        "card": normalised_card(read_text(repo_id, "README.md"), repo_id),
        "data": under("data/"),
        "images": under("images/"),
        "conversations": under("conversations/"),
        "summary": under("summary/"),
        "builder_config.json": files.get("builder_config.json"),
        "metadata.json": files.get("metadata.json"),
    }


def test_two_folders_to_two_repos_at_once(hub: Any, tmp_path: Path, repo_id: str) -> None:
    """Two processes push different folders to different repos at the same time (sharing the digest cache, the
    Prefect API and result storage); each repo equals a push made alone."""
    a = make_dataset_folder(tmp_path / "a", batches=3, rows_per_batch=5, seed=1)
    b = make_dataset_folder(tmp_path / "b", batches=2, rows_per_batch=5, processor_file=None, images=1, seed=2)
    repo_a, repo_b = repo_id + "-a", repo_id + "-b"
    env = child_env()
    children = [start_child("flows.push", _cli(a, repo_a), env), start_child("flows.push", _cli(b, repo_b), env)]
    for child in children:
        _, err = child.communicate(timeout=120)
        assert child.returncode == 0, err[-2000:]
    push(a, repo_id + "-alone-a")
    push(b, repo_id + "-alone-b")
    for repo, alone in ((repo_a, repo_id + "-alone-a"), (repo_b, repo_id + "-alone-b")):
        assert {p: i for p, i in repo_files(repo).items() if p != "README.md"} == {
            p: i for p, i in repo_files(alone).items() if p != "README.md"
        }
        assert normalised_card(read_text(repo, "README.md"), repo) == normalised_card(
            read_text(alone, "README.md"), alone
        )
        assert titles(repo) == titles(alone)
        assert metadata_problems(repo) == []


def _race(hub: Any, a: Path, b: Path, repo_id: str) -> tuple[list[tuple[str, str, int]], int]:
    """Push ``a`` and ``b`` to ``repo_id`` from two processes at once; (stdout, stderr, rc) of each, and the
    number of commits the Hub refused for a conflict."""
    hub.faults.add("preupload", latency=0.3, count=None, repo=repo_id)  # long stages: they overlap
    env = child_env()
    children = [start_child("flows.push", _cli(a, repo_id), env), start_child("flows.push", _cli(b, repo_id), env)]
    outcomes = [(*child.communicate(timeout=180), child.returncode) for child in children]
    hub.faults.clear()
    conflicts = sum(
        1 for r in hub.requests if r.route == "commit" and r.repo == repo_id and r.status in (409, 412)
    )
    return outcomes, conflicts


def test_two_pushes_racing_on_one_repo(hub: Any, tmp_path: Path, repo_id: str) -> None:
    """Two processes push different content (same layout) to one repo at once. Preuploads are slowed down so that
    both read the same head before either commits: commits conflict (412) and the stage re-plans and retries.

    Expected: no stage is half one push and half the other; a push whose retries all meet a conflict fails with
    the Hub's 412 message (at least one push completes); re-running the push that should win makes the repo
    exactly that push."""
    a = make_dataset_folder(tmp_path / "a", batches=2, rows_per_batch=5, images=2, seed=1)
    b = make_dataset_folder(tmp_path / "b", batches=2, rows_per_batch=5, images=2, seed=2)
    ref_a, ref_b = repo_id + "-ref-a", repo_id + "-ref-b"
    push(a, ref_a)
    push(b, ref_b)
    for attempt in range(3):  # the children start at slightly different times: make sure they did race
        race_repo = f"{repo_id}-race{attempt}"
        outcomes, conflicts = _race(hub, a, b, race_repo)
        if conflicts:
            break
    assert conflicts, "the two pushes never conflicted in 3 tries: the race was not exercised"
    for _, err, code in outcomes:
        last = err.strip().splitlines()[-1] if err.strip() else ""
        assert code == 0 or ("push failed" in last and "412" in last), (
            f"a racing push failed unclearly: {err[-3000:]}"
        )
    assert any(code == 0 for *_, code in outcomes), "neither racing push completed"
    FIGURES["race_commit_conflicts"] = conflicts
    FIGURES["race_pushes_completed"] = sum(1 for *_, code in outcomes if code == 0)

    views = {"A": _stage_views(ref_a), "B": _stage_views(ref_b)}
    final = _stage_views(race_repo)
    winners = {}
    for stage, content in final.items():
        owners = [name for name, view in views.items() if view[stage] == content]
        assert owners, f"stage {stage} holds neither push's complete content: {content}"
        winners[stage] = owners[0] if len(owners) == 1 else "identical in both"
    FIGURES["race_stage_winners"] = winners
    assert metadata_problems(race_repo) == []
    for path, oid in final["data"].items():  # the content is there, not only the pointers
        local = hf_hub_download(race_repo, path, repo_type="dataset", token=ALICE_TOKEN)
        assert hashlib.sha256(Path(local).read_bytes()).hexdigest() == oid

    push(a, race_repo)  # the recovery: re-run the push that should win
    assert _stage_views(race_repo) == views["A"]
    assert metadata_problems(race_repo) == []


def test_interleaved_pushes_leave_metadata_consistent(hub: Any, tmp_path: Path, repo_id: str) -> None:
    """One deterministic interleaving of two racing pushes with different layouts: A commits card, data, images and
    processors; B (fewer batches, no ``summary`` processor) pushes in full; then A commits builder config and
    metadata. Every stage is one push's complete content, but ``metadata.json`` (A's) must still describe the
    files that are in the repo (B's data): the files it lists must exist, and the data files must be listed."""
    a = make_dataset_folder(tmp_path / "a", batches=3, rows_per_batch=5, seed=1)
    b = make_dataset_folder(tmp_path / "b", batches=2, rows_per_batch=5, processor_file=None, seed=2)
    push(a, repo_id, stages=["card", "data", "images", "processors"])
    push(b, repo_id)
    push(a, repo_id, stages=["builder_config", "metadata"])
    files = repo_files(repo_id)
    assert "data/batch_00002.parquet" not in files  # B's data stage won
    problems = metadata_problems(repo_id)
    metadata = json.loads(read_text(repo_id, "metadata.json"))
    assert not problems, (
        "BUG (tasks/stages.py push_metadata): racing pushes leave metadata.json describing files the repo does not "
        "have. The metadata stage commits the local folder's file list on whatever head it finds, without checking "
        "that data/ and the processor folders at that head are the ones it lists. Problems: "
        + "; ".join(problems)
        + f". Listed: {metadata['file_paths']}"
    )
