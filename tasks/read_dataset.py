"""Read a pushed dataset config back from the Hub: as Arrow, pandas or ``datasets``, streaming where possible.

The config's files are the ones its dataset card declares: ``README.md`` is downloaded, its YAML front matter's
``configs`` entry gives the ``data_files`` glob(s) of the config, and the glob is resolved with ``HfFileSystem``.
Everything is read at one commit: the requested revision (branch, tag or ``refs/pr/N``) is resolved to its commit
sha first, so a push landing while a read runs cannot mix files of two commits.

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
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, overload

import pyarrow as pa
import pyarrow.parquet as pq
from huggingface_hub import HfFileSystem
from huggingface_hub.errors import RemoteEntryNotFoundError
from huggingface_hub.repocard import metadata_load
from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import SecretStr

from tasks.credentials import HuggingFaceCredentials, optional_token
from tasks.hub_client import bound_hub_requests, downloaded, hub_api
from tasks.retry_policy import retry_transient_only

if TYPE_CHECKING:
    import pandas as pd
    from datasets import Dataset, IterableDataset

__all__ = [
    "IMAGES_CONFIG",
    "ConfigNotFoundError",
    "DatasetCardError",
    "ReadFormat",
    "ResolvedConfig",
    "iter_record_batches",
    "list_configs",
    "read_dataset",
    "read_pushed_dataset",
    "resolve_config",
]

ReadFormat = Literal["arrow", "pandas", "datasets"]
FORMATS: tuple[str, ...] = ("arrow", "pandas", "datasets")
DEFAULT_BATCH_SIZE = 10_000
IMAGES_CONFIG = "images"
IMAGE_BATCH_SIZE = 64
IMAGE_STRUCT = pa.struct([("bytes", pa.binary()), ("path", pa.string())])  # datasets' Image storage layout
IMAGE_SCHEMA = pa.schema([("column", pa.string()), ("path", pa.string()), ("image", IMAGE_STRUCT)])


class DatasetCardError(ValueError):
    """The repo's dataset card (README.md) is missing or does not declare its configs in a usable way."""


class ConfigNotFoundError(KeyError):
    """The dataset card does not declare the requested config (or split); the message lists those it does."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class ResolvedConfig:
    """A config of a pushed dataset, pinned to one commit.

    Attributes:
        repo_id: ``namespace/name`` of the dataset repo.
        config: The config name, as declared in the card.
        split: The split that was resolved.
        revision: The revision that was asked for (branch, tag, ``refs/pr/N`` or sha).
        commit: The commit sha that ``revision`` pointed to; every file is read at this commit.
        files: Repo paths of the config's data files, sorted.
        configs: Every config name the card declares.
        kind: ``"parquet"`` for the card's configs; ``"images"`` for the image files under ``images/``.
    """

    repo_id: str
    config: str
    split: str
    revision: str
    commit: str
    files: tuple[str, ...]
    configs: tuple[str, ...] = field(default=())
    kind: Literal["parquet", "images"] = "parquet"

    def fs_paths(self) -> list[str]:
        """``HfFileSystem`` paths of the files, pinned to the commit (``datasets/<repo>@<sha>/<path>``)."""
        return [f"datasets/{self.repo_id}@{self.commit}/{path}" for path in self.files]

    def urls(self) -> list[str]:
        """``hf://`` URLs of the files, pinned to the commit (for ``datasets``, pandas, dask, DuckDB)."""
        return [f"hf://{path}" for path in self.fs_paths()]


def _filesystem(token: str | None) -> HfFileSystem:
    # A fresh instance: a cached one may remember that a repo or revision did not exist a moment ago.
    bound_hub_requests()  # its reads go through huggingface_hub's shared client
    return HfFileSystem(token=token if token else None, skip_instance_cache=True)


def _card_configs(repo_id: str, commit: str, token: str | None) -> list[dict[str, Any]]:
    try:
        with downloaded(
            hub_api(), repo_id, "README.md", repo_type="dataset", revision=commit, token=token
        ) as readme:
            metadata = metadata_load(readme) or {}
    except RemoteEntryNotFoundError:  # the file is missing; an outage (LocalEntryNotFoundError) is raised as is
        raise DatasetCardError(
            f"{repo_id}@{commit[:12]} has no README.md: the configs of a pushed dataset are declared in its "
            "dataset card. Push the card stage (stages=['card']) and read again."
        ) from None
    configs = metadata.get("configs")
    if not configs:
        raise DatasetCardError(
            f"The dataset card of {repo_id}@{commit[:12]} declares no `configs` in its YAML front matter; "
            "push the card stage again to declare them."
        )
    if not isinstance(configs, list) or not all(isinstance(c, dict) and "config_name" in c for c in configs):
        raise DatasetCardError(
            f"The dataset card of {repo_id}@{commit[:12]} has a malformed `configs` list: every item must be a "
            "mapping with a `config_name`."
        )
    return configs


