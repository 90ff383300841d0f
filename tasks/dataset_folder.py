"""Reading and checking a dataset folder in the Data Designer layout (product.md §2), without network.

Every problem a folder can have is found here, before the first request to the Hub: a missing or empty
``parquet-files/``, unreadable or mismatched parquet batches, malformed JSON, paths that escape the folder,
processor names that would overwrite reserved repo paths, file names the Hub cannot store.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict

DATA_DIR = "parquet-files"
PROCESSORS_DIR = "processors-files"
IMAGES_DIR = "images"
BUILDER_CONFIG = "builder_config.json"
METADATA = "metadata.json"

# Repo paths owned by the other stages: a processor must not be named like one of them.
RESERVED_REPO_NAMES = frozenset(
    {
        "readme.md",
        "data",
        "images",
        ".gitattributes",
        ".gitignore",
        "metadata.json",
        "builder_config.json",
        ".git",
    }
)
# ``datasets`` takes a config of this name as a default config: with the data config marked default, it refuses
# to load any config of the repo.
DEFAULT_CONFIG_NAME = "default"
_PROCESSOR_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,95}$")
_MAX_REPO_PATH_BYTES = 1000
_MAX_NAME_BYTES = 255


class DatasetFolderError(ValueError):
    """The dataset folder cannot be pushed as it is; the message names the file and the problem."""


class ProcessorOutput(BaseModel):
    """One processor's output: a folder of batches or a single parquet file."""

    model_config = ConfigDict(frozen=True)

    name: str
    files: tuple[Path, ...]
    single_file: bool


class DatasetFolder(BaseModel):
    """A checked dataset folder: every path absolute, inside ``root``, sorted."""

    model_config = ConfigDict(frozen=True)

    root: Path
    data_files: tuple[Path, ...]
    processors: tuple[ProcessorOutput, ...]
    images: tuple[Path, ...]
    builder_config: dict[str, Any] | None
    metadata: dict[str, Any] | None
    num_records: int

    def relative(self, path: Path) -> str:
        """The POSIX path of ``path`` relative to the folder root."""
        return path.relative_to(self.root).as_posix()


def _check_name(rel_text: str, path: Path) -> None:
    """Refuse a repo path (``rel_text``, of the file ``path``) that the Hub cannot store or the push must not send."""
    try:
        rel_text.encode("utf-8")
    except UnicodeEncodeError:
        raise DatasetFolderError(
            f"{os.fsdecode(bytes(path))!r}: the file name is not valid UTF-8; rename it (the Hub stores UTF-8 paths)."
        ) from None
    parts = rel_text.split("/")
    if len(rel_text.encode()) > _MAX_REPO_PATH_BYTES or any(len(p.encode()) > _MAX_NAME_BYTES for p in parts):
        raise DatasetFolderError(f"{rel_text[:80]}...: the path is too long for the Hub; shorten the file name.")
    # huggingface_hub refuses to commit a path under a '.git' or '.cache' folder (its FORBIDDEN_FOLDERS), at the
    # stage's turn: refused here, before any stage commits. (A hidden file is not pushed at all.)
    if ".." in parts or ".git" in parts or ".cache" in parts[:-1] or rel_text.startswith("/"):
        raise DatasetFolderError(f"{rel_text}: paths with '..', '.git' or '.cache' segments cannot be pushed.")


def _check_inside(root: Path, path: Path) -> None:
    """Refuse names the Hub cannot store, and symlinks (or anything) that resolve outside the folder."""
    rel_text = path.relative_to(root).as_posix()
    _check_name(rel_text, path)
    resolved = path.resolve()
    if not resolved.is_relative_to(root):
        raise DatasetFolderError(
            f"{rel_text} points outside the dataset folder (to {resolved}); copy the file into the folder instead "
            "of linking it."
        )


