"""The staged push end to end: real Prefect API (test harness), real huggingface_hub client, embedded Hub."""

from __future__ import annotations

import contextlib
import itertools
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import datasets
import pytest
import yaml
from conftest import ALICE_TOKEN, BOB_TOKEN, HUB_URL
from factories import make_dataset_folder
from huggingface_hub import CommitOperationAdd, HfApi, hf_hub_download
from prefect import flow, get_client
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterKey,
    FlowRunFilter,
    FlowRunFilterParentFlowRunId,
)
from prefect.states import AwaitingRetry
from prefect_server import events_named, final_task_runs, flow_run_count, task_run_base_name
from pydantic import SecretStr
from reliability_support import assert_same_as_reference, child_env, client_timeout, repo_files, titles

from flows.push import push_dataset
from flows.push_result import PushResult
from tasks.artifacts import UploadProgress
from tasks.credentials import MASKED
from tasks.file_digest import compute_digest
from tasks.folder_lock import FolderInUseError, generating_into
from tasks.stages import StageError
from tasks.validation import InvalidParameterError

pytestmark = pytest.mark.usefixtures("prefect_api", "hub")
datasets.config.USE_PARQUET_EXPORT = False  # no datasets-server probe against the embedded Hub

STAGE_TITLES = [
    "Upload dataset card",
    "Upload main dataset files",
    "Upload images",
    "Upload conversations processor outputs",
    "Upload summary processor outputs",
    "Upload builder_config.json",
    "Upload metadata.json",
]


def _push(folder: Path, repo_id: str, **kwargs: Any) -> PushResult:
    kwargs.setdefault("token", SecretStr(ALICE_TOKEN))
    return push_dataset(folder, repo_id, "Greetings in five languages, for tests.", **kwargs)


def _download_json(repo_id: str, path: str, revision: str | None = None) -> Any:
    local = hf_hub_download(repo_id, path, repo_type="dataset", revision=revision, token=ALICE_TOKEN)
    return json.loads(Path(local).read_text())


def test_staged_push_end_to_end(tmp_path: Path, repo_id: str, hub: Any) -> None:
    folder = make_dataset_folder(tmp_path / "ds", batches=3, rows_per_batch=10)
    hub.clear_requests()
    result = _push(folder, repo_id, tags=["greetings", "synthetic"])

    # Large files go up once each (pre-uploaded, then referenced by their stage's commit), none twice.
    uploads = [r for r in hub.requests if r.route == "lfs-upload"]
    large = [p for p in folder.rglob("*") if p.suffix in (".parquet", ".png")]
    assert len(uploads) == len(large)
    assert sum(r.bytes_in for r in uploads) == sum(p.stat().st_size for p in large)

    assert titles(repo_id) == ["initial commit", *STAGE_TITLES]
    assert [s.stage for s in result.stages] == [
        "card",
        "data",
        "images",
        "processors",
        "builder_config",
        "metadata",
    ]
    expected = {
        ".gitattributes",
        "README.md",
        "builder_config.json",
        "metadata.json",
        *(f"data/batch_{i:05d}.parquet" for i in range(3)),
        *(f"conversations/batch_{i:05d}.parquet" for i in range(3)),
        "summary/summary.parquet",
        *(f"images/avatar/{i:08x}-0000-4000-8000-000000000000.png" for i in range(3)),
    }
    assert set(repo_files(repo_id)) == expected

    # Each commit adds exactly its stage's files.
    commits = list(reversed(HfApi().list_repo_commits(repo_id, repo_type="dataset", token=ALICE_TOKEN)))
    added = []
    for before, after in itertools.pairwise(commits):
        old, new = repo_files(repo_id, before.commit_id), repo_files(repo_id, after.commit_id)
        added.append(sorted(p for p in new if old.get(p) != new[p]))
    assert added[0] == ["README.md"]
    assert added[1] == [f"data/batch_{i:05d}.parquet" for i in range(3)]
    assert all(p.startswith("images/") for p in added[2]) and len(added[2]) == 3
    assert added[3] == [f"conversations/batch_{i:05d}.parquet" for i in range(3)]
    assert added[4] == ["summary/summary.parquet"]
    assert added[5] == ["builder_config.json"] and added[6] == ["metadata.json"]

    metadata = _download_json(repo_id, "metadata.json")
    assert metadata["file_paths"]["parquet-files"] == [f"data/batch_{i:05d}.parquet" for i in range(3)]
    assert metadata["file_paths"]["processor-files"]["summary"] == ["summary/summary.parquet"]
    assert metadata["some_future_key"] == {"kept": True}
    builder = _download_json(repo_id, "builder_config.json")
    assert builder["data_designer"]["model_configs"][0]["api_key"] == "<redacted>"
    assert "sk-SECRET" not in json.dumps(builder)

    for config, rows in (("data", 30), ("conversations", 30), ("summary", 30)):
        ds = datasets.load_dataset(repo_id, config, split="train", token=ALICE_TOKEN)
        assert ds.num_rows == rows, config
    convo = datasets.load_dataset(repo_id, "conversations", split="train", token=ALICE_TOKEN)
    assert convo[0]["messages"][0]["role"] == "user"


def test_a_plain_string_token_is_masked_in_the_runs_parameters(tmp_path: Path, repo_id: str) -> None:
    folder = make_dataset_folder(tmp_path / "ds", batches=1, processor_dir=None, processor_file=None, images=0)
    state = push_dataset(folder, repo_id, "Plain token.", token=ALICE_TOKEN, return_state=True)  # type: ignore[arg-type]
    assert state.is_completed()
    with get_client(sync_client=True) as client:
        parameters = client.read_flow_run(state.state_details.flow_run_id).parameters
    assert parameters["token"] == MASKED and ALICE_TOKEN not in json.dumps(parameters)


