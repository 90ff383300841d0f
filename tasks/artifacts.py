"""Prefect artifacts of a push: a link per commit, a table per run, the card, upload progress (§7)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

from tasks.hub_commit import CommitRecord


def artifact_slug(repo_id: str) -> str:
    """A readable artifact-key prefix from a repo id: ``alice/My_Data`` → ``alice-my-data``."""
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9-]", "-", repo_id.lower())).strip("-")


def artifact_key(repo_id: str, *parts: str) -> str:
    """An artifact key, ``<dataset-slug>-<part>-...``: Prefect allows lowercase letters, digits and dashes only,
    and a label may hold a processor name (``conversations_v2``)."""
    return artifact_slug("-".join((repo_id, *parts)))


def record_commit(repo_id: str, label: str, commit: CommitRecord) -> None:
    """A link artifact to the commit on the Hub, keyed ``<dataset-slug>-<label>-commit``."""
    note = " (found on the Hub after its answer was lost)" if commit.recovered else ""
    create_link_artifact(
        link=commit.url,
        link_text=f"{commit.message} ({commit.oid[:8]})",
        key=artifact_key(repo_id, label, "commit"),
        description=(
            f"{commit.message}: {commit.files_added} file(s) added or updated, {commit.files_deleted} deleted, "
            f"{commit.bytes_sent} bytes{note}."
        ),
    )


def record_card(repo_id: str, card_text: str) -> None:
    """The rendered dataset card, as a markdown artifact keyed ``<dataset-slug>-card``."""
    create_markdown_artifact(
        markdown=card_text, key=artifact_key(repo_id, "card"), description=f"Dataset card of {repo_id}"
    )


def record_stage_table(repo_id: str, rows: Sequence[dict[str, Any]]) -> None:
    """One row per stage commit of the run, keyed ``<dataset-slug>-push-summary``."""
    create_table_artifact(
        table=list(rows), key=artifact_key(repo_id, "push-summary"), description=f"Push of {repo_id}, by stage"
    )


class UploadProgress:
    """A progress artifact (``<dataset-slug>-<label>-upload``) updated while a stage's files upload."""

    def __init__(self, repo_id: str, label: str) -> None:
        self._id: UUID | None = None
        self._key = artifact_key(repo_id, label, "upload")
        self._last = -1.0

    def __call__(self, done: int, total: int) -> None:
        """Report ``done`` of ``total`` bytes uploaded (100 % when ``total`` is 0).

        The first call creates the artifact; a later one updates it when the percentage is at least one point above
        the one it shows, or reaches 100 % (many small steps still move it, one API call per point at most).
        """
        percent = 100.0 if total <= 0 else round(100.0 * done / total, 1)
        if self._id is None:
            self._id = create_progress_artifact(percent, key=self._key, description="Upload progress")  # type: ignore[assignment]
        elif percent - self._last >= 1.0 or (percent >= 100.0 > self._last):
            update_progress_artifact(self._id, percent)
        else:
            return
        self._last = percent  # what the artifact shows