def _split_patterns(entry: dict[str, Any], split: str, repo_id: str) -> list[str]:
    """The glob patterns of one split of a card ``configs`` item (``data_files``: str | list | list of splits)."""
    name = entry["config_name"]
    data_files = entry.get("data_files")
    if data_files is None:
        raise DatasetCardError(f"Config {name!r} of {repo_id} declares no data_files.")
    if isinstance(data_files, str):
        by_split: dict[str, list[str]] = {"train": [data_files]}
    elif isinstance(data_files, list) and all(isinstance(p, str) for p in data_files):
        by_split = {"train": list(data_files)}
    elif isinstance(data_files, list) and all(isinstance(p, dict) for p in data_files):
        by_split = {}
        for item in data_files:
            path = item.get("path")
            paths = [path] if isinstance(path, str) else list(path or [])
            by_split.setdefault(str(item.get("split", "train")), []).extend(paths)
    else:
        raise DatasetCardError(f"Config {name!r} of {repo_id} has data_files of an unknown form: {data_files!r}.")
    if split not in by_split:
        raise ConfigNotFoundError(
            f"Config {name!r} of {repo_id} has no split {split!r}; its splits: {', '.join(sorted(by_split))}."
        )
    return by_split[split]


def _hidden(path_in_repo: str, pattern: str) -> bool:
    """Hidden (``.x``) or special (``__x``) files and folders are ignored unless the pattern names them."""
    parts = path_in_repo.split("/")
    pattern_parts = pattern.split("/")
    for i, part in enumerate(parts):
        if part.startswith((".", "__")):
            asked = i < len(pattern_parts) and pattern_parts[i].startswith(
                part[:2] if part.startswith("__") else "."
            )
            if not asked:
                return True
    return False


def _resolve_globs(fs: HfFileSystem, repo_id: str, commit: str, patterns: Sequence[str]) -> list[str]:
    """Repo paths of the files matching ``patterns`` at ``commit`` (``*`` stops at ``/``, ``**`` does not)."""
    marker = f"{repo_id}@{commit}/"
    found: set[str] = set()
    for pattern in patterns:
        # detail=True returns {path: info}; expand_info=False skips the costly last-commit lookups.
        matches: dict[str, dict[str, Any]] = fs.glob(  # type: ignore[assignment]
            f"datasets/{marker}{pattern.lstrip('/')}", detail=True, expand_info=False
        )
        for path, info in matches.items():
            if info.get("type") != "file" or marker not in path:
                continue
            in_repo = path.split(marker, 1)[1]
            if not _hidden(in_repo, pattern):
                found.add(in_repo)
    return sorted(found)


def list_configs(
    repo_id: str,
    *,
    revision: str = "main",
    token: str | SecretStr | None = None,
    credentials: HuggingFaceCredentials | None = None,
) -> list[str]:
    """The config names that the dataset card of ``repo_id`` declares, in card order."""
    secret = optional_token(token, credentials)
    return configs_at(repo_id, commit_of(repo_id, revision, secret), secret)


def commit_of(repo_id: str, revision: str, token: str | None) -> str:
    """The commit ``revision`` of dataset ``repo_id`` points at: what a reader pins, so that a push landing
    meanwhile cannot mix two versions."""
    commit = hub_api().dataset_info(repo_id, revision=revision, token=token).sha
    if commit is None:
        raise DatasetCardError(f"The Hub did not tell the commit of {repo_id}@{revision}.")
    return commit


def configs_at(repo_id: str, commit: str, token: str | None) -> list[str]:
    """The config names the dataset card declares at ``commit``, in card order."""
    return [str(c["config_name"]) for c in _card_configs(repo_id, commit, token)]