def _pull_requests(repo_id: str) -> list[str]:
    refs = HfApi().list_repo_refs(repo_id, repo_type="dataset", include_pull_requests=True, token=ALICE_TOKEN)
    return sorted(r.ref for r in refs.pull_requests or [])


def test_a_split_stage_retried_after_opening_the_pull_request_commits_into_it(
    tmp_path: Path, repo_id: str, hub: Any
) -> None:
    _push(make_dataset_folder(tmp_path / "owner", batches=1, images=0, processor_file=None), repo_id)
    contribution = make_dataset_folder(tmp_path / "c", batches=3, images=0, processor_file=None, seed=7)
    # Part 1 of the data commit opens the pull request; part 2 is refused once: the task's retry goes on in it.
    hub.faults.add("commit", status=500, count=1, skip=1, repo=repo_id)
    result = _push(contribution, repo_id, create_pr=True, stages=["data"], max_files_per_commit=1)
    assert _pull_requests(repo_id) == ["refs/pr/1"] and result.revision == "refs/pr/1"
    on_pr = repo_files(repo_id, "refs/pr/1")
    assert sorted(p for p in on_pr if p.startswith("data/")) == [f"data/batch_0000{i}.parquet" for i in range(3)]


def test_a_retry_whose_first_stage_changed_goes_on_in_the_runs_pull_request(
    tmp_path: Path, repo_id: str, hub: Any
) -> None:
    _push(make_dataset_folder(tmp_path / "owner", batches=1, images=0, processor_file=None), repo_id)
    folder = make_dataset_folder(tmp_path / "ds", batches=2, images=0, processor_file=None, seed=7)
    hub.faults.add("commit", status=403, skip=2, count=None, repo=repo_id)  # card (opens it), data; then refused
    parameters = {"dataset": folder, "repo_id": repo_id, "description": "Contribution.", "create_pr": True}
    parameters["token"] = SecretStr(ALICE_TOKEN)
    state = push_dataset(**parameters, return_state=True)
    assert state.is_failed() and _pull_requests(repo_id) == ["refs/pr/1"]
    hub.faults.clear()
    # The user regenerates a batch before pressing Retry: the card's and the data's content changed.
    fresh = make_dataset_folder(tmp_path / "fresh", batches=2, images=0, processor_file=None, seed=9)
    shutil.copy(fresh / "parquet-files" / "batch_00001.parquet", folder / "parquet-files" / "batch_00001.parquet")
    retried = _retry_like_the_ui(push_dataset, state.state_details.flow_run_id, parameters)
    assert retried.is_completed() and retried.result().revision == "refs/pr/1"
    assert _pull_requests(repo_id) == ["refs/pr/1"]
    assert (
        repo_files(repo_id, "refs/pr/1")["data/batch_00001.parquet"]
        == compute_digest(folder / "parquet-files" / "batch_00001.parquet").sha256
    )


def test_a_saved_block_passed_to_a_deployment_run_is_loaded_again(tmp_path: Path, repo_id: str) -> None:
    # run_deployment (or a trigger) records a block parameter with its token masked: the run, as a worker starts
    # it, and a Retry of it, load the saved block again by the name Prefect recorded beside the mask.
    from prefect.deployments import run_deployment
    from prefect.flow_engine import run_flow

    from tasks.credentials import HuggingFaceCredentials

    folder = make_dataset_folder(tmp_path / "ds", batches=1, processor_dir=None, processor_file=None, images=0)
    HuggingFaceCredentials(token=SecretStr(ALICE_TOKEN)).save("alice-writer", overwrite=True)
    push_dataset.to_deployment(name="with-a-block").apply()
    parameters = {"dataset": str(folder), "repo_id": repo_id, "description": "Pushed with a saved block."}
    parameters["credentials"] = HuggingFaceCredentials.load("alice-writer")
    started = run_deployment("push-dataset/with-a-block", parameters=parameters, timeout=0)
    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(started.id)
    assert flow_run.parameters["credentials"]["token"] == MASKED
    state = run_flow(push_dataset, flow_run=flow_run, parameters=flow_run.parameters, return_type="state")
    assert state.is_completed(), state.message
    assert "data/batch_00000.parquet" in repo_files(repo_id)
    retried = _retry_like_the_ui(push_dataset, started.id, flow_run.parameters)
    assert retried.is_completed(), retried.message


def test_artifacts_event_and_no_token_anywhere(tmp_path: Path, repo_id: str) -> None:
    # A processor name may hold what an artifact key may not (Prefect: lowercase letters, digits, dashes).
    folder = make_dataset_folder(
        tmp_path / "ds",
        batches=2,
        processor_dir="Conversations_v2",
        processor_file=None,
        images=0,
        builder_config=False,
    )
    state = push_dataset(folder, repo_id, "Artifacts test.", token=SecretStr(ALICE_TOKEN), return_state=True)
    assert state.is_completed()
    flow_run_id = state.state_details.flow_run_id
    slug = repo_id.replace("/", "-")
    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
        flow_run = client.read_flow_run(flow_run_id)
    keys = {a.key for a in arts}
    assert {
        f"{slug}-card-commit",
        f"{slug}-data-commit",
        f"{slug}-processors-conversations-v2-commit",
        f"{slug}-metadata-commit",
        f"{slug}-push-summary",
        f"{slug}-card",
        f"{slug}-data-upload",
    } <= keys
    assert f"{slug}-images-commit" not in keys and f"{slug}-builder-config-commit" not in keys  # skipped stages
    table = next(a for a in arts if a.key == f"{slug}-push-summary")
    rows = json.loads(table.data) if isinstance(table.data, str) else table.data
    assert [r["stage"] for r in rows] == [
        "card",
        "data",
        "images",
        "processors-Conversations_v2",
        "builder_config",
        "metadata",
    ]
    head = HfApi().repo_info(repo_id, repo_type="dataset", token=ALICE_TOKEN).sha
    assert rows[-1]["commit"] == head
    # Each stage commit on the Hub names the flow run that made it.
    messages = {
        c.commit_id: c.message for c in HfApi().list_repo_commits(repo_id, repo_type="dataset", token=ALICE_TOKEN)
    }
    stage_commits = [r["commit"] for r in rows if len(r["commit"]) == 40]
    assert len(stage_commits) == 4
    assert all(f"Prefect-Flow-Run: {flow_run_id}" in messages[oid] for oid in stage_commits)
    link = next(a for a in arts if a.key == f"{slug}-data-commit")
    assert f"/datasets/{repo_id}/commit/" in str(link.data)

    # The event that chains other flows: the repo as resource, the final commit and the record count.
    (event,) = _pushed_events(repo_id, 1)
    assert event["resource"]["prefect.resource.id"] == f"hf.dataset.{repo_id}"
    assert event["resource"]["hf.dataset.changed"] == "true"
    assert event["payload"]["commit"] == head and event["payload"]["records"] == 40
    assert event["payload"]["commits"] == 4 and event["payload"]["changed"] is True

    everything = json.dumps([a.model_dump(mode="json") for a in arts]) + json.dumps(
        flow_run.parameters, default=str
    )
    assert ALICE_TOKEN not in everything
    for path in repo_files(repo_id):
        if path.endswith((".json", ".md")):
            text = Path(hf_hub_download(repo_id, path, repo_type="dataset", token=ALICE_TOKEN)).read_text()
            assert ALICE_TOKEN not in text


