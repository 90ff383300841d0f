"""The copy of ``metadata.json`` uploaded to the Hub: paths in the repo layout, secrets removed (§4)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from tasks.dataset_folder import DatasetFolder
from tasks.redaction import redact_secrets
from tasks.repo_layout import DATA_FOLDER, repo_path


def _rewrite_paths(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _rewrite_paths(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_rewrite_paths(v) for v in node]
    if isinstance(node, str) and node.endswith((".parquet", ".png", ".jpg", ".jpeg", ".webp")):
        return repo_path(node) or node
    return node


def hub_metadata(
    folder: DatasetFolder,
    known_secrets: Iterable[str] = (),
    repo_files: Mapping[str, list[str]] | None = None,
) -> dict[str, Any]:
    """Build the uploaded ``metadata.json``: the local one (or a minimal one) with repo paths and no secrets.

    Every key the push does not understand is kept. ``file_paths`` lists the files the push uploads, or, with
    ``repo_files`` (repo folder → parquet paths found there), the files the repo holds, so the Hub copy is
    consistent with the repo even after a race with another push. The local file is not modified.
    """
    original: Mapping[str, Any] = folder.metadata or {}
    result = _rewrite_paths(dict(original))
    file_paths = dict(result.get("file_paths") or {}) if isinstance(result.get("file_paths"), dict) else {}
    file_paths["parquet-files"] = [repo_path(folder.relative(p)) for p in folder.data_files]
    file_paths["processor-files"] = {
        proc.name: [repo_path(folder.relative(p)) for p in proc.files] for proc in folder.processors
    }
    if repo_files is not None:
        file_paths["parquet-files"] = list(repo_files.get(DATA_FOLDER, []))
        file_paths["processor-files"] = {
            name: list(repo_files[name]) for name in file_paths["processor-files"] if repo_files.get(name)
        }
    result["file_paths"] = file_paths
    result.setdefault("actual_num_records", folder.num_records)
    result = redact_secrets(result, known_secrets)
    assert isinstance(result, dict)
    return result


def json_bytes(value: object) -> bytes:
    """How the JSON files are written to the repo: indented, UTF-8, with a final newline."""
    return (json.dumps(value, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
