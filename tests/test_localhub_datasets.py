"""The ``datasets`` library (5.2.0) against localhub: load_dataset with configs, and push_to_hub (§6)."""

from __future__ import annotations

import io
from collections.abc import Iterator

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import ALICE_TOKEN
from huggingface_hub import CommitOperationAdd, HfApi

from localhub import LocalHub

README = """---
license: mit
configs:
- config_name: full
  default: true
  data_files:
  - split: train
    path: data/full/train-*.parquet
  - split: test
    path: data/full/test-*.parquet
- config_name: small
  data_files: data/small/*.parquet
---
# Two configs
"""


@pytest.fixture(autouse=True)
def _no_parquet_export_probe(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # datasets probes http://datasets-server.<host>/ for a parquet export; not needed here.
    monkeypatch.setattr(datasets.config, "USE_PARQUET_EXPORT", False)
    yield


def parquet(table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def test_load_dataset_with_two_configs(hub: LocalHub, repo_id: str, tmp_path: object) -> None:
    api = HfApi(token=ALICE_TOKEN)
    api.create_repo(repo_id, repo_type="dataset", private=True)
    api.create_commit(
        repo_id,
        repo_type="dataset",
        commit_message="two configs",
        operations=[
            CommitOperationAdd("README.md", README.encode()),
            CommitOperationAdd("data/full/train-00000.parquet", parquet(pa.table({"x": [1, 2, 3]}))),
            CommitOperationAdd("data/full/train-00001.parquet", parquet(pa.table({"x": [4, 5]}))),
            CommitOperationAdd("data/full/test-00000.parquet", parquet(pa.table({"x": [9]}))),
            CommitOperationAdd("data/small/part.parquet", parquet(pa.table({"x": [7]}))),
        ],
    )
    full = datasets.load_dataset(repo_id, "full", split="train", token=ALICE_TOKEN)
    assert sorted(full["x"]) == [1, 2, 3, 4, 5]
    assert datasets.load_dataset(repo_id, "full", split="test", token=ALICE_TOKEN)["x"] == [9]
    assert datasets.load_dataset(repo_id, "small", split="train", token=ALICE_TOKEN)["x"] == [7]
    assert sorted(datasets.load_dataset(repo_id, split="train", token=ALICE_TOKEN)["x"]) == [
        1,
        2,
        3,
        4,
        5,
    ]  # default
    assert api.dataset_info(repo_id).card_data["configs"][1]["config_name"] == "small"


def test_push_to_hub_twice(hub: LocalHub, repo_id: str) -> None:
    first = datasets.Dataset.from_dict({"text": ["a", "b", "c"], "label": [0, 1, 0]})
    first.push_to_hub(repo_id, token=ALICE_TOKEN)  # creates the repo
    second = datasets.Dataset.from_dict({"text": ["x", "y"], "label": [1, 1]})
    second.push_to_hub(repo_id, config_name="extra", token=ALICE_TOKEN)

    files = HfApi(token=ALICE_TOKEN).list_repo_files(repo_id, repo_type="dataset")
    assert "README.md" in files
    assert any(f.startswith("data/train-") for f in files) and any(f.startswith("extra/train-") for f in files)
    assert datasets.load_dataset(repo_id, split="train", token=ALICE_TOKEN)["text"] == ["a", "b", "c"]
    assert datasets.load_dataset(repo_id, "extra", split="train", token=ALICE_TOKEN)["text"] == ["x", "y"]