def _pushed_events(repo_id: str, count: int) -> list[dict[str, Any]]:
    """The ``hf.dataset.pushed`` events of this repo, oldest first, once ``count`` of them reached the API (events
    are sent asynchronously, through a websocket client)."""
    events: list[dict[str, Any]] = []
    deadline = time.monotonic() + 30
    while len(events) < count and time.monotonic() < deadline:
        events = [e for e in events_named("hf.dataset.pushed") if e["payload"].get("repo_id") == repo_id]
        time.sleep(0.2)
    return sorted(events, key=lambda e: str(e["occurred"]))


def test_a_push_whose_stages_were_all_skipped_still_names_the_commit(tmp_path: Path, repo_id: str) -> None:
    """The event's ``commit`` is where the branch is, also when no selected stage had anything to push."""
    folder = make_dataset_folder(tmp_path / "ds", batches=1, images=0, processor_dir=None, processor_file=None)
    _push(folder, repo_id)
    result = _push(folder, repo_id, stages=["processors"])  # the folder has none: skipped
    assert [s.skipped for s in result.stages] == [True] and not result.commits
    head = HfApi().repo_info(repo_id, repo_type="dataset", token=ALICE_TOKEN).sha
    assert _pushed_events(repo_id, 2)[-1]["payload"]["commit"] == head


def test_upload_progress_moves_by_small_steps(repo_id: str) -> None:
    """Uploads that each add less than a point (many small files) still move the artifact, by whole points."""
    only_this = ArtifactFilter(key=ArtifactFilterKey(any_=[f"{repo_id.replace('/', '-')}-data-upload"]))

    def shown(client: SyncPrefectClient) -> float:
        (artifact,) = client.read_artifacts(artifact_filter=only_this)
        return float(artifact.data)  # type: ignore[arg-type]

    @flow
    def upload() -> tuple[list[float], float]:
        progress = UploadProgress(repo_id, "data")
        along: list[float] = []
        with get_client(sync_client=True) as client:
            for done in range(0, 1001, 3):  # 0.3 % per call, as many small files give
                progress(done, 1000)
                if done % 150 == 0:
                    along.append(shown(client))
            progress(1000, 1000)
            return along, shown(client)

    along, last = upload()
    assert all(s <= done / 10 <= s + 1.0 for s, done in zip(along, range(0, 1001, 150), strict=True)), along
    assert last == 100.0


def test_repush_identical_then_smaller(tmp_path: Path, repo_id: str) -> None:
    folder = make_dataset_folder(tmp_path / "ds", batches=3, rows_per_batch=5)
    _push(folder, repo_id)
    before = titles(repo_id)
    again = _push(folder, repo_id)
    assert titles(repo_id) == before
    assert again.commits == []
    # The identical re-push still says where the dataset is (the unchanged head), and that nothing changed, so a
    # trigger can skip it.
    head = HfApi().repo_info(repo_id, repo_type="dataset", token=ALICE_TOKEN).sha
    first, second = _pushed_events(repo_id, 2)
    assert first["payload"]["commit"] == second["payload"]["commit"] == head
    assert (first["payload"]["changed"], second["payload"]["changed"]) == (True, False)
    assert second["payload"]["commits"] == 0 and second["resource"]["hf.dataset.changed"] == "false"

    smaller = make_dataset_folder(tmp_path / "small", batches=2, rows_per_batch=5)
    _push(smaller, repo_id)
    files = repo_files(repo_id)
    assert sorted(p for p in files if p.startswith("data/")) == [
        "data/batch_00000.parquet",
        "data/batch_00001.parquet",
    ]
    assert sorted(p for p in files if p.startswith("conversations/")) == [
        "conversations/batch_00000.parquet",
        "conversations/batch_00001.parquet",
    ]
    new_titles = titles(repo_id)[len(before) :]
    # The stale batch disappears in the data stage's own commit (the kept batches are unchanged).
    assert "Upload main dataset files" in new_titles
    data_commit = HfApi().list_repo_commits(repo_id, repo_type="dataset", token=ALICE_TOKEN)[::-1][
        len(before) + new_titles.index("Upload main dataset files")
    ]
    assert "data/batch_00002.parquet" not in repo_files(repo_id, data_commit.commit_id)
    ds = datasets.load_dataset(repo_id, "data", split="train", token=ALICE_TOKEN)
    assert ds.num_rows == 10


