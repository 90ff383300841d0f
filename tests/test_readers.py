"""Read a pushed dataset back with the libraries people use (README.md, "Read it back" lists which, and how).

One dataset (main data, the ``conversations`` processor whose ``messages`` column is a list of {role, content}
structs, the single-file ``summary`` processor, and PNG images) is pushed once to the embedded Hub; every reader
then reads every config back and is compared with the local parquet files: row counts and values. The data is
small, so "a sample of values" is all of them. The ``hf://`` readers run anonymously (the repo is public, and
conftest removes ``HF_TOKEN``); the private-repo tests pass a token.
"""

from __future__ import annotations

import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask.dataframe as dd
import datasets
import duckdb
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import ALICE, ALICE_TOKEN, BOB_TOKEN
from factories import make_dataset_folder
from huggingface_hub import CommitOperationAdd, HfApi, HfFileSystem, constants, hf_hub_download, hf_hub_url
from huggingface_hub.errors import RepositoryNotFoundError
from prefect import flow
from pydantic import SecretStr

from flows.push import push_dataset
from tasks.dataset_configs import (
    ConfigNotFoundError,
    DatasetCardError,
    _split_patterns,
    list_configs,
    resolve_config,
)
from tasks.read_dataset import read_dataset, read_pushed_dataset

pytestmark = pytest.mark.usefixtures("hub")
datasets.config.USE_PARQUET_EXPORT = False  # no datasets-server probe against the embedded Hub
datasets.disable_progress_bars()

CONFIGS = ["data", "conversations", "summary"]
HF_ENDPOINT = constants.ENDPOINT  # the embedded Hub (conftest sets HF_ENDPOINT before huggingface_hub is imported)
DESCRIPTION = "Greetings in five languages, read back by every reader."


@dataclass(frozen=True)
class Pushed:
    """The pushed dataset and what its configs hold locally."""

    repo_id: str
    folder: Path
    local: dict[str, pa.Table]  # config → the local rows, files concatenated in name order
    local_files: dict[str, list[Path]]  # config → local parquet files, in name order
    images: dict[str, Path]  # repo path → local image file

    def rows(self, config: str) -> list[dict[str, Any]]:
        return self.local[config].to_pylist()


def _local_files(folder: Path) -> dict[str, list[Path]]:
    return {
        "data": sorted((folder / "parquet-files").glob("*.parquet")),
        "conversations": sorted((folder / "processors-files" / "conversations").glob("*.parquet")),
        "summary": [folder / "processors-files" / "summary.parquet"],
    }


def _push(folder: Path, repo_id: str) -> None:
    """Push with the project's push flow (README card, data, images, processors, builder config, metadata)."""
    push_dataset(folder, repo_id, DESCRIPTION, token=SecretStr(ALICE_TOKEN))


@pytest.fixture(scope="module")
def pushed(prefect_api: None, tmp_path_factory: pytest.TempPathFactory) -> Pushed:
    folder = make_dataset_folder(tmp_path_factory.mktemp("readers") / "ds", batches=3, rows_per_batch=20)
    repo_id = f"{ALICE}/readers-{uuid.uuid4().hex[:8]}"
    _push(folder, repo_id)
    files = _local_files(folder)
    local = {config: pa.concat_tables([pq.read_table(p) for p in paths]) for config, paths in files.items()}
    images = {
        f"images/{p.relative_to(folder / 'images').as_posix()}": p for p in (folder / "images").rglob("*.png")
    }
    assert local["data"].num_rows == 60 and len(images) == 3
    return Pushed(repo_id, folder, local, files, images)


def _pandas_rows(df: pd.DataFrame) -> list[dict[str, Any]]:
    """pandas rows as plain Python values (nested arrays → lists, NaN strings → None), via Arrow."""
    return pa.Table.from_pandas(df, preserve_index=False).to_pylist()


