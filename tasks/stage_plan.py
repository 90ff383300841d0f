"""The six push stages and what each one commits (product.md §3), as plain data: no network, no Prefect.

A stage is one or more commits; each commit has the files it adds and the repo folder it owns (files there
that the push does not have are deleted in the same commit). The processors stage makes one commit per
processor.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, model_validator

from tasks.dataset_folder import DatasetFolder
from tasks.repo_layout import BUILDER_CONFIG, DATA_FOLDER, IMAGES_FOLDER, METADATA, README, repo_path
from tasks.validation import InvalidParameterError

StageName = Literal["card", "data", "images", "processors", "builder_config", "metadata"]
STAGES: tuple[StageName, ...] = ("card", "data", "images", "processors", "builder_config", "metadata")

DEFAULT_MESSAGES: dict[StageName, str] = {
    "card": "Upload dataset card",
    "data": "Upload main dataset files",
    "images": "Upload images",
    "processors": "Upload {name} processor outputs",
    "builder_config": "Upload builder_config.json",
    "metadata": "Upload metadata.json",
}
# Titles of the commits that only delete what an earlier push left (the folder has none of it any more).
REMOVAL_MESSAGES: dict[StageName, str] = {
    "images": "Remove images no longer in the dataset",
    "builder_config": "Remove builder_config.json, no longer in the dataset",
}


class PlannedFile(BaseModel):
    """One file of a commit: a local file or generated content, and its path in the repo."""

    model_config = ConfigDict(frozen=True)

    path_in_repo: str
    local_path: Path | None = None
    content: bytes | None = None

    @model_validator(mode="after")
    def _one_source(self) -> PlannedFile:
        if (self.local_path is None) == (self.content is None):
            raise ValueError("a planned file has either a local path or content")
        return self

    @property
    def size(self) -> int:
        """Size in bytes: of ``content``, or of the local file as it is on disk now."""
        return len(self.content) if self.content is not None else self.local_path.stat().st_size  # type: ignore[union-attr]


class CommitPlan(BaseModel):
    """What one commit of a stage does.

    Attributes:
        stage: The stage this commit belongs to.
        label: Stable, readable id (``data``, ``processors-conversations``), used in artifact keys.
        message: Commit title.
        files: Files to add or update.
        scope: Repo folder owned by this commit: remote files under it that are not in ``files`` are deleted.
            None for single-file stages (only the listed paths are touched).
        removes: Repo files to delete when the Hub has them: a single file the folder no longer has.
    """

    model_config = ConfigDict(frozen=True)

    stage: StageName
    label: str
    message: str
    files: tuple[PlannedFile, ...]
    scope: str | None = None
    removes: tuple[str, ...] = ()

    @property
    def size(self) -> int:
        """Total size in bytes of ``files`` (deletions count nothing)."""
        return sum(f.size for f in self.files)


def commit_message(stage: StageName, messages: Mapping[str, str] | None, name: str = "") -> str:
    """The commit title of a stage: the user's (``commit_messages[stage]``) or the default; ``{name}`` filled."""
    # Stripped: the Hub stores titles trimmed, and a lost answer is recognised by the title
    template = ((messages or {}).get(stage) or "").strip() or DEFAULT_MESSAGES[stage]
    return template.replace("{name}", name)


def check_commit_messages(messages: Mapping[str, str] | None) -> None:
    """Check the user's commit titles before any request: a mistyped stage would silently keep the default title.

    Raises:
        InvalidParameterError: a title for no stage, or one that is not one non-empty line once ``{name}`` is
            filled (with the processor's name; with nothing for the other stages).
    """
    for stage, title in (messages or {}).items():
        if stage not in STAGES:
            raise InvalidParameterError(
                f"commit_messages has a title for {stage!r}, which is not a stage; the stages are "
                f"{', '.join(STAGES)}."
            )
        filled = title.replace("{name}", "x" if stage == "processors" else "") if isinstance(title, str) else ""
        if not filled.strip() or "\n" in filled or "\r" in filled:
            raise InvalidParameterError(
                f"commit_messages[{stage!r}] = {title!r}: a commit title is one non-empty line "
                f"(default: {DEFAULT_MESSAGES[stage]!r})."
            )


def plan_files_stage(
    stage: StageName, folder: DatasetFolder, messages: Mapping[str, str] | None = None
) -> list[CommitPlan]:
    """Commits of the stages whose content is files of the folder: data, images, processors.

    An empty list means the folder has nothing for the stage (no images, no processors).
    """

    def files_of(paths: tuple[Path, ...]) -> tuple[PlannedFile, ...]:
        return tuple(
            PlannedFile(path_in_repo=repo_path(folder.relative(p)) or folder.relative(p), local_path=p)
            for p in paths
        )

    if stage in ("data", "images"):
        paths, scope = (folder.data_files, DATA_FOLDER) if stage == "data" else (folder.images, IMAGES_FOLDER)
        if stage == "images" and not paths:
            return []
        return [
            CommitPlan(
                stage=stage,
                label=stage,
                message=commit_message(stage, messages),
                files=files_of(paths),
                scope=scope,
            )
        ]
    if stage == "processors":
        return [
            CommitPlan(
                stage=stage,
                label=f"processors-{proc.name}",
                message=commit_message(stage, messages, proc.name),
                files=files_of(proc.files),
                scope=proc.name,
            )
            for proc in folder.processors
        ]
    raise ValueError(f"stage {stage!r} is not made of folder files")


def planned_repo_paths(folder: DatasetFolder) -> list[str]:
    """The repo path of every file a push of all six stages uploads from ``folder``."""
    generated = [README, METADATA, *([BUILDER_CONFIG] if folder.builder_config is not None else [])]
    stages: tuple[StageName, ...] = ("data", "images", "processors")
    return generated + [f.path_in_repo for s in stages for plan in plan_files_stage(s, folder) for f in plan.files]


def plan_removal(stage: StageName) -> CommitPlan:
    """The commit of a stage the folder has nothing for (no images, no builder config): it deletes what an earlier
    push left on the Hub, and is made only when there is something to delete (re-push updates, never pollutes)."""
    if stage == "images":
        return CommitPlan(stage=stage, label=stage, message=REMOVAL_MESSAGES[stage], files=(), scope=IMAGES_FOLDER)
    if stage == "builder_config":
        return CommitPlan(
            stage=stage,
            label="builder-config",
            message=REMOVAL_MESSAGES[stage],
            files=(),
            removes=(BUILDER_CONFIG,),
        )
    raise ValueError(f"stage {stage!r} is never empty or removes per processor")


def plan_content_stage(stage: StageName, content: bytes, messages: Mapping[str, str] | None = None) -> CommitPlan:
    """The commit of a single generated file: the card, the redacted builder config, the rewritten metadata."""
    path = {"card": README, "builder_config": BUILDER_CONFIG, "metadata": METADATA}[stage]
    return CommitPlan(
        stage=stage,
        label=stage.replace("_", "-"),
        message=commit_message(stage, messages),
        files=(PlannedFile(path_in_repo=path, content=content),),
    )


def parts(n_files: int, max_files_per_commit: int) -> int:
    """How many ``(part i of n)`` commits a commit of ``n_files`` changed files becomes."""
    return max(1, math.ceil(n_files / max_files_per_commit))