def test_a_gitignore_in_the_repo_does_not_drop_pushed_files(tmp_path: Path, repo: str) -> None:
    # The Hub answers preupload with shouldIgnore for paths its .gitignore matches, and huggingface_hub leaves them
    # out of the commit: the push reported the images and the summary processor as committed, the Hub had none of
    # them (the card declared a config without files), and every re-push committed them again, in empty commits.
    ignore = b"*.png\nsummary/\n"
    HfApi().create_commit(repo, [CommitOperationAdd(".gitignore", ignore)], commit_message="Ignore", repo_type="dataset",
                          token=ALICE_TOKEN)  # fmt: skip
    folder = make_dataset_folder(tmp_path / "ds", batches=2, rows_per_batch=5)
    _push(folder, repo)
    files = repo_files(repo)
    assert "summary/summary.parquet" in files
    assert len([p for p in files if p.startswith("images/")]) == len(list((folder / "images").rglob("*.png"))) > 0
    before = titles(repo)
    assert _push(folder, repo).commits == [] and titles(repo) == before


def test_vanished_processor_loses_its_folder_and_private_applies(tmp_path: Path, repo_id: str) -> None:
    _push(make_dataset_folder(tmp_path / "a"), repo_id)
    assert not HfApi().repo_info(repo_id, repo_type="dataset", token=ALICE_TOKEN).private
    _push(make_dataset_folder(tmp_path / "b", processor_file=None), repo_id, private=True)
    files = repo_files(repo_id)
    assert not any(p.startswith("summary/") for p in files)
    card = Path(hf_hub_download(repo_id, "README.md", repo_type="dataset", token=ALICE_TOKEN)).read_text()
    assert "config_name: summary" not in card
    assert HfApi().repo_info(repo_id, repo_type="dataset", token=ALICE_TOKEN).private
    with pytest.raises(Exception, match=r"Repository Not Found|404"):
        HfApi().repo_info(repo_id, repo_type="dataset", token=BOB_TOKEN)


def test_images_and_builder_config_gone_from_the_folder_go_from_the_hub(tmp_path: Path, repo_id: str) -> None:
    # A stale builder_config.json would recreate another pipeline; stale images would still be read back.
    _push(make_dataset_folder(tmp_path / "a"), repo_id)
    assert "builder_config.json" in repo_files(repo_id) and any(
        p.startswith("images/") for p in repo_files(repo_id)
    )
    result = _push(make_dataset_folder(tmp_path / "b", images=0, builder_config=False), repo_id)
    files = repo_files(repo_id)
    assert "builder_config.json" not in files and not any(p.startswith("images/") for p in files)
    history = titles(repo_id)
    assert history[-3:] == [  # the card lost its link to the builder config; metadata.json is unchanged
        "Upload dataset card",
        "Remove images no longer in the dataset",
        "Remove builder_config.json, no longer in the dataset",
    ]
    assert sorted(c.files_deleted for c in result.commits if c.message.startswith("Remove")) == [1, 3]
    # Nothing left to delete: the stages are skipped again, with no commit.
    again = _push(make_dataset_folder(tmp_path / "b", images=0, builder_config=False), repo_id)
    assert again.commits == [] and titles(repo_id) == history
    skipped = {s.stage: s.skipped for s in again.stages}
    assert skipped["images"] and skipped["builder_config"]


def test_the_card_cites_the_hub_it_was_pushed_to(tmp_path: Path, repo_id: str) -> None:
    # A self-hosted Hub (HF_ENDPOINT) is where readers find the dataset, not huggingface.co.
    _push(make_dataset_folder(tmp_path / "ds", batches=1, processor_file=None, images=0), repo_id)
    card = Path(hf_hub_download(repo_id, "README.md", repo_type="dataset", token=ALICE_TOKEN)).read_text()
    assert f"\\url{{{HUB_URL}/datasets/{repo_id}}}" in card and "huggingface.co/datasets" not in card


def test_split_commits_and_pull_request(tmp_path: Path, repo_id: str) -> None:
    folder = make_dataset_folder(tmp_path / "ds", batches=5, rows_per_batch=3, images=0, processor_file=None)
    _push(folder, repo_id, max_files_per_commit=2, stages=["data"])
    assert titles(repo_id)[1:] == [f"Upload main dataset files (part {i} of 3)" for i in (1, 2, 3)]

    other = make_dataset_folder(
        tmp_path / "pr", batches=1, rows_per_batch=3, images=0, processor_file=None, seed=7
    )
    main_before = repo_files(repo_id)
    result = _push(other, repo_id, create_pr=True)
    assert result.revision == "refs/pr/1"
    assert repo_files(repo_id) == main_before  # main untouched
    pr_files = repo_files(repo_id, "refs/pr/1")
    assert sorted(p for p in pr_files if p.startswith("data/")) == ["data/batch_00000.parquet"]
    assert "metadata.json" in pr_files and "README.md" in pr_files


def test_a_new_run_continues_an_open_pull_request_given_its_ref(tmp_path: Path, repo_id: str) -> None:
    """A Retry of a failed pull-request push continues in its pull request by itself; a new run opens another
    one unless told which to continue (README: "Pull requests")."""
    folder = make_dataset_folder(tmp_path / "ds", batches=2, images=0, processor_file=None)
    _push(folder, repo_id, stages=["builder_config"])  # the repo's main branch, before the contribution
    main_before = repo_files(repo_id)
    first = _push(folder, repo_id, create_pr=True, stages=["card", "data"])  # as a run that failed after data
    assert first.revision == "refs/pr/1"
    result = _push(folder, repo_id, revision="refs/pr/1")
    assert result.revision == "refs/pr/1"
    assert [s.stage for s in result.stages if s.commits] == ["processors", "metadata"]  # card, data already there
    refs = HfApi().list_repo_refs(repo_id, repo_type="dataset", include_pull_requests=True, token=ALICE_TOKEN)
    assert [r.ref for r in refs.pull_requests or []] == ["refs/pr/1"]
    assert repo_files(repo_id) == main_before
    assert {"README.md", "metadata.json", "data/batch_00001.parquet"} <= set(repo_files(repo_id, "refs/pr/1"))


