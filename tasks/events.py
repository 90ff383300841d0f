"""Prefect events that let automations and deployment triggers chain other flows (§7)."""

from __future__ import annotations

import re
from typing import Any

from prefect.events import emit_event

from tasks.generation.result import GeneratedDataset

DATASET_PUSHED = "hf.dataset.pushed"
DATASET_GENERATED = "hf.dataset.generated"


def emit_dataset_pushed(
    repo_id: str,
    revision: str,
    commit: str | None,
    commits: int,
    records: int,
    url: str,
    credentials_block: str | None = None,
) -> None:
    """Emit ``hf.dataset.pushed`` with the repo as the event's resource.

    Args:
        repo_id: The dataset repo.
        revision: The branch (or ``refs/pr/N``) pushed to.
        commit: The commit the push left ``revision`` at: a chained flow that reads at it sees exactly this push,
            even if another push lands meanwhile. None only when the Hub could not be asked where the branch is
            after a push whose selected stages all had nothing to push.
        commits: How many commits the push made; 0 for a push that found everything on the Hub already.
        records: Records in the dataset pushed.
        url: The repo's URL.
        credentials_block: The name of the saved ``HuggingFaceCredentials`` block the push used, if any (a name,
            never a token): a chained flow reading a private repo can use the same block.

    Deployment triggers can match ``{"hf.repo.id": "<repo>"}``, and ``{"hf.dataset.changed": "true"}`` to skip
    pushes that changed nothing; they template parameters from ``{{ event.payload.repo_id }}``,
    ``{{ event.payload.commit }}`` or ``{{ event.resource.name }}``.
    """
    payload: dict[str, Any] = {
        "repo_id": repo_id,
        "revision": revision,
        "commit": commit,
        "commits": commits,
        "changed": commits > 0,
        "records": records,
        "url": url,
        "credentials_block": credentials_block,
    }
    emit_event(
        event=DATASET_PUSHED,
        resource={
            "prefect.resource.id": f"hf.dataset.{repo_id}",
            "prefect.resource.name": repo_id,
            "hf.repo.id": repo_id,
            "hf.dataset.changed": "true" if commits else "false",  # resource labels are strings
        },
        payload=payload,
    )


def emit_dataset_generated(
    result: GeneratedDataset, *, config_hash: str, seed: int, checkpoint: dict[str, Any] | None
) -> None:
    """Emit ``hf.dataset.generated`` for a finished generation run; its resource is the output folder."""
    slug = re.sub(r"[^a-z0-9._-]+", "-", result.path.name.lower()).strip("-") or "dataset"
    emit_event(
        event=DATASET_GENERATED,
        resource={
            "prefect.resource.id": f"hf.dataset.generation.{slug}",
            "prefect.resource.name": result.path.name,
        },
        payload={
            "path": str(result.path),
            "records": result.num_records,
            "batches": result.num_batches,
            "columns": result.columns,
            "processors": result.processors,
            "config_hash": config_hash,
            "seed": seed,
            "resumed_batches": result.resumed_batches,
            "checkpoint": checkpoint,
        },
    )
