"""The copy of ``metadata.json`` uploaded to the Hub: paths in the repo layout, secrets removed (§4).

What is rewritten, and how (everything else, keys included, is uploaded byte for byte):

- ``file_paths`` lists only what the push uploads: ``parquet-files`` and ``processor-files`` are the push's own
  lists, in the repo layout; any other key keeps only its entries that name a pushed file, and is dropped when none
  does (``dropped-columns-parquet-files``, written with ``preserve_dropped_columns``, is not pushed).
- A string that is the dataset folder, or starts with it, becomes its path in the repo: the folder itself is
  ``"."`` (the repo's root), ``<root>/parquet-files/batch_00000.parquet`` is ``data/batch_00000.parquet``,
  ``<root>/generation.log`` is ``generation.log``.
- Any other absolute local path (``/…`` with two segments or more, ``C:\\…``, ``\\\\server\\…``, ``~/…``) becomes
  ``OUTSIDE_DATASET``: it would show the user's directories and points at nothing on the Hub.
- A string that is exactly a file's path relative to the folder, in its layout (``parquet-files/…``,
  ``processors-files/…``, ``images/…``; ``\\`` separators too), becomes its repo path.

Free text is never a path: a string of several lines, or one in which a layout folder is not the first segment
(``Photo: https://example.com/images/cat.png``, ``thumbnails/images/a.jpg``), is left as it is.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from tasks.dataset_folder import DATA_DIR, IMAGES_DIR, PROCESSORS_DIR, DatasetFolder
from tasks.redaction import redact_secrets
from tasks.repo_layout import BUILDER_CONFIG, DATA_FOLDER, IMAGES_FOLDER, METADATA, repo_path

OUTSIDE_DATASET = "<local path outside the dataset>"
DATASET_ROOT = "."  # the dataset folder itself: the root of the repo

_PUSH_LISTS = ("parquet-files", "processor-files")  # the file_paths keys the push writes itself
# Files named by a relative path with one of these extensions are rewritten even when the folder no longer has
# them (a stale batch is still named where the repo would hold it); compared case-insensitively.
_FILE_EXTENSIONS = (".parquet", ".png", ".jpg", ".jpeg", ".webp")
# An absolute local path, once ``\`` is read as ``/``: ``/a/b`` (a single segment, ``/tmp`` or ``/imagine a cat``,
# tells nothing and is often text), a drive (``C:/``) or the home folder (``~/``). ``\\server\share`` is tested
# on the original string, since ``//host/...`` is also how a URL without its scheme starts.
_ABSOLUTE = re.compile(r"^(?:/[^/]+/[^/]|[A-Za-z]:/|~/)")


class _Rewriter:
    """Rewrites the path strings of one dataset folder's metadata to the repo layout."""

    def __init__(self, folder: DatasetFolder) -> None:
        self.root = folder.root.as_posix().rstrip("/")
        files = [*folder.data_files, *(p for proc in folder.processors for p in proc.files), *folder.images]
        # Folder-relative path → repo path, for every file the push uploads.
        self.uploaded = {folder.relative(p): repo_path(folder.relative(p)) or folder.relative(p) for p in files}
        self.uploaded[METADATA] = METADATA
        if folder.builder_config is not None:
            self.uploaded[BUILDER_CONFIG] = BUILDER_CONFIG
        # Folders whose repo name differs, for a path naming the folder itself (``<root>/parquet-files``).
        self.folders = {DATA_DIR: DATA_FOLDER, IMAGES_DIR: IMAGES_FOLDER}
        self.folders.update({f"{PROCESSORS_DIR}/{p.name}": p.name for p in folder.processors if not p.single_file})

    def _inside(self, value: str) -> str | None:
        """The folder-relative path of ``value`` when it is the folder or a path under it ("" for the folder)."""
        text = value.replace("\\", "/")
        if text.rstrip("/") == self.root:
            return ""
        if text.startswith(self.root + "/"):
            return text[len(self.root) + 1 :]
        return None

    def _relative_to_repo(self, relative: str) -> str:
        """The repo path of a path under the dataset folder (itself, if the repo has no other name for it)."""
        relative = relative.rstrip("/")
        if not relative:
            return DATASET_ROOT
        return self.uploaded.get(relative) or self.folders.get(relative) or repo_path(relative) or relative

    def pushed_file(self, value: str) -> str | None:
        """The repo path of ``value`` if it names (absolutely or relative to the folder) a file the push uploads."""
        relative = self._inside(value)
        if relative is None:
            relative = value.replace("\\", "/").removeprefix("./")
        return self.uploaded.get(relative)

    def string(self, value: str) -> str:
        if not value or "\n" in value or "\r" in value:
            return value  # text, not a path
        relative = self._inside(value)
        if relative is not None:
            return self._relative_to_repo(relative)
        text = value.replace("\\", "/")
        if _ABSOLUTE.match(text) or value.startswith("\\\\"):
            return OUTSIDE_DATASET
        text = text.removeprefix("./")
        if text in self.uploaded:
            return self.uploaded[text]
        if text.lower().endswith(_FILE_EXTENSIONS):
            return repo_path(text) or value
        return value

    def tree(self, node: Any) -> Any:
        if isinstance(node, dict):
            return {k: self.tree(v) for k, v in node.items()}
        if isinstance(node, list):
            return [self.tree(v) for v in node]
        if isinstance(node, str):
            return self.string(node)
        return node

    def pushed_only(self, node: Any) -> Any:
        """``node`` (a ``file_paths`` entry) with only the pushed files, in the repo layout; None if none is."""
        if isinstance(node, str):
            return self.pushed_file(node)
        if isinstance(node, list):
            kept = [v for v in (self.pushed_only(v) for v in node) if v is not None]
            return kept or None
        if isinstance(node, dict):
            pairs = {k: self.pushed_only(v) for k, v in node.items()}
            return {k: v for k, v in pairs.items() if v is not None} or None
        return None