def test_a_push_to_a_branch_leaves_main_and_its_cards_snippet_reads_the_branch(
    tmp_path: Path, repo_id: str
) -> None:
    _push(make_dataset_folder(tmp_path / "main", batches=1, images=0, processor_file=None), repo_id)
    main_before = repo_files(repo_id)
    folder = make_dataset_folder(tmp_path / "ds", batches=3, rows_per_batch=4, images=0, processor_file=None)
    result = _push(folder, repo_id, revision="nightly")
    assert result.revision == "nightly"
    assert repo_files(repo_id) == main_before
    card = Path(hf_hub_download(repo_id, "README.md", repo_type="dataset", revision="nightly")).read_text()
    # The Quick Start's first snippet, run as a reader would copy it: the branch's 12 records, not main's 20.
    snippet = card.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {}
    exec(snippet, namespace)  # noqa: S102 - the card's own code, as a reader runs it
    assert namespace["ds"].num_rows == 12


def test_a_contributor_pushes_to_someone_elses_repo_as_a_pull_request(tmp_path: Path, repo_id: str) -> None:
    owners = make_dataset_folder(tmp_path / "owner", batches=2, images=0, processor_file=None)
    _push(owners, repo_id)
    main_before = repo_files(repo_id)
    contribution = make_dataset_folder(tmp_path / "bob", batches=1, images=0, processor_file=None, seed=7)
    result = _push(contribution, repo_id, token=SecretStr(BOB_TOKEN), create_pr=True)
    assert result.revision == "refs/pr/1" and len(result.commits) == 4  # card opens it; data, processors, metadata
    assert repo_files(repo_id) == main_before  # the owner's branch is untouched
    in_pr = repo_files(repo_id, "refs/pr/1")
    assert sorted(p for p in in_pr if p.startswith("data/")) == ["data/batch_00000.parquet"]
    assert _download_json(repo_id, "metadata.json", "refs/pr/1")["actual_num_records"] == 20


@pytest.mark.parametrize(
    ("fault", "timeout"),
    [
        ({"drop": "after"}, None),  # the Hub applies the commit, then the connection drops
        ({"latency": 3.0}, 1.0),  # the client gives up after 1 s; the Hub applies the commit 2 s later
    ],
    ids=["answer-dropped", "client-timed-out"],
)
def test_a_lost_answer_to_the_commit_opening_the_pull_request_does_not_open_a_second_one(
    tmp_path: Path, repo_id: str, hub: Any, fault: dict[str, Any], timeout: float | None
) -> None:
    _push(make_dataset_folder(tmp_path / "owner", batches=2, images=0, processor_file=None), repo_id)
    contribution = make_dataset_folder(tmp_path / "bob", batches=1, images=0, processor_file=None, seed=7)
    hub.faults.add("commit", count=1, repo=repo_id, **fault)  # the card's commit opens the PR; answer lost
    with client_timeout(timeout) if timeout else contextlib.nullcontext():
        result = _push(contribution, repo_id, token=SecretStr(BOB_TOKEN), create_pr=True)
    card = next(s for s in result.stages if s.stage == "card")
    assert card.commits[0].recovered and result.revision == "refs/pr/1"
    refs = HfApi().list_repo_refs(repo_id, repo_type="dataset", include_pull_requests=True, token=ALICE_TOKEN)
    assert [r.ref for r in refs.pull_requests or []] == ["refs/pr/1"]  # one pull request, with every stage
    assert "data/batch_00000.parquet" in repo_files(repo_id, "refs/pr/1")


def test_a_misspelt_card_template_fails_before_any_request(tmp_path: Path, repo_id: str, hub: Any) -> None:
    folder = make_dataset_folder(tmp_path / "ds", batches=1, images=0, processor_file=None)
    template = tmp_path / "card.md.j2"
    template.write_text("# {{ title }}\n{{ descripton }}\n")
    hub.clear_requests()
    with pytest.raises(InvalidParameterError, match=r"uses \['descripton'\]"):
        _push(folder, repo_id, card_template=str(template))
    assert hub.requests == []  # no repo created


def test_a_license_the_hub_refuses_fails_the_card_stage_once_and_a_rerun_repairs(
    tmp_path: Path, repo_id: str, hub: Any
) -> None:
    folder = make_dataset_folder(tmp_path / "ds", batches=1, images=0, processor_file=None)
    hub.clear_requests()
    with pytest.raises(InvalidParameterError, match=r"license 'Apache 2\.0' is not a Hub license identifier"):
        _push(folder, repo_id, license="Apache 2.0")
    assert hub.requests == []  # caught before any request
    # Well formed but not one of the Hub's: only the Hub can say, at the card commit. Not retried (a 400).
    with pytest.raises(StageError, match=r"card: ValueError: Invalid metadata in README.md.*must be one of"):
        _push(folder, repo_id, license="apache-3.0")
    assert [r.status for r in hub.requests if r.route == "validate-yaml"] == [400]
    assert "commit" not in [r.route for r in hub.requests]
    result = _push(folder, repo_id, license="apache-2.0")
    assert next(s.stage for s in result.stages if s.commits) == "card"
    card = Path(hf_hub_download(repo_id, "README.md", repo_type="dataset", token=ALICE_TOKEN)).read_text()
    assert "license: apache-2.0" in card