def _files_under(root: Path, folder: Path) -> list[Path]:
    """Regular files under ``folder`` (recursively), sorted, each checked to stay inside ``root``."""
    _check_inside(root, folder)  # the one link the walk follows: a folder that is itself a link
    found: list[Path] = []
    cut = len(os.path.join(root, ""))  # entry.path[cut:] is the path relative to root
    pending = [folder]
    while pending:
        with os.scandir(pending.pop()) as entries:
            for entry in entries:  # a DirEntry knows its type: no system call per file
                path = Path(entry.path)
                linked = entry.is_symlink()
                if linked:
                    _check_inside(root, path)
                else:  # reached from root without following a link: it cannot lead outside, no need to resolve
                    _check_name(entry.path[cut:], path)
                if entry.is_dir(follow_symlinks=False):
                    pending.append(path)
                elif entry.name.startswith("."):
                    continue  # hidden files (e.g. generation state) are not part of the dataset
                # A linked folder inside root is pushed through its real path only; sockets and the like not at all.
                elif path.is_file() if linked else entry.is_file(follow_symlinks=False):
                    found.append(path)
    return sorted(found, key=lambda p: p.as_posix())


def _read_json(root: Path, name: str) -> dict[str, Any] | None:
    path = root / name
    if not path.exists():
        return None
    _check_inside(root, path)
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetFolderError(f"{name} is not valid JSON ({exc}); fix or remove the file.") from None
    if not isinstance(value, dict):
        raise DatasetFolderError(f"{name} must hold a JSON object, not {type(value).__name__}.")
    return value


def _parquet_schema(root: Path, path: Path) -> tuple[pa.Schema, int]:
    rel = path.relative_to(root).as_posix()
    try:
        meta = pq.read_metadata(path)
        schema = pq.read_schema(path)
    except (pa.ArrowException, OSError) as exc:
        raise DatasetFolderError(f"{rel} is not a readable parquet file ({exc}).") from None
    return schema, meta.num_rows


def _check_flat(root: Path, files: list[Path], folder: Path) -> None:
    """Refuse batch files in subfolders: the card's configs read ``<folder>/*.parquet``, so they would be
    uploaded and counted on the card but not loaded."""
    nested = [p for p in files if p.parent != folder]
    if nested:
        rel = nested[0].relative_to(root).as_posix()
        raise DatasetFolderError(
            f"{rel} is in a subfolder of {folder.relative_to(root).as_posix()}/: the dataset loads only the parquet "
            "files directly in it. Move the file up, or out of the dataset folder."
        )


def _check_batches(root: Path, files: list[Path], what: str) -> tuple[pa.Schema, int]:
    """The batches' common schema and their row count. Batches must have the same columns, of the same types;
    a column that is all null in a later batch (Arrow type ``null``, as pandas writes it) or nullable in one batch
    and not in another still matches, as it does for ``datasets`` and the Hub's viewer. ``datasets`` takes the
    column types from the first batch, so a column all null there but typed later, or a batch without rows, would
    make the config unloadable: both are refused."""
    schema: pa.Schema | None = None
    first: pa.Schema | None = None
    total = 0
    for path in files:
        batch, rows = _parquet_schema(root, path)
        rel = path.relative_to(root).as_posix()
        if len(batch) == 0:
            raise DatasetFolderError(f"{rel} has no columns.")
        if rows == 0:
            raise DatasetFolderError(
                f"{rel} has no rows: `datasets` cannot load a config holding an empty parquet file. Delete the "
                "file (it holds no data), then push again."
            )
        if schema is None:
            schema = first = batch.remove_metadata()
        else:
            schema = _merged(schema, batch.remove_metadata(), f"{rel} in {what}", files[0].relative_to(root))
        total += rows
    assert schema is not None and first is not None
    _check_first_batch_types(files[0].relative_to(root).as_posix(), first, schema)
    return schema, total


def _check_first_batch_types(rel: str, first: pa.Schema, schema: pa.Schema) -> None:
    """Refuse a column that is all null (type ``null``) in the first batch (``rel``) and typed in a later one."""
    for ours, merged in zip(first, schema, strict=True):
        if pa.types.is_null(ours.type) and not pa.types.is_null(merged.type):
            raise DatasetFolderError(
                f"{rel}: column {ours.name!r} is all null (Arrow type null) in "
                f"this first batch but {merged.type} in later ones: `datasets` reads the types from the first "
                f"file and could not load the others. Write this batch with the column typed (e.g. "
                f"table.cast(...) to {merged.type}), then push again."
            )


