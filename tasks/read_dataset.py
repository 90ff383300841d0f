"""Read a pushed dataset config back from the Hub: as Arrow, pandas or ``datasets``, streaming where possible.

Which files make the config, and at which commit, is resolved first (``tasks.dataset_configs``: the files its
dataset card declares, at the commit the requested revision points to); this module reads their rows, all at that
commit, so a push landing while a read runs cannot mix files of two commits.

Works against huggingface.co and against any Hub-compatible server named by ``HF_ENDPOINT`` (the embedded
``localhub``). Public repos are read anonymously when no token is found; private repos need a token with read
access (explicit ``token=``, a ``HuggingFaceCredentials`` block, ``HF_TOKEN`` or ``hf auth login``).

Example:
    ```python
    from prefect import flow

    from tasks.read_dataset import read_pushed_dataset


    @flow
    def count_languages(repo_id: str) -> dict[str, int]:
        table = read_pushed_dataset(repo_id, "data")  # a pyarrow.Table of the whole config
        counts = table.group_by("language").aggregate([("language", "count")])
        return dict(zip(counts["language"].to_pylist(), counts["language_count"].to_pylist(), strict=True))


    if __name__ == "__main__":
        print(count_languages("alice/greetings"))
    ```
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Literal, overload

import pyarrow as pa
import pyarrow.parquet as pq
from huggingface_hub import HfFileSystem
from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import SecretStr

from tasks.credentials import HuggingFaceCredentials, optional_token
from tasks.dataset_configs import (
    ConfigNotFoundError,
    DatasetCardError,
    ResolvedConfig,
    list_configs,
    resolve_config,
)
from tasks.hub_client import hub_filesystem
from tasks.retry_policy import retry_transient_only

if TYPE_CHECKING:
    import pandas as pd
    from datasets import Dataset, IterableDataset

# list_configs, resolve_config and the two errors live in tasks.dataset_configs and stay importable from here,
# the reader's documented entry point (README).
__all__ = [
    "ConfigNotFoundError",
    "DatasetCardError",
    "ReadFormat",
    "iter_record_batches",
    "list_configs",
    "read_dataset",
    "read_pushed_dataset",
    "resolve_config",
]

ReadFormat = Literal["arrow", "pandas", "datasets"]
FORMATS: tuple[str, ...] = ("arrow", "pandas", "datasets")
DEFAULT_BATCH_SIZE = 10_000
IMAGE_BATCH_SIZE = 64
FOOTER_READERS = 8  # footers read at once before the first row (HTTP round trips, not CPU)
IMAGE_STRUCT = pa.struct([("bytes", pa.binary()), ("path", pa.string())])  # datasets' Image storage layout
IMAGE_SCHEMA = pa.schema([("column", pa.string()), ("path", pa.string()), ("image", IMAGE_STRUCT)])


def _schema(fs: HfFileSystem, paths: Sequence[str]) -> pa.Schema:
    """One schema for all files (footers only): a column that is all-null in one batch takes the others' type.

    The footers are read several at a time: each is a request or two, and one after another they kept the first
    row waiting for the round trips of every file (300 files, 20 ms away: 6.5 s).
    """

    def read_schema(path: str) -> pa.Schema:
        with fs.open(path, "rb") as f:
            return pq.read_schema(f)

    if not paths:
        return pa.schema([])
    schemas = [read_schema(paths[0])]  # alone first: it fills the filesystem's caches that the others then share
    with ThreadPoolExecutor(max_workers=max(1, min(FOOTER_READERS, len(paths) - 1))) as pool:
        schemas += pool.map(read_schema, paths[1:])
    return pa.unify_schemas(schemas, promote_options="permissive")


def _conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    if batch.schema.equals(schema):
        return batch
    arrays = []
    for target in schema:
        index = batch.schema.get_field_index(target.name)
        if index < 0:
            arrays.append(pa.nulls(batch.num_rows, target.type))
        else:
            arrays.append(batch.column(index).cast(target.type))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def iter_record_batches(
    resolved: ResolvedConfig,
    *,
    token: str | SecretStr | None = None,
    credentials: HuggingFaceCredentials | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    columns: Sequence[str] | None = None,
    schema: pa.Schema | None = None,
) -> Iterator[pa.RecordBatch]:
    """Yield the config's rows as Arrow record batches, file by file, without holding more than a batch.

    Batches come in file order (sorted repo paths) and are conformed to one schema (``schema``, default the
    files' unified schema), so they can feed a ``pyarrow.RecordBatchReader`` or a parquet writer.
    """
    fs = hub_filesystem(optional_token(token, credentials))
    if resolved.kind == "images":
        yield from _image_batches(fs, resolved, min(batch_size, IMAGE_BATCH_SIZE), columns)
        return
    paths = resolved.fs_paths()
    if schema is None:
        schema = _schema(fs, paths)
        if columns is not None:
            schema = pa.schema([schema.field(name) for name in columns])
    # Some columns only: no read-ahead, which would fetch megabytes after each column chunk read.
    cache = {"cache_type": "none"} if columns is not None else {}
    for path in paths:
        with fs.open(path, "rb", **cache) as f:
            parquet = pq.ParquetFile(f)
            # One row group at a time: over all of them at once, pyarrow reads ahead and holds about a file.
            for group in range(parquet.num_row_groups):
                for batch in parquet.iter_batches(
                    batch_size=batch_size,
                    row_groups=[group],
                    columns=list(columns) if columns is not None else None,
                ):
                    yield _conform(batch, schema)


def _image_batches(
    fs: HfFileSystem, resolved: ResolvedConfig, batch_size: int, columns: Sequence[str] | None
) -> Iterator[pa.RecordBatch]:
    """Rows of (image column, repo path, image {bytes, path}), ``batch_size`` images at a time."""
    schema = _image_schema(columns)
    for start in range(0, len(resolved.files), batch_size):
        chunk = resolved.files[start : start + batch_size]
        # One file at a time (cat_file): a list given to cat is read as glob patterns, and an image path may hold
        # '[', '*' or '?'.
        contents = [fs.cat_file(f"datasets/{resolved.repo_id}@{resolved.commit}/{p}") for p in chunk]
        values = {
            "column": [p.split("/")[1] if p.count("/") >= 2 else "" for p in chunk],
            "path": list(chunk),
            "image": [{"bytes": data, "path": p} for p, data in zip(chunk, contents, strict=True)],
        }
        yield pa.RecordBatch.from_pydict({f.name: values[f.name] for f in schema}, schema=schema)


def _image_schema(columns: Sequence[str] | None) -> pa.Schema:
    return pa.schema([IMAGE_SCHEMA.field(name) for name in columns]) if columns else IMAGE_SCHEMA


def _file_schema(fs: HfFileSystem, resolved: ResolvedConfig, columns: Sequence[str] | None) -> pa.Schema:
    if resolved.kind == "images":
        return _image_schema(columns)
    schema = _schema(fs, resolved.fs_paths())
    return pa.schema([schema.field(name) for name in columns]) if columns is not None else schema


def _record_batch_reader(
    resolved: ResolvedConfig, token: str | None, batch_size: int, columns: Sequence[str] | None
) -> pa.RecordBatchReader:
    schema = _file_schema(hub_filesystem(token), resolved, columns)
    batches = iter_record_batches(resolved, token=token, batch_size=batch_size, columns=columns, schema=schema)
    return pa.RecordBatchReader.from_batches(schema, batches)


def _pandas_chunks(reader: pa.RecordBatchReader) -> Iterator[pd.DataFrame]:
    """The reader's batches as DataFrames, lazily. Not a generator: Prefect turns a generator a task returns into
    a list, which would read everything and hand back an exhausted generator."""
    return map(pa.RecordBatch.to_pandas, reader)


def _datasets(resolved: ResolvedConfig, token: str | None, streaming: bool) -> Any:
    try:
        import datasets
    except ImportError as exc:  # a test/optional extra, not a runtime dependency
        raise ImportError(
            "as_='datasets' needs the `datasets` library (pip install datasets); "
            "as_='arrow' and as_='pandas' need only pyarrow / pandas."
        ) from exc
    if resolved.kind == "images":
        if not datasets.config.PIL_AVAILABLE:
            raise ImportError(
                "as_='datasets' for the images needs Pillow (pip install pillow); as_='arrow' or as_='pandas' "
                "give the image bytes without it."
            )
        return datasets.load_dataset(
            "imagefolder",
            data_files={resolved.split: resolved.urls()},
            split=resolved.split,
            streaming=streaming,
            token=token,
        )
    return datasets.load_dataset(
        "parquet",
        data_files={resolved.split: resolved.urls()},
        split=resolved.split,
        streaming=streaming,
        token=token,
    )


@overload
def read_dataset(
    repo_id: str,
    config: str = ...,
    *,
    revision: str = ...,
    as_: Literal["arrow"] = ...,
    streaming: Literal[False] = ...,
    split: str = ...,
    columns: Sequence[str] | None = ...,
    batch_size: int = ...,
    token: str | SecretStr | None = ...,
    credentials: HuggingFaceCredentials | None = ...,
) -> pa.Table: ...
@overload
def read_dataset(
    repo_id: str,
    config: str = ...,
    *,
    revision: str = ...,
    as_: Literal["arrow"] = ...,
    streaming: Literal[True],
    split: str = ...,
    columns: Sequence[str] | None = ...,
    batch_size: int = ...,
    token: str | SecretStr | None = ...,
    credentials: HuggingFaceCredentials | None = ...,
) -> pa.RecordBatchReader: ...
@overload
def read_dataset(
    repo_id: str,
    config: str = ...,
    *,
    revision: str = ...,
    as_: Literal["pandas"],
    streaming: Literal[False] = ...,
    split: str = ...,
    columns: Sequence[str] | None = ...,
    batch_size: int = ...,
    token: str | SecretStr | None = ...,
    credentials: HuggingFaceCredentials | None = ...,
) -> pd.DataFrame: ...
@overload
def read_dataset(
    repo_id: str,
    config: str = ...,
    *,
    revision: str = ...,
    as_: Literal["pandas"],
    streaming: Literal[True],
    split: str = ...,
    columns: Sequence[str] | None = ...,
    batch_size: int = ...,
    token: str | SecretStr | None = ...,
    credentials: HuggingFaceCredentials | None = ...,
) -> Iterator[pd.DataFrame]: ...
@overload
def read_dataset(
    repo_id: str,
    config: str = ...,
    *,
    revision: str = ...,
    as_: Literal["datasets"],
    streaming: Literal[False] = ...,
    split: str = ...,
    columns: Sequence[str] | None = ...,
    batch_size: int = ...,
    token: str | SecretStr | None = ...,
    credentials: HuggingFaceCredentials | None = ...,
) -> Dataset: ...
@overload
def read_dataset(
    repo_id: str,
    config: str = ...,
    *,
    revision: str = ...,
    as_: Literal["datasets"],
    streaming: Literal[True],
    split: str = ...,
    columns: Sequence[str] | None = ...,
    batch_size: int = ...,
    token: str | SecretStr | None = ...,
    credentials: HuggingFaceCredentials | None = ...,
) -> IterableDataset: ...
@overload
def read_dataset(
    repo_id: str,
    config: str = ...,
    *,
    revision: str = ...,
    as_: ReadFormat = ...,
    streaming: bool = ...,
    split: str = ...,
    columns: Sequence[str] | None = ...,
    batch_size: int = ...,
    token: str | SecretStr | None = ...,
    credentials: HuggingFaceCredentials | None = ...,
) -> Any: ...
def read_dataset(
    repo_id: str,
    config: str = "data",
    *,
    revision: str = "main",
    as_: ReadFormat = "arrow",
    streaming: bool = False,
    split: str = "train",
    columns: Sequence[str] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    token: str | SecretStr | None = None,
    credentials: HuggingFaceCredentials | None = None,
) -> Any:
    """Read one config of a pushed dataset (plain function; ``read_pushed_dataset`` is the Prefect task).

    Args:
        repo_id: ``namespace/name`` of the dataset repo.
        config: A config its dataset card declares: ``data`` (the main dataset) or a processor's name; or
            ``images`` for the image files under ``images/`` (rows of ``column``, ``path`` and ``image`` =
            ``{bytes, path}``, the layout of ``datasets.Image``; as ``datasets``: the ``imagefolder`` builder).
        revision: Branch, tag, ``refs/pr/N`` or commit sha; resolved to one commit for all files.
        as_: ``"arrow"`` (``pyarrow.Table``), ``"pandas"`` (``pandas.DataFrame``) or ``"datasets"``
            (``datasets.Dataset``; needs the optional ``datasets`` library).
        streaming: Do not load everything: arrow gives a ``pyarrow.RecordBatchReader``, pandas an iterator of
            ``DataFrame`` chunks (one per record batch), datasets an ``IterableDataset``.
        split: The split of the config (the push writes one split, ``train``).
        columns: Read only these columns (arrow and pandas).
        batch_size: Rows per record batch when streaming (arrow and pandas).
        token: A Hub token. Default: ``credentials``, then ``HF_TOKEN``, then ``hf auth login``; without any,
            the read is anonymous (enough for public repos).
        credentials: A saved ``HuggingFaceCredentials`` block.

    Returns:
        The config's rows, in the form ``as_`` and ``streaming`` ask for.

    Raises:
        ConfigNotFoundError: unknown config or split (the message lists what the card declares).
        DatasetCardError: no card, no ``configs`` in it, or a config that matches no parquet file.
        ImportError: ``as_="datasets"`` without the ``datasets`` library (or pandas without pandas).
        ValueError: an unknown ``as_``, or ``columns=[]``.

    Example:
        ```python
        from tasks.read_dataset import read_dataset

        messages = read_dataset("alice/greetings", "conversations", as_="pandas")["messages"]
        for batch in read_dataset("alice/greetings", streaming=True):  # a RecordBatchReader
            print(batch.num_rows)
        ```
    """
    if as_ not in FORMATS:
        raise ValueError(f"as_={as_!r} is not one of {', '.join(FORMATS)}.")
    if columns is not None and not list(columns):
        raise ValueError("columns=[] selects nothing: name the columns to read, or pass None for all of them.")
    secret = optional_token(token, credentials)
    resolved = resolve_config(repo_id, config, split=split, revision=revision, token=secret)
    if as_ == "datasets":
        dataset = _datasets(resolved, secret, streaming)
        return dataset.select_columns(list(columns)) if columns else dataset
    if streaming:
        reader = _record_batch_reader(resolved, secret, batch_size, columns)
        return _pandas_chunks(reader) if as_ == "pandas" else reader
    schema = _file_schema(hub_filesystem(secret), resolved, columns)
    batches = iter_record_batches(resolved, token=secret, batch_size=batch_size, columns=columns, schema=schema)
    table = pa.Table.from_batches(list(batches), schema=schema)
    return table.to_pandas() if as_ == "pandas" else table


@task(
    name="read-pushed-dataset",
    cache_policy=NO_CACHE,  # "main" moves; the result is a live object, not worth persisting
    persist_result=False,
    retries=2,
    retry_delay_seconds=[2, 10],
    retry_condition_fn=retry_transient_only,
)
def read_pushed_dataset(
    repo_id: str,
    config: str = "data",
    *,
    revision: str = "main",
    as_: ReadFormat = "arrow",
    streaming: bool = False,
    split: str = "train",
    columns: list[str] | None = None,
    token: SecretStr | None = None,
    credentials: HuggingFaceCredentials | None = None,
) -> Any:
    """Prefect task: read one config of a pushed dataset, for a downstream flow (see ``read_dataset``).

    The config's files are those its card's ``configs`` declare, read at the commit ``revision`` points to.
    Transient Hub failures (429, 5xx, dropped connections) are retried; 401/404 and unknown configs fail at once.

    Args:
        repo_id: ``namespace/name`` of the dataset repo.
        config: ``data`` or a processor's name (``conversations``, ...), or ``images`` for the image files;
            unknown names list the card's configs.
        revision: Branch, tag, ``refs/pr/N`` or commit sha.
        as_: ``"arrow"`` → ``pyarrow.Table``, ``"pandas"`` → ``pandas.DataFrame``, ``"datasets"`` →
            ``datasets.Dataset`` (optional dependency).
        streaming: ``pyarrow.RecordBatchReader`` / iterator of DataFrames / ``datasets.IterableDataset``.
        split: The split (``train``).
        columns: Only these columns (arrow and pandas).
        token: A Hub token (a ``SecretStr``, so it never shows in the UI). Default: ``credentials``, then
            ``HF_TOKEN``, then ``hf auth login``; anonymous when none (public repos).
        credentials: A saved ``HuggingFaceCredentials`` block.

    Returns:
        The rows of the config (see ``as_`` and ``streaming``).

    Example:
        ```python
        from prefect import flow
        from pydantic import SecretStr

        from flows.push import push_dataset
        from tasks.read_dataset import read_pushed_dataset


        @flow
        def push_then_check(folder: str, repo_id: str, token: SecretStr) -> int:
            push_dataset(folder, repo_id, "Greetings in five languages.", token=token)
            conversations = read_pushed_dataset(repo_id, "conversations", as_="pandas", token=token)
            assert all(len(m) == 3 for m in conversations["messages"])
            rows = 0
            for batch in read_pushed_dataset(repo_id, "data", streaming=True, token=token):
                rows += batch.num_rows
            return rows
        ```
    """
    return read_dataset(
        repo_id,
        config,
        revision=revision,
        as_=as_,
        streaming=streaming,
        split=split,
        columns=columns,
        token=token,
        credentials=credentials,
    )