def _sample(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [rows[i] for i in sorted({0, 1, len(rows) // 2, len(rows) - 1})]


def assert_same_rows(actual: list[dict[str, Any]], pushed: Pushed, config: str) -> None:
    expected = pushed.rows(config)
    assert len(actual) == len(expected), f"{config}: {len(actual)} rows read, {len(expected)} pushed"
    assert _sample(actual) == _sample(expected)
    assert actual == expected


def _fs_glob(repo_id: str, config: str) -> list[str]:
    return sorted(HfFileSystem().glob(f"datasets/{repo_id}/{config}/*.parquet"))


# --- the push produced what the readers need --------------------------------------------------------------------


def test_card_declares_every_config(pushed: Pushed) -> None:
    assert list_configs(pushed.repo_id) == CONFIGS
    files = HfApi().list_repo_files(pushed.repo_id, repo_type="dataset")
    for config, paths in pushed.local_files.items():
        assert resolve_config(pushed.repo_id, config).files == tuple(
            f for f in files if f.startswith(f"{config}/") and f.endswith(".parquet")
        )
        assert len(paths) == len(resolve_config(pushed.repo_id, config).files)


# --- datasets --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("config", CONFIGS)
def test_datasets_load_dataset(pushed: Pushed, config: str) -> None:
    ds = datasets.load_dataset(pushed.repo_id, config, split="train")
    assert ds.num_rows == pushed.local[config].num_rows
    assert_same_rows(ds.to_list(), pushed, config)
    if config == "conversations":
        assert ds.features["messages"] == datasets.List(
            {"role": datasets.Value("string"), "content": datasets.Value("string")}
        )


@pytest.mark.parametrize("config", CONFIGS)
def test_datasets_load_dataset_streaming(pushed: Pushed, config: str) -> None:
    ds = datasets.load_dataset(pushed.repo_id, config, split="train", streaming=True)
    assert isinstance(ds, datasets.IterableDataset)
    assert_same_rows(list(ds), pushed, config)


def test_datasets_default_config_is_data(pushed: Pushed) -> None:
    ds = datasets.load_dataset(pushed.repo_id, split="train")
    assert_same_rows(ds.to_list(), pushed, "data")


# --- pandas, pyarrow, polars, dask, DuckDB through fsspec (HfFileSystem) ---------------------------------------


@pytest.mark.parametrize("config", CONFIGS)
def test_pandas_read_parquet_hf_folder(pushed: Pushed, config: str) -> None:
    # pandas' pyarrow engine does not expand globs ("…/data/*.parquet" → FileNotFoundError): read the folder.
    df = pd.read_parquet(f"hf://datasets/{pushed.repo_id}/{config}")
    assert len(df) == pushed.local[config].num_rows
    assert_same_rows(_pandas_rows(df), pushed, config)


def test_pandas_read_parquet_file_list(pushed: Pushed) -> None:
    fs = HfFileSystem()
    df = pd.read_parquet(_fs_glob(pushed.repo_id, "conversations"), filesystem=fs)
    assert_same_rows(_pandas_rows(df), pushed, "conversations")
    one = pd.read_parquet(f"hf://datasets/{pushed.repo_id}/summary/summary.parquet")
    assert_same_rows(_pandas_rows(one), pushed, "summary")


def test_pandas_glob_is_not_expanded(pushed: Pushed) -> None:
    """Documents the limitation that README.md, "Read it back" states: use the folder or a file list instead."""
    with pytest.raises(FileNotFoundError):
        pd.read_parquet(f"hf://datasets/{pushed.repo_id}/data/*.parquet")


@pytest.mark.parametrize("config", CONFIGS)
def test_pyarrow_hffilesystem(pushed: Pushed, config: str) -> None:
    fs = HfFileSystem()
    table = pq.read_table(f"datasets/{pushed.repo_id}/{config}", filesystem=fs)
    assert table.num_rows == pushed.local[config].num_rows
    assert table.schema.equals(pushed.local[config].schema)
    assert_same_rows(table.to_pylist(), pushed, config)
    dataset = pq.ParquetDataset(_fs_glob(pushed.repo_id, config), filesystem=fs)
    assert_same_rows(dataset.read().to_pylist(), pushed, config)


@pytest.mark.parametrize("config", CONFIGS)
def test_polars_hffilesystem_file_objects(pushed: Pushed, config: str) -> None:
    # polars' own hf:// reader is hard-wired to huggingface.co; file objects from HfFileSystem follow HF_ENDPOINT.
    fs = HfFileSystem()
    frames = []
    for path in _fs_glob(pushed.repo_id, config):
        with fs.open(path, "rb") as f:
            frames.append(pl.read_parquet(f))
    df = pl.concat(frames)
    assert df.height == pushed.local[config].num_rows
    if config == "conversations":
        assert df.schema["messages"] == pl.List(pl.Struct({"role": pl.String, "content": pl.String}))
    assert_same_rows(df.to_dicts(), pushed, config)


@pytest.mark.parametrize("config", CONFIGS)
def test_dask_read_parquet_hf_glob(pushed: Pushed, config: str) -> None:
    ddf = dd.read_parquet(f"hf://datasets/{pushed.repo_id}/{config}/*.parquet", storage_options={"token": None})
    df = ddf.compute()
    assert len(df) == pushed.local[config].num_rows
    assert_same_rows(_pandas_rows(df.reset_index(drop=True)), pushed, config)


@pytest.mark.parametrize("config", CONFIGS)
def test_duckdb_registered_hffilesystem(pushed: Pushed, config: str) -> None:
    con = duckdb.connect()
    try:
        con.register_filesystem(HfFileSystem())
        url = f"hf://datasets/{pushed.repo_id}/{config}/*.parquet"
        count = con.execute("SELECT count(*) FROM read_parquet(?)", [url]).fetchall()
        assert count == [(pushed.local[config].num_rows,)]
        table = con.sql("SELECT * FROM read_parquet(?)", params=[url]).to_arrow_table()
        assert_same_rows(table.to_pylist(), pushed, config)
        if config == "conversations":
            roles = con.execute(
                "SELECT DISTINCT unnest(messages).role AS r FROM read_parquet(?) ORDER BY r", [url]
            )
            assert roles.fetchall() == [("assistant",), ("user",)]
    finally:
        con.close()


# --- checkpoints and images: files by repo path ----------------------------------------------------------------


def test_checkpoint_glob_and_hf_hub_download(pushed: Pushed) -> None:
    """The resume pattern of a checkpointer: list the pushed batches, download them, continue from there."""
    found = HfFileSystem().glob(f"datasets/{pushed.repo_id}/data/*.parquet")
    names = [p.rsplit("/", 1)[1] for p in sorted(found)]
    assert names == [p.name for p in pushed.local_files["data"]]
    rows = 0
    for name, local in zip(names, pushed.local_files["data"], strict=True):
        path = hf_hub_download(pushed.repo_id, f"data/{name}", repo_type="dataset")
        assert Path(path).read_bytes() == local.read_bytes()
        rows += pq.read_metadata(path).num_rows
    assert rows == pushed.local["data"].num_rows


def test_images_by_repo_path(pushed: Pushed) -> None:
    fs = HfFileSystem()
    listed = sorted(p.split("/", 3)[3] for p in fs.glob(f"datasets/{pushed.repo_id}/images/**/*.png"))
    assert listed == sorted(pushed.images)
    for repo_path, local in pushed.images.items():
        downloaded = Path(hf_hub_download(pushed.repo_id, repo_path, repo_type="dataset"))
        assert downloaded.read_bytes() == local.read_bytes()
        assert fs.cat_file(f"datasets/{pushed.repo_id}/{repo_path}") == local.read_bytes()


def test_images_open_with_pillow(pushed: Pushed) -> None:
    from PIL import Image as image_module
    for repo_path in pushed.images:
        with image_module.open(hf_hub_download(pushed.repo_id, repo_path, repo_type="dataset")) as image:
            assert image.size == (2, 2) and image.format == "PNG"


def test_images_datasets_imagefolder(pushed: Pushed) -> None:
    ds = datasets.load_dataset(
        "imagefolder", data_files=f"hf://datasets/{pushed.repo_id}/images/**/*.png", split="train"
    )
    assert ds.num_rows == len(pushed.images)
    assert {image.size for image in ds["image"]} == {(2, 2)}


# --- readers outside the test extra: deselected by default; `pytest -m optional_reader` in a venv that has them ---


@pytest.mark.optional_reader
def test_pyiceberg_catalog_over_the_pushed_files(pushed: Pushed, tmp_path: Path) -> None:
    """PyIceberg: an Iceberg table whose data files are the pushed parquet files (``add_files``, nothing copied)."""
    pytest.importorskip("pyiceberg")
    pytest.importorskip("sqlalchemy")
    from pyiceberg.catalog.sql import SqlCatalog

    catalog = SqlCatalog(
        "hub",
        uri=f"sqlite:///{tmp_path / 'catalog.db'}",
        warehouse=tmp_path.as_uri(),
        **{"py-io-impl": "pyiceberg.io.fsspec.FsspecFileIO", "hf.endpoint": HF_ENDPOINT},
    )
    catalog.create_namespace("hub")
    for config in CONFIGS:
        table = catalog.create_table(f"hub.{config}", schema=pushed.local[config].schema)
        table.add_files(resolve_config(pushed.repo_id, config).urls())
        assert_same_rows(table.scan().to_arrow().to_pylist(), pushed, config)


@pytest.mark.optional_reader
def test_daft_over_http_resolve_urls(pushed: Pushed) -> None:
    """Daft: its hf:// is hard-wired to huggingface.co; the Hub's /resolve/ URLs are plain HTTP it reads anywhere."""
    daft = pytest.importorskip("daft")
    for config in CONFIGS:
        resolved = resolve_config(pushed.repo_id, config)
        urls = [
            hf_hub_url(pushed.repo_id, path, repo_type="dataset", revision=resolved.commit)
            for path in resolved.files
        ]
        assert all(url.startswith(HF_ENDPOINT) for url in urls)
        assert_same_rows(daft.read_parquet(urls).to_pylist(), pushed, config)
    assert_same_rows(
        daft.from_arrow(read_dataset(pushed.repo_id, "conversations")).to_pylist(), pushed, "conversations"
    )


@pytest.mark.optional_reader
def test_distilabel_load_data_from_hub(pushed: Pushed) -> None:
    """distilabel's LoadDataFromHub goes through datasets (streaming batches)."""
    steps = pytest.importorskip("distilabel.steps")
    step = steps.LoadDataFromHub(repo_id=pushed.repo_id, config="conversations", split="train", batch_size=25)
    step.load()
    rows = [row for batch, _last in step.process() for row in batch]
    assert_same_rows(rows, pushed, "conversations")


# --- the reader task -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("config", CONFIGS)
def test_read_dataset_arrow(pushed: Pushed, config: str) -> None:
    table = read_dataset(pushed.repo_id, config)
    assert isinstance(table, pa.Table)
    assert table.schema.equals(pushed.local[config].schema)
    assert_same_rows(table.to_pylist(), pushed, config)


def test_read_dataset_arrow_streaming(pushed: Pushed) -> None:
    reader = read_dataset(pushed.repo_id, "conversations", streaming=True, batch_size=7)
    assert isinstance(reader, pa.RecordBatchReader)
    batches = list(reader)
    assert len(batches) > 3 and max(b.num_rows for b in batches) == 7  # 3 files of 20 rows, 7 rows a batch
    assert_same_rows(pa.Table.from_batches(batches).to_pylist(), pushed, "conversations")


def test_read_dataset_pandas(pushed: Pushed) -> None:
    df = read_dataset(pushed.repo_id, "data", as_="pandas")
    assert isinstance(df, pd.DataFrame)
    assert_same_rows(_pandas_rows(df), pushed, "data")
    chunks = list(read_dataset(pushed.repo_id, "summary", as_="pandas", streaming=True, batch_size=25))
    assert [len(c) for c in chunks] == [25, 25, 10]
    assert_same_rows(_pandas_rows(pd.concat(chunks, ignore_index=True)), pushed, "summary")


def test_read_dataset_columns(pushed: Pushed) -> None:
    table = read_dataset(pushed.repo_id, "data", columns=["id", "greeting"])
    assert table.column_names == ["id", "greeting"]
    assert table.to_pylist() == pushed.local["data"].select(["id", "greeting"]).to_pylist()
    with pytest.raises(ValueError, match=r"columns=\[\] selects nothing"):  # it gave 0 rows (datasets: all columns)
        read_dataset(pushed.repo_id, "data", columns=[])
    with pytest.raises(ConfigNotFoundError, match="one split, 'train'"):  # the images have no other split
        read_dataset(pushed.repo_id, "images", split="test")


@pytest.mark.parametrize("config", CONFIGS)
def test_read_dataset_datasets(pushed: Pushed, config: str) -> None:
    ds = read_dataset(pushed.repo_id, config, as_="datasets")
    assert isinstance(ds, datasets.Dataset)
    assert_same_rows(ds.to_list(), pushed, config)
    streamed = read_dataset(pushed.repo_id, config, as_="datasets", streaming=True)
    assert isinstance(streamed, datasets.IterableDataset)
    assert_same_rows(list(streamed), pushed, config)


def test_read_dataset_images(pushed: Pushed) -> None:
    table = read_dataset(pushed.repo_id, "images")
    assert table.column_names == ["column", "path", "image"]
    assert sorted(table["path"].to_pylist()) == sorted(pushed.images)
    for row in table.to_pylist():
        assert row["column"] == "avatar"
        assert row["image"] == {"bytes": pushed.images[row["path"]].read_bytes(), "path": row["path"]}
    reader = read_dataset(pushed.repo_id, "images", streaming=True, batch_size=2)
    assert [b.num_rows for b in reader] == [2, 1]
    if not datasets.config.PIL_AVAILABLE:
        with pytest.raises(ImportError, match="Pillow"):
            read_dataset(pushed.repo_id, "images", as_="datasets")
    else:  # the imagefolder builder, decoded by Pillow
        ds = read_dataset(pushed.repo_id, "images", as_="datasets")
        assert ds.num_rows == len(pushed.images)
        assert {image.size for image in ds["image"]} == {(2, 2)}


def test_images_whose_paths_hold_glob_characters_are_read(tmp_path: Path, prefect_api: None) -> None:
    """fs.cat read a list of paths as glob patterns: 'images/img[0]/f.png' was a KeyError."""
    folder = make_dataset_folder(tmp_path / "ds", batches=1, rows_per_batch=5, images=1)
    source = next((folder / "images").rglob("*.png"))
    (folder / "images" / "img[0]").mkdir()
    shutil.copy(source, folder / "images" / "img[0]" / "f*?.png")
    repo_id = f"{ALICE}/globs-{uuid.uuid4().hex[:8]}"
    _push(folder, repo_id)
    table = read_dataset(repo_id, "images")
    assert sorted(table["path"].to_pylist()) == sorted(
        f"images/{p.relative_to(folder / 'images').as_posix()}" for p in (folder / "images").rglob("*.png")
    )
    assert {row["image"]["bytes"] for row in table.to_pylist()} == {source.read_bytes()}


def test_read_dataset_pins_one_commit(pushed: Pushed) -> None:
    api = HfApi()
    sha = api.dataset_info(pushed.repo_id).sha
    resolved = resolve_config(pushed.repo_id, "data")
    assert resolved.commit == sha
    assert all(url.startswith(f"hf://datasets/{pushed.repo_id}@{sha}/data/") for url in resolved.urls())
    # An older commit is still readable by its sha, whatever main has become since.
    first = api.list_repo_commits(pushed.repo_id, repo_type="dataset")[-1].commit_id
    with pytest.raises(DatasetCardError, match=r"no README\.md"):
        read_dataset(pushed.repo_id, revision=first)  # the repo's initial commit: no card yet
    assert_same_rows(read_dataset(pushed.repo_id, revision=sha).to_pylist(), pushed, "data")


def test_read_dataset_unknown_config_lists_the_cards_configs(pushed: Pushed) -> None:
    with pytest.raises(ConfigNotFoundError) as info:
        read_dataset(pushed.repo_id, "conversation")
    message = str(info.value)
    assert "'conversation'" in message and "data, conversations, summary" in message
    with pytest.raises(ConfigNotFoundError, match="no split 'test'"):
        read_dataset(pushed.repo_id, "data", split="test")
    with pytest.raises(ValueError, match="as_="):
        read_dataset(pushed.repo_id, "data", as_="polars")  # type: ignore[call-overload]


@pytest.mark.parametrize(
    ("data_files", "expected"),
    [
        ("data/*.parquet", ["data/*.parquet"]),  # a plain string: one "train" split
        (["a/*.parquet", "b/*.parquet"], ["a/*.parquet", "b/*.parquet"]),
        (
            [{"split": "train", "path": "data/*.parquet"}, {"split": "test", "path": "t/*.parquet"}],
            ["data/*.parquet"],
        ),
        ([{"split": "train", "path": ["x/1.parquet", "x/2.parquet"]}], ["x/1.parquet", "x/2.parquet"]),
    ],
)
def test_card_data_files_forms(data_files: Any, expected: list[str]) -> None:
    """Every ``data_files`` form the Hub accepts (hub-protocol §6.2), without the network."""
    assert _split_patterns({"config_name": "c", "data_files": data_files}, "train", "a/b") == expected


@pytest.fixture(scope="module")
def private_repo(pushed: Pushed, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A private copy of the card and the conversations config (not through the push: only auth is tested)."""
    repo_id = f"{ALICE}/readers-private-{uuid.uuid4().hex[:8]}"
    api = HfApi(token=ALICE_TOKEN)
    api.create_repo(repo_id, repo_type="dataset", private=True)
    card = hf_hub_download(pushed.repo_id, "README.md", repo_type="dataset")
    stage = tmp_path_factory.mktemp("private")
    shutil.copy(card, stage / "README.md")
    ops = [CommitOperationAdd("README.md", str(stage / "README.md"))]
    ops += [CommitOperationAdd(f"conversations/{p.name}", str(p)) for p in pushed.local_files["conversations"]]
    api.create_commit(repo_id, ops, commit_message="Private copy", repo_type="dataset")
    return repo_id


def test_read_dataset_private_repo_needs_a_token(
    pushed: Pushed, private_repo: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(RepositoryNotFoundError):
        read_dataset(private_repo, "conversations")  # anonymous
    with pytest.raises(RepositoryNotFoundError):
        read_dataset(private_repo, "conversations", token=SecretStr(BOB_TOKEN))
    table = read_dataset(private_repo, "conversations", token=SecretStr(ALICE_TOKEN))
    assert_same_rows(table.to_pylist(), pushed, "conversations")
    monkeypatch.setenv("HF_TOKEN", ALICE_TOKEN)  # the documented fallback
    assert read_dataset(private_repo, "conversations", as_="datasets").num_rows == 60


def test_read_pushed_dataset_in_a_flow(pushed: Pushed, private_repo: str) -> None:
    @flow
    def downstream(repo_id: str, private_repo_id: str, token: SecretStr) -> dict[str, Any]:
        conversations = read_pushed_dataset(repo_id, "conversations")
        reader = read_pushed_dataset(repo_id, "data", streaming=True)
        rows = sum(batch.num_rows for batch in reader)
        summary = read_pushed_dataset(repo_id, "summary", as_="pandas")
        private = read_pushed_dataset(private_repo_id, "conversations", as_="datasets", token=token)
        # Streamed pandas chunks through the task: Prefect turns a returned generator into a list (and hands back
        # an exhausted generator), so the task must return a lazy iterator that is not one.
        chunks = read_pushed_dataset(repo_id, "data", as_="pandas", streaming=True)
        return {
            "messages": conversations["messages"].to_pylist(),
            "rows": rows,
            "summary": len(summary),
            "private": private.num_rows,
            "chunked": sum(len(chunk) for chunk in chunks),
        }

    out = downstream(pushed.repo_id, private_repo, SecretStr(ALICE_TOKEN))
    assert out["messages"] == pushed.local["conversations"]["messages"].to_pylist()
    assert out["rows"] == 60 and out["summary"] == 60 and out["private"] == 60 and out["chunked"] == 60


def test_read_pushed_dataset_fails_at_once_on_unknown_config(pushed: Pushed) -> None:
    @flow
    def downstream(repo_id: str) -> Any:
        return read_pushed_dataset(repo_id, "nope")

    with pytest.raises(ConfigNotFoundError, match="its configs: data, conversations, summary"):
        downstream(pushed.repo_id)


def test_polars_from_the_reader_tasks_arrow(pushed: Pushed) -> None:
    """Arrow from the reader goes zero-copy into polars: the other way to get polars data off a custom endpoint."""
    df = pl.from_arrow(read_dataset(pushed.repo_id, "conversations"))
    assert isinstance(df, pl.DataFrame)
    assert_same_rows(df.to_dicts(), pushed, "conversations")