def _merged(schema: pa.Schema, batch: pa.Schema, where: str, first: Path) -> pa.Schema:
    if batch.names != schema.names:
        missing = [n for n in schema.names if n not in batch.names]
        extra = [n for n in batch.names if n not in schema.names]
        detail = f"missing {missing}, extra {extra}" if missing or extra else "the same columns in another order"
        raise DatasetFolderError(
            f"{where} does not have the columns of {first.as_posix()} ({detail}): all batches of one config must "
            "share column names and types."
        )
    fields = []
    for ours, theirs in zip(schema, batch, strict=True):
        if pa.types.is_null(ours.type) or ours.type.equals(theirs.type):
            fields.append(theirs.with_nullable(ours.nullable or theirs.nullable))
        elif pa.types.is_null(theirs.type):
            fields.append(ours.with_nullable(True))
        else:
            raise DatasetFolderError(
                f"{where}: column {ours.name!r} is {theirs.type}, but {ours.type} in the batches before it: all "
                "batches of one config must share column names and types."
            )
    return pa.schema(fields)


def check_processor_name(name: str) -> str:
    """Refuse processor names that are unsafe as a top-level repo folder or config name."""
    if name.lower() in RESERVED_REPO_NAMES:
        raise DatasetFolderError(
            f"processor {name!r} would overwrite the reserved repo path {name!r}; rename the processor."
        )
    if name == DEFAULT_CONFIG_NAME:
        raise DatasetFolderError(
            f"processor {name!r}: `datasets` takes a config named {name!r} as the default one, besides the data "
            "config, and then loads none of them; rename the processor."
        )
    if not _PROCESSOR_NAME.match(name):
        raise DatasetFolderError(
            f"processor {name!r}: names may only use letters, digits, '_', '-' and '.', and start with a letter "
            "or digit."
        )
    return name


def scan_dataset_folder(path: str | os.PathLike[str]) -> DatasetFolder:
    """Read and check a Data Designer dataset folder.

    Args:
        path: The folder holding ``parquet-files/`` and, optionally, ``processors-files/``, ``images/``,
            ``builder_config.json`` and ``metadata.json``.

    Returns:
        The checked folder, with every file the push will upload.

    Raises:
        DatasetFolderError: naming the file and the problem, for anything the push would fail on.
    """
    root = Path(path).expanduser()
    if not root.exists():
        raise DatasetFolderError(f"dataset folder {str(root)!r} does not exist.")
    if not root.is_dir():
        raise DatasetFolderError(f"{str(root)!r} is a file; pass the dataset folder that holds parquet-files/.")
    root = root.resolve()

    data_dir = root / DATA_DIR
    if not data_dir.is_dir():
        raise DatasetFolderError(f"{root} has no {DATA_DIR}/ folder: nothing to push.")
    data_files = [p for p in _files_under(root, data_dir) if p.suffix == ".parquet"]
    if not data_files:
        raise DatasetFolderError(f"{root / DATA_DIR} holds no .parquet files: nothing to push.")
    _check_flat(root, data_files, data_dir)
    _, num_records = _check_batches(root, data_files, DATA_DIR)

    processors: list[ProcessorOutput] = []
    proc_root = root / PROCESSORS_DIR
    if proc_root.is_dir():
        for entry in sorted(proc_root.iterdir(), key=lambda p: p.name):
            _check_inside(root, entry)
            if entry.is_dir():
                files = [p for p in _files_under(root, entry) if p.suffix == ".parquet"]
                if not files:
                    continue  # an empty processor folder produced nothing: no config for it
                _check_flat(root, files, entry)
                name, single = entry.name, False
            elif entry.suffix == ".parquet" and entry.is_file():
                files, name, single = [entry], entry.stem, True
            else:
                continue
            check_processor_name(name)
            if any(p.name == name for p in processors):
                raise DatasetFolderError(
                    f"processor {name!r} has both a folder and a single file under {PROCESSORS_DIR}/; keep one."
                )
            _check_batches(root, files, f"processor {name!r}")
            processors.append(ProcessorOutput(name=name, files=tuple(files), single_file=single))

    images_dir = root / IMAGES_DIR
    images = _files_under(root, images_dir) if images_dir.is_dir() else []

    return DatasetFolder(
        root=root,
        data_files=tuple(data_files),
        processors=tuple(processors),
        images=tuple(images),
        builder_config=_read_json(root, BUILDER_CONFIG),
        metadata=_read_json(root, METADATA),
        num_records=num_records,
    )
