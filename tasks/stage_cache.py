"""Cache keys of the stage tasks: what makes a finished stage safe to skip when a run is retried.

A stage's key covers the target (repo, type, revision, PR mode, split limit), the stage and commit messages,
and the *content* it would push (`content_keys`: digests of its files, or of the generated card/metadata
inputs), plus the push's run key (`tasks.push_run_key`: the outermost flow run and the push's call path in it).
So:

- a run retried from the UI (same run id) takes finished stages from the cache (`Cached`), and runs a stage
  again if its files changed since; this also holds when the push is a subflow (generate-then-push): Prefect
  gives the retried subflow a new run id, but its root run and its call in the parent are the same;
- a new run, or a second push in the same parent run, always re-checks every stage against the Hub. That costs a
  few listing calls and no upload when nothing changed (no commit either), and it keeps a rerun able to repair a repo that was changed in between:
  a key without the run id would skip a stage after an A → B → A change of content and leave B on the Hub.

The token is never part of a key.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from tasks.card.options import CardOptions
from tasks.card.template_sources import template_sources
from tasks.dataset_folder import DatasetFolder
from tasks.file_digest import shared_digest_cache
from tasks.hub_metadata import hub_metadata

CACHE_VERSION = "stage-cache-v1"


def digest_files(paths: Iterable[Path]) -> list[tuple[str, str]]:
    """(path, sha256) of each file, from the digest cache when unchanged."""
    paths = list(paths)
    return [(str(p), d.sha256) for p, d in zip(paths, shared_digest_cache().digest_many(paths), strict=True)]


def fingerprint(*parts: Any) -> str:
    """A stable sha256 over JSON-serialisable parts (paths and models are turned to strings)."""
    text = json.dumps(parts, sort_keys=True, default=str, ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


def stage_cache_key(context: Any, parameters: Mapping[str, Any]) -> str:
    """Prefect ``cache_key_fn`` of every stage task (see the module docstring)."""
    job = parameters["job"]
    run_key = job.run_key or str(getattr(getattr(context, "task_run", None), "flow_run_id", ""))
    return fingerprint(
        CACHE_VERSION,
        run_key,
        context.task.name,
        job.target.model_dump(),
        job.revision,
        job.messages,
        job.content_key,
    )


def content_keys(folder: DatasetFolder, card: CardOptions) -> dict[str, str]:
    """Per-stage content fingerprints, by stage name: each stage job's ``content_key``.

    The card's covers the data it describes (its statistics change with the data).
    """
    data = digest_files(folder.data_files)
    procs = {p.name: digest_files(p.files) for p in folder.processors}
    images = digest_files(folder.images)
    template = template_sources(card.template) if card.template else None  # with the templates it includes
    return {
        "card": fingerprint(
            card.model_dump(mode="json"), template, data, procs, folder.builder_config, folder.metadata
        ),
        "data": fingerprint(data),
        "images": fingerprint(images),
        "processors": fingerprint(procs),
        "builder_config": fingerprint(folder.builder_config),
        "metadata": fingerprint(hub_metadata(folder), data, procs),
    }
