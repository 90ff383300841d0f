"""The downstream verify flow, in process (the session's Prefect harness and embedded Hub): it reads every config
of a pushed dataset back, and fails, saying why, when the dataset does not hold what was pushed."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import ALICE_TOKEN
from factories import make_dataset_folder
from huggingface_hub import CommitOperationDelete, HfApi
from prefect import flow, get_client
from prefect.client.schemas.filters import ArtifactCollectionFilter, ArtifactCollectionFilterKey
from pydantic import SecretStr
from reliability_support import fast_client_backoff

from flows.push import push_dataset
from flows.verify import DatasetVerificationError, verify_pushed_dataset

pytestmark = pytest.mark.usefixtures("prefect_api", "hub")


@pytest.fixture
def pushed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    repo_id = f"alice/verify-{uuid.uuid4().hex[:8]}"
    folder = make_dataset_folder(tmp_path / "ds", batches=2, rows_per_batch=10, images=0)
    push_dataset(folder, repo_id, "Greetings to verify.", token=SecretStr(ALICE_TOKEN))
    monkeypatch.setenv("HF_TOKEN", ALICE_TOKEN)  # the verify flow takes its token from the environment
    return repo_id


def test_verify_reads_every_config_back(pushed: str) -> None:
    result = verify_pushed_dataset(pushed, "main", 20)
    assert {c.config: c.rows for c in result.configs} == {"data": 20, "conversations": 20, "summary": 20}
    assert result.records == 20
    assert result.commit == HfApi().repo_info(pushed, repo_type="dataset", token=ALICE_TOKEN).sha
    assert "greeting" in next(c for c in result.configs if c.config == "data").columns
    # Any revision the Hub resolves: a full ref or a tag (the push's own branch rule refused them).
    HfApi(token=ALICE_TOKEN).create_tag(pushed, tag="v1.0", repo_type="dataset")
    for revision in ("refs/heads/main", "v1.0", "refs/tags/v1.0"):
        assert verify_pushed_dataset(pushed, revision, 20).commit == result.commit


def test_verify_fails_on_a_wrong_record_count_and_on_missing_data(pushed: str) -> None:
    with pytest.raises(DatasetVerificationError, match=r"'data' has 20 rows, 21 were pushed"):
        verify_pushed_dataset(pushed, "main", 21)

    # A push that lost a batch: the data no longer matches metadata.json's record count.
    HfApi().create_commit(
        pushed,
        [CommitOperationDelete("data/batch_00001.parquet")],
        commit_message="lose a batch",
        repo_type="dataset",
        token=ALICE_TOKEN,
    )
    with pytest.raises(DatasetVerificationError, match=r"metadata.json says 20 records, config 'data' has 10"):
        verify_pushed_dataset(pushed)


def test_a_config_that_does_not_load_is_reported_with_the_others(pushed: str) -> None:
    """Every config is read and reported, also after one fails; the table says which, and why."""
    HfApi().create_commit(
        pushed,
        [CommitOperationDelete("conversations/", is_folder=True)],  # the card still declares the config
        commit_message="lose a processor's files",
        repo_type="dataset",
        token=ALICE_TOKEN,
    )
    with pytest.raises(DatasetVerificationError, match=r"config 'conversations' does not load"):
        verify_pushed_dataset(pushed, "main", 20)
    with get_client(sync_client=True) as client:
        (table,) = client.read_latest_artifacts(
            artifact_filter=ArtifactCollectionFilter(key=ArtifactCollectionFilterKey(any_=[_table_key(pushed)]))
        )
    rows = {r["config"]: r for r in (json.loads(table.data) if isinstance(table.data, str) else table.data)}
    assert rows["data"]["verdict"] == "ok" and rows["data"]["rows"] == 20 and rows["data"]["expected"] == 20
    assert rows["summary"]["verdict"] == "ok"
    assert rows["conversations"]["verdict"].startswith("does not load")


def test_reading_a_config_back_is_retried(pushed: str, hub: Any) -> None:
    """A run of 503s longer than huggingface_hub's own retries, while the rows are read: the task retries."""
    from flows.verify import read_config_back

    @flow
    def read_once() -> int:
        return read_config_back(pushed, "data", "main", SecretStr(ALICE_TOKEN)).rows

    hub.faults.add("resolve", status=503, count=12, repo=pushed)  # more than one attempt's client retries
    with fast_client_backoff():
        assert read_once() == 20


def test_rows_naming_images_the_repo_lacks_fail_the_verification(tmp_path: Path) -> None:
    """Data Designer stores each image's path (``images/<column>/<file>``) in the row: every one must be a repo
    file at the commit read; the table counts them."""
    repo_id = f"alice/verify-images-{uuid.uuid4().hex[:8]}"
    folder = make_dataset_folder(tmp_path / "ds", batches=2, rows_per_batch=10, images=3)
    names = sorted(p.relative_to(folder).as_posix() for p in (folder / "images").rglob("*.png"))
    for batch in sorted((folder / "parquet-files").glob("*.parquet")):
        table = pq.read_table(batch)
        paths = [names[i % 3] if i % 4 else None for i in range(table.num_rows)]  # some rows without an image
        pq.write_table(table.append_column("avatar", pa.array(paths, pa.string())), batch)
    push_dataset(folder, repo_id, "Greetings with avatars.", token=SecretStr(ALICE_TOKEN))
    os.environ["HF_TOKEN"] = ALICE_TOKEN
    try:
        result = verify_pushed_dataset(repo_id, "main", 20)
        data = next(c for c in result.configs if c.config == "data")
        assert (data.image_columns, data.images_referenced, data.images_missing) == (["avatar"], 14, 0)
        assert all(c.images_referenced == 0 for c in result.configs if c.config != "data")

        HfApi().create_commit(
            repo_id,
            [CommitOperationDelete(names[1])],
            commit_message="lose an image",
            repo_type="dataset",
            token=ALICE_TOKEN,
        )
        with pytest.raises(DatasetVerificationError, match=rf"'data' names 4 image file\(s\).*{names[1]}"):
            verify_pushed_dataset(repo_id, "main", 20)
    finally:
        del os.environ["HF_TOKEN"]
    with get_client(sync_client=True) as client:
        (table,) = client.read_latest_artifacts(
            artifact_filter=ArtifactCollectionFilter(key=ArtifactCollectionFilterKey(any_=[_table_key(repo_id)]))
        )
    rows = {r["config"]: r for r in (json.loads(table.data) if isinstance(table.data, str) else table.data)}
    assert rows["data"]["images"] == "14 named, 4 missing" and rows["data"]["verdict"] == "4 image(s) missing"
    assert rows["summary"]["images"] == "" and rows["summary"]["verdict"] == "ok"


def _table_key(repo_id: str) -> str:
    from tasks.artifacts import artifact_key

    return artifact_key(repo_id, "verification")