def resolve_config(
    repo_id: str,
    config: str = "data",
    *,
    split: str = "train",
    revision: str = "main",
    token: str | SecretStr | None = None,
    credentials: HuggingFaceCredentials | None = None,
) -> ResolvedConfig:
    """Pin ``revision`` to its commit and list the data files of ``config`` (and ``split``) at that commit.

    Raises:
        ConfigNotFoundError: the card does not declare ``config`` (the message lists the configs it does), or the
            config has no ``split``.
        DatasetCardError: no README.md, no ``configs`` in it, or a config that matches no file.
        huggingface_hub.errors.RepositoryNotFoundError: no such repo, or a private one without a valid token.
        huggingface_hub.errors.RevisionNotFoundError: no such revision.
    """
    secret = optional_token(token, credentials)
    commit = commit_of(repo_id, revision, secret)
    configs = _card_configs(repo_id, commit, secret)
    names = tuple(str(c["config_name"]) for c in configs)
    entry = next((c for c in configs if c["config_name"] == config), None)
    if entry is None and config == IMAGES_CONFIG:
        # Image files are not a card config (one repo, one packaged builder: `datasets` would read them as
        # parquet); they are read from the images/ folder itself.
        images = _resolve_globs(_filesystem(secret), repo_id, commit, [f"{IMAGES_CONFIG}/**"])
        if images:
            return ResolvedConfig(repo_id, config, split, revision, commit, tuple(images), names, kind="images")
    if entry is None:
        raise ConfigNotFoundError(
            f"The dataset card of {repo_id} declares no config {config!r}; its configs: {', '.join(names)} "
            f"(and {IMAGES_CONFIG!r} for the image files, when the dataset has any)."
        )
    patterns = _split_patterns(entry, split, repo_id)
    files = _resolve_globs(_filesystem(secret), repo_id, commit, patterns)
    if not files:
        raise DatasetCardError(
            f"Config {config!r} of {repo_id}@{commit[:12]} matches no file ({', '.join(patterns)})."
        )
    not_parquet = [f for f in files if not f.endswith(".parquet")]
    if not_parquet:
        raise DatasetCardError(
            f"Config {config!r} of {repo_id} has files that are not parquet ({', '.join(not_parquet[:3])}); "
            "this reader reads parquet configs, as the push writes them."
        )
    return ResolvedConfig(repo_id, config, split, revision, commit, tuple(files), names)


def _schema(fs: HfFileSystem, paths: Sequence[str]) -> pa.Schema:
    """One schema for all files (footers only): a column that is all-null in one batch takes the others' type."""
    schemas = []
    for path in paths:
        with fs.open(path, "rb") as f:
            schemas.append(pq.read_schema(f))
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
    fs = _filesystem(optional_token(token, credentials))
    if resolved.kind == "images":
        yield from _image_batches(fs, resolved, min(batch_size, IMAGE_BATCH_SIZE), columns)
        return
    paths = resolved.fs_paths()
    if schema is None:
        schema = _schema(fs, paths)
        if columns is not None:
            schema = pa.schema([schema.field(name) for name in columns])
    for path in paths:
        with fs.open(path, "rb") as f:
            parquet = pq.ParquetFile(f)
            for batch in parquet.iter_batches(batch_size=batch_size, columns=list(columns) if columns else None):
                yield _conform(batch, schema)


def _image_batches(
    fs: HfFileSystem, resolved: ResolvedConfig, batch_size: int, columns: Sequence[str] | None
) -> Iterator[pa.RecordBatch]:
    """Rows of (image column, repo path, image {bytes, path}), ``batch_size`` images at a time."""
    schema = _image_schema(columns)
    for start in range(0, len(resolved.files), batch_size):
        chunk = resolved.files[start : start + batch_size]
        contents: Any = fs.cat([f"datasets/{resolved.repo_id}@{resolved.commit}/{p}" for p in chunk])
        by_path = {key.split(f"@{resolved.commit}/", 1)[1]: value for key, value in contents.items()}
        values = {
            "column": [p.split("/")[1] if p.count("/") >= 2 else "" for p in chunk],
            "path": list(chunk),
            "image": [{"bytes": by_path[p], "path": p} for p in chunk],
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
    schema = _file_schema(_filesystem(token), resolved, columns)
    batches = iter_record_batches(resolved, token=token, batch_size=batch_size, columns=columns, schema=schema)
    return pa.RecordBatchReader.from_batches(schema, batches)


def _pandas_chunks(reader: pa.RecordBatchReader) -> Iterator[pd.DataFrame]:
    for batch in reader:
        yield batch.to_pandas()


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
        ValueError: an unknown ``as_``.

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
    secret = optional_token(token, credentials)
    resolved = resolve_config(repo_id, config, split=split, revision=revision, token=secret)
    if as_ == "datasets":
        dataset = _datasets(resolved, secret, streaming)
        return dataset.select_columns(list(columns)) if columns else dataset
    if streaming:
        reader = _record_batch_reader(resolved, secret, batch_size, columns)
        return _pandas_chunks(reader) if as_ == "pandas" else reader
    schema = _file_schema(_filesystem(secret), resolved, columns)
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
            assert all(len(m) == 2 for m in conversations["messages"])
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