def test_the_command_line_sets_the_card_vocabulary(
    tmp_path: Path, repo_id: str, hub: Any, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    from flows.push import main

    monkeypatch.setenv("HF_TOKEN", ALICE_TOKEN)
    folder = make_dataset_folder(tmp_path / "ds", batches=1, images=0, processor_file=None)
    hub.clear_requests()
    runs_before = flow_run_count("push-dataset")
    assert main([str(folder), repo_id, "--description", "Greetings.", "--language", "English"]) == 1
    assert "language 'English' is not a language code" in capfd.readouterr().err
    # Refused before a flow run exists: Prefect would log the failed run's traceback above the one line.
    assert flow_run_count("push-dataset") == runs_before
    assert hub.requests == []
    card_options = ["--license", "cc-by-4.0", "--language", "en", "--language", "fr", "--pretty-name", "Greetings"]
    card_options += ["--task-category", "text-generation", "--tag", "greetings"]
    assert main([str(folder), repo_id, "--description", "Greetings.", *card_options]) == 0
    card = Path(hf_hub_download(repo_id, "README.md", repo_type="dataset", token=ALICE_TOKEN)).read_text()
    front = yaml.safe_load(card.split("---")[1])
    assert front["license"] == "cc-by-4.0" and front["language"] == ["en", "fr"]
    assert front["task_categories"] == ["text-generation"] and front["pretty_name"] == "Greetings"
    assert front["tags"] == ["synthetic", "datadesigner", "greetings"]


def test_a_read_only_home_does_not_stop_a_push_or_its_read_back(tmp_path: Path, repo_id: str) -> None:
    """A container whose home cannot be written: neither huggingface_hub's cache (``HF_HOME``) nor the project's
    (``HFDS_CACHE_DIR``) can be made. The push commits every stage, the verify flow reads it all back."""
    folder = make_dataset_folder(tmp_path / "ds", batches=2, images=0, processor_file=None)
    (tmp_path / "home").write_text("a file where the home's folders would go (root ignores permissions)")
    env = child_env(HF_HOME=str(tmp_path / "home" / "hf"), HFDS_CACHE_DIR=str(tmp_path / "home" / "hfds"))
    pushed = subprocess.run(
        [sys.executable, "-m", "flows.push", str(folder), repo_id, "--description", "Read-only home."],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert pushed.returncode == 0, pushed.stderr[-2000:]
    verified = subprocess.run(
        [sys.executable, "-m", "flows.verify", repo_id, "--expected-records", "40"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert verified.returncode == 0, verified.stderr[-2000:]
    assert {"README.md", "metadata.json", "data/batch_00001.parquet"} <= set(repo_files(repo_id))


def test_a_folder_being_generated_is_not_pushed(tmp_path: Path, repo_id: str, hub: Any) -> None:
    folder = make_dataset_folder(tmp_path / "ds", batches=1, images=0, processor_file=None)
    hub.clear_requests()
    with generating_into(folder), pytest.raises(FolderInUseError, match=r"being generated .* publish part"):
        _push(folder, repo_id)
    assert hub.requests == []  # no repo created
    assert _push(folder, repo_id).commits


def test_dry_run_makes_no_request(
    tmp_path: Path, repo_id: str, hub: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = make_dataset_folder(tmp_path / "ds", batches=4)
    hub.clear_requests()
    result = push_dataset(folder, repo_id, "Dry run.", dry_run=True, max_files_per_commit=3)
    assert hub.requests == []
    plan = {p.stage: p for p in result.plan}
    assert plan["data"].files == 4 and plan["data"].commits == 2
    assert plan["data"].bytes == sum(p.stat().st_size for p in (folder / "parquet-files").iterdir())
    assert plan["processors"].commits == 3 and plan["images"].files == 3  # conversations: 2 parts, summary: 1
    assert plan["metadata"].bytes > 0 and plan["builder_config"].bytes > 0
    assert "data" in capsys.readouterr().out


def test_a_folder_past_the_hubs_advice_on_repo_shape_is_named_before_any_request(
    tmp_path: Path, repo_id: str, hub: Any
) -> None:
    folder = make_dataset_folder(tmp_path / "ds", batches=1, images=0, processor_file=None, processor_dir=None)
    portraits = folder / "images" / "portrait"
    portraits.mkdir(parents=True)
    for i in range(10_000):  # Data Designer's layout: a column's images all in one folder
        (portraits / f"{i:05d}.png").write_bytes(b"")
    hub.clear_requests()
    planned = push_dataset(folder, repo_id, "Many images.", dry_run=True)
    assert hub.requests == []
    (advice,) = planned.advice
    assert advice.startswith("images/portrait/ would hold 10,000 entries: the Hub advises fewer than 10,000")
    assert {p.stage: p.files for p in planned.plan}["images"] == 10_000


def test_lost_commit_answer_is_not_committed_twice(tmp_path: Path, repo_id: str, hub: Any) -> None:
    folder = make_dataset_folder(tmp_path / "ds", batches=2, processor_file=None, images=0)
    hub.faults.add("commit", drop="after", skip=1, count=1)  # the data commit lands, its answer is lost
    result = _push(folder, repo_id)
    assert titles(repo_id).count("Upload main dataset files") == 1
    data = next(s for s in result.stages if s.stage == "data")
    assert data.commits and data.commits[0].recovered


def test_lost_answer_of_a_commit_deleting_over_1000_files_is_recognised(
    tmp_path: Path, repo_id: str, hub: Any
) -> None:
    # An earlier run left 1,200 shards; this push deletes them in the data commit, whose answer is lost. Telling
    # whether it landed asks about 1,202 paths, more than the Hub answers in one paths-info request.
    stale = [f"data/old_{i:05d}.parquet" for i in range(1200)]
    api = HfApi(token=ALICE_TOKEN)
    api.create_repo(repo_id, repo_type="dataset")
    api.create_commit(
        repo_id,
        [CommitOperationAdd(path_in_repo=p, path_or_fileobj=b"old") for p in stale],
        commit_message="an earlier run",
        repo_type="dataset",
    )
    folder = make_dataset_folder(tmp_path / "ds", batches=2, processor_file=None, images=0)
    hub.faults.add("commit", drop="after", skip=1, count=1)  # the data commit lands, its answer is lost
    result = _push(folder, repo_id, stages=["card", "data"])
    assert titles(repo_id).count("Upload main dataset files") == 1
    data = next(s for s in result.stages if s.stage == "data")
    assert data.commits[0].recovered and data.commits[0].files_deleted == 1200
    assert sorted(p for p in repo_files(repo_id) if p.startswith("data/")) == [
        "data/batch_00000.parquet",
        "data/batch_00001.parquet",
    ]


def test_a_transient_failure_before_the_first_stage_is_retried(tmp_path: Path, repo_id: str, hub: Any) -> None:
    # huggingface_hub does not retry repo creation (nor whoami): the prepare-repo task does.
    folder = make_dataset_folder(tmp_path / "ds", batches=1, processor_dir=None, processor_file=None, images=0)
    hub.clear_requests()
    hub.faults.add("repo-create", status=503, count=1)
    result = _push(folder, repo_id)
    assert result.url.endswith(repo_id) and "data/batch_00000.parquet" in repo_files(repo_id)
    assert [r.status for r in hub.requests if r.route == "repo-create"] == [503, 200]


def test_a_rate_limited_repo_creation_waits_as_long_as_the_hub_asks(
    tmp_path: Path, repo_id: str, hub: Any
) -> None:
    # Every task that calls the Hub waits out a 429's Retry-After before its retry, not only the stages (the
    # stage retry delay here is 0.1 s: a retry sooner than 2 s would be refused again on huggingface.co).
    folder = make_dataset_folder(tmp_path / "ds", batches=1, processor_dir=None, processor_file=None, images=0)
    hub.clear_requests()
    hub.faults.add("repo-create", status=429, retry_after=2, count=1)
    _push(folder, repo_id)
    creates = [r for r in hub.requests if r.route == "repo-create"]
    assert [r.status for r in creates] == [429, 200]
    assert creates[1].time - creates[0].time >= 2.0, "the retry did not wait for Retry-After"


def test_transient_faults_in_data_stage_are_retried(tmp_path: Path, repo_id: str, hub: Any) -> None:
    folder = make_dataset_folder(tmp_path / "ds", batches=2, processor_file=None, images=0)
    clean_repo = repo_id + "-clean"
    _push(folder, clean_repo)
    hub.faults.add("lfs-batch", status=503, count=1)
    hub.faults.add("lfs-batch", status=429, retry_after=1, count=1)
    hub.faults.add("commit", status=503, skip=1, count=1)  # the data stage's commit: our task retries it
    _push(folder, repo_id)
    faulted = [r for r in hub.requests if r.status in (429, 503) and r.repo == repo_id]
    assert len(faulted) >= 3
    assert_same_as_reference(repo_id, clean_repo)


def _retry_like_the_ui(flow_fn: Any, flow_run_id: Any, parameters: dict[str, Any]) -> Any:
    """What the UI's Retry does (AwaitingRetry on the same run), then the run executed again, as a worker would."""
    from prefect.flow_engine import run_flow

    with get_client(sync_client=True) as client:
        client.set_flow_run_state(flow_run_id, AwaitingRetry(message="Retry from the UI"), force=True)
        flow_run = client.read_flow_run(flow_run_id)
    return run_flow(flow_fn, flow_run=flow_run, parameters=parameters, return_type="state")


STAGE_TASK_NAMES = ("push-card", "push-data", "push-processors", "push-metadata")  # run in every push here


def _stage_states(root_run_id: Any) -> dict[str, str | None]:
    """The latest state name of each stage task under a run (including its subflow runs), once every stage's
    task run is recorded."""
    with get_client(sync_client=True) as client:
        run_ids = [root_run_id]
        children = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[root_run_id]))
        )
        run_ids += [c.id for c in children]
        runs = final_task_runs(client, run_ids, expect=STAGE_TASK_NAMES)
    states: dict[str, str | None] = {}
    for run in sorted(runs, key=lambda r: r.expected_start_time or r.created):
        if run.name.startswith("push-"):
            states[task_run_base_name(run)] = run.state.name if run.state else None
    return states


def test_retry_like_the_ui_reruns_only_unfinished_stages(tmp_path: Path, repo_id: str, hub: Any) -> None:
    folder = make_dataset_folder(tmp_path / "ds", batches=3)
    clean_repo = repo_id + "-clean"
    _push(folder, clean_repo)
    hub.faults.add("commit", status=503, skip=3, count=None, repo=repo_id)  # card, data, images commit; then 503s
    parameters = {
        "dataset": folder,
        "repo_id": repo_id,
        "description": "Greetings in five languages, for tests.",
        "token": SecretStr(ALICE_TOKEN),
    }
    state = push_dataset(**parameters, return_state=True)
    assert state.is_failed()
    hub.faults.clear()
    hub.clear_requests()
    flow_run_id = state.state_details.flow_run_id
    # The failed run has its stage table too: what committed, what failed and why, what did not run.
    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    table = next(a for a in arts if a.key == f"{repo_id.replace('/', '-')}-push-summary")
    rows = json.loads(table.data) if isinstance(table.data, str) else table.data
    assert [r["stage"] for r in rows] == ["card", "data", "images", "processors", "builder_config", "metadata"]
    assert all(len(r["commit"]) == 40 for r in rows[:3])
    assert rows[3]["commit"].startswith("failed: ") and "503" in rows[3]["commit"]
    assert [r["commit"] for r in rows[4:]] == ["not run", "not run"]

    retried = _retry_like_the_ui(push_dataset, flow_run_id, parameters)
    assert retried.is_completed()
    with get_client(sync_client=True) as client:
        assert client.read_flow_run(flow_run_id).run_count == 2
    states = _stage_states(flow_run_id)
    assert (
        states["push-card"] == "Cached" and states["push-data"] == "Cached" and states["push-images"] == "Cached"
    )
    assert states["push-processors"] == "Completed" and states["push-metadata"] == "Completed"
    # The retried run's table says which commits this attempt made and which the failed one had (their bytes and
    # seconds are that attempt's: the Retry sent nothing for them).
    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    table = max((a for a in arts if a.key == f"{repo_id.replace('/', '-')}-push-summary"), key=lambda a: a.created)
    rows = json.loads(table.data) if isinstance(table.data, str) else table.data
    attempts = {r["stage"]: r["attempt"] for r in rows}
    assert attempts == {
        "card": "earlier (Cached)",
        "data": "earlier (Cached)",
        "images": "earlier (Cached)",
        "processors-conversations": "this",
        "processors-summary": "this",
        "builder-config": "this",
        "metadata": "this",
    }, rows
    lfs_bytes = sum(r.bytes_in for r in hub.requests if r.route == "lfs-upload")
    data_and_images = sum(
        p.stat().st_size for d in ("parquet-files", "images") for p in (folder / d).rglob("*") if p.is_file()
    )
    assert lfs_bytes < data_and_images  # nothing of the committed stages is sent again
    assert_same_as_reference(repo_id, clean_repo)


def test_retry_after_a_newer_run_pushed_to_the_branch_changes_nothing(
    tmp_path: Path, repo_id: str, hub: Any
) -> None:
    """Last night's push failed after its card and data; tonight's push (another run) completed; last night's run
    is retried like the UI does. Resuming would publish last night's processors, images and metadata over tonight's
    card and data; the Retry fails at once instead, naming tonight's run, and the repo stays tonight's."""
    from tasks.retry_guard import SupersededRetryError

    last_night = make_dataset_folder(tmp_path / "last-night", batches=2, images=0, seed=1)
    tonight = make_dataset_folder(tmp_path / "tonight", batches=2, images=0, seed=2)
    hub.faults.add("commit", status=403, skip=2, count=None, repo=repo_id)  # card and data commit, then refused
    parameters = {
        "dataset": last_night,
        "repo_id": repo_id,
        "description": "Greetings in five languages, for tests.",
        "token": SecretStr(ALICE_TOKEN),
    }
    failed = push_dataset(**parameters, return_state=True)
    assert failed.is_failed()
    hub.faults.clear()
    newer = push_dataset(**{**parameters, "dataset": tonight}, return_state=True)
    assert newer.is_completed()
    published, history = repo_files(repo_id), titles(repo_id)

    retried = _retry_like_the_ui(push_dataset, failed.state_details.flow_run_id, parameters)
    assert retried.is_failed()
    with pytest.raises(SupersededRetryError, match=f"flow run {newer.state_details.flow_run_id} committed"):
        retried.result()
    assert repo_files(repo_id) == published and titles(repo_id) == history


@flow(name="nightly-publish")
def _parent_flow(folder: Path, repo_id: str, token: SecretStr) -> str:
    """A user's flow with the push as a subflow (as generate-then-push is)."""
    return push_dataset(folder, repo_id, "Greetings in five languages, for tests.", token=token).url


def test_retry_of_a_parent_flow_keeps_the_pushs_finished_stages(tmp_path: Path, repo_id: str, hub: Any) -> None:
    folder = make_dataset_folder(tmp_path / "ds", batches=2, images=0)
    hub.faults.add("commit", status=503, skip=2, count=None, repo=repo_id)  # card and data commit; then 503s
    parameters = {"folder": folder, "repo_id": repo_id, "token": SecretStr(ALICE_TOKEN)}
    state = _parent_flow(**parameters, return_state=True)
    assert state.is_failed()
    hub.faults.clear()
    flow_run_id = state.state_details.flow_run_id

    assert _retry_like_the_ui(_parent_flow, flow_run_id, parameters).is_completed()
    states = _stage_states(flow_run_id)
    assert states["push-card"] == "Cached" and states["push-data"] == "Cached"
    assert states["push-processors"] == "Completed"
    assert titles(repo_id).count("Upload main dataset files") == 1


@flow(name="publish-twice")
def _push_twice(folder: Path, repo_id: str, token: SecretStr) -> tuple[PushResult, PushResult]:
    """A user's flow that pushes the same folder twice, with the repo edited in between."""
    first = push_dataset(folder, repo_id, "Greetings in five languages, for tests.", token=token)
    HfApi(token=ALICE_TOKEN).delete_file("README.md", repo_id, repo_type="dataset")
    second = push_dataset(folder, repo_id, "Greetings in five languages, for tests.", token=token)
    return first, second


def test_two_pushes_in_one_parent_run_are_two_pushes(tmp_path: Path, repo_id: str) -> None:
    """The second push is not the first one's Retry: it checks the Hub, and puts back the card deleted since."""
    folder = make_dataset_folder(tmp_path / "ds", batches=1, images=0)
    state = _push_twice(folder, repo_id, SecretStr(ALICE_TOKEN), return_state=True)
    first, second = state.result()
    assert "README.md" in repo_files(repo_id)
    assert [c.message for c in second.commits] == ["Upload dataset card"]
    assert not {c.oid for c in second.commits} & {c.oid for c in first.commits}
    # Both pushes' commits name the outermost run, the user's flow.
    messages = {
        c.commit_id: c.message for c in HfApi().list_repo_commits(repo_id, repo_type="dataset", token=ALICE_TOKEN)
    }
    parent = state.state_details.flow_run_id
    assert all(f"Prefect-Flow-Run: {parent}" in messages[c.oid] for c in [*first.commits, *second.commits])


def test_copy_of_folder_is_pushed_from_generated_result(tmp_path: Path, repo_id: str) -> None:
    from tasks.generation.result import GeneratedDataset

    folder = make_dataset_folder(tmp_path / "ds", batches=1, images=0, processor_file=None)
    shutil.copytree(folder, tmp_path / "copy")
    result = _push(GeneratedDataset(path=tmp_path / "copy", num_records=20, num_batches=1), repo_id)  # type: ignore[arg-type]
    assert result.num_records == 20 and "data/batch_00000.parquet" in repo_files(repo_id)