def hub_metadata(
    folder: DatasetFolder,
    known_secrets: Iterable[str] = (),
    repo_files: Mapping[str, list[str]] | None = None,
) -> dict[str, Any]:
    """Build the uploaded ``metadata.json``: the local one (or a minimal one) with repo paths and no secrets.

    Every key the push does not understand is kept, with its paths rewritten as the module says: no string in
    the result points at the user's machine. ``file_paths`` lists the files the push uploads, or, with
    ``repo_files`` (repo folder → parquet paths found there), the files the repo holds, so the Hub copy is
    consistent with the repo even after a race with another push; entries for files the push does not upload are
    dropped. The local file is not modified.
    """
    original: Mapping[str, Any] = folder.metadata or {}
    rewriter = _Rewriter(folder)
    local_lists = original.get("file_paths")
    if not isinstance(local_lists, dict):
        local_lists = {}
    result = {k: v if k == "file_paths" else rewriter.tree(v) for k, v in original.items()}
    ours: dict[str, Any] = {
        "parquet-files": [repo_path(folder.relative(p)) for p in folder.data_files],
        "processor-files": {
            proc.name: [repo_path(folder.relative(p)) for p in proc.files] for proc in folder.processors
        },
    }
    if repo_files is not None:
        ours["parquet-files"] = list(repo_files.get(DATA_FOLDER, []))
        ours["processor-files"] = {
            name: list(repo_files[name]) for name in ours["processor-files"] if repo_files.get(name)
        }
    file_paths: dict[str, Any] = {}
    for key, value in local_lists.items():
        kept = ours[key] if key in _PUSH_LISTS else rewriter.pushed_only(value)
        if kept is not None:
            file_paths[key] = kept
    file_paths.update({key: ours[key] for key in _PUSH_LISTS if key not in file_paths})
    result["file_paths"] = file_paths
    result.setdefault("actual_num_records", folder.num_records)
    result = redact_secrets(result, known_secrets)
    assert isinstance(result, dict)
    return result


def json_bytes(value: object) -> bytes:
    """How the JSON files are written to the repo: indented, UTF-8, with a final newline."""
    return (json.dumps(value, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
