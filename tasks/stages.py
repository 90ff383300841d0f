"""The six stage tasks of a push. Each is a retried Prefect task that makes its own Hub commit(s).

Order and content (product.md §3): card → ``README.md``; data → ``data/``; images → ``images/``;
processors → ``<name>/`` (one commit each); builder config → ``builder_config.json`` (secrets redacted);
metadata → ``metadata.json`` (paths rewritten, secrets redacted).

Every task takes the same leading arguments: the ``HubTarget``, the checked ``DatasetFolder``, the token (as a
``SecretStr``, never part of a cache key or a log line), the revision to commit to, the commit messages, and a
``content_key`` the flow computes from the stage's content (see ``tasks.stage_cache``).

Example:
    ```python
    from prefect import flow
    from pydantic import SecretStr
    from tasks.dataset_folder import scan_dataset_folder
    from tasks.hub_commit import HubTarget
    from tasks.stages import push_data

    @flow
    def data_only():
        folder = scan_dataset_folder("my-dataset")
        target = HubTarget(repo_id="alice/greetings")
        return push_data(target, folder, SecretStr("hf_..."), revision="main", messages=None, content_key="v1")
    ```
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from huggingface_hub import HfApi, hf_hub_download
from huggingface_hub.errors import EntryNotFoundError
from prefect import Task, task
from prefect.logging import get_run_logger
from pydantic import BaseModel, Field, SecretStr

from tasks import artifacts
from tasks.card import CardOptions, render_card
from tasks.dataset_folder import DatasetFolder, DatasetFolderError, check_processor_name
from tasks.hub_commit import CommitOutcome, CommitRecord, HubTarget, commit_plan
from tasks.hub_metadata import hub_metadata, json_bytes
from tasks.redaction import redact_secrets
from tasks.repo_layout import METADATA
from tasks.retry_policy import retry_transient_only, wait_before_retry
from tasks.stage_cache import stage_cache_key
from tasks.stage_plan import CommitPlan, StageName, plan_content_stage, plan_files_stage


def _retry_delays() -> list[float]:
    # Exponential back-off with a scale tests can shrink (HFDS_STAGE_RETRY_DELAY seconds for the first retry).
    base = float(os.environ.get("HFDS_STAGE_RETRY_DELAY", "5"))
    retries = int(os.environ.get("HFDS_STAGE_RETRIES", "4"))
    return [base * 2**i for i in range(retries)]


STAGE_TASK_OPTIONS: dict[str, Any] = {
    "retries": len(_retry_delays()),
    "retry_delay_seconds": _retry_delays(),
    "retry_jitter_factor": 0.2,
    "retry_condition_fn": retry_transient_only,
    "persist_result": True,
    "cache_key_fn": stage_cache_key,
}


class StageResult(BaseModel):
    """What a stage did: its commits (none if the Hub already had everything), counts and timing."""

    stage: StageName
    outcomes: list[CommitOutcome] = Field(default_factory=list)
    seconds: float = 0.0
    skipped: bool = False
    revision: str = "main"  # where later stages commit (``refs/pr/N`` once a pull request is open)
    card_text: str | None = None

    @property
    def commits(self) -> list[CommitRecord]:
        return [c for o in self.outcomes for c in o.commits]

    def rows(self) -> list[dict[str, Any]]:
        """Rows of the run's stage table: one per commit, or one for a stage without commit."""
        if not self.outcomes:
            return [
                {
                    "stage": self.stage,
                    "commit": "skipped (nothing to push)" if self.skipped else "",
                    "added": 0,
                    "deleted": 0,
                    "unchanged": 0,
                    "bytes sent": 0,
                    "seconds": round(self.seconds, 2),
                    "url": "",
                }
            ]
        rows = []
        for outcome in self.outcomes:
            label = outcome.label
            if not outcome.commits:
                rows.append(
                    {
                        "stage": label,
                        "commit": "unchanged (no commit)",
                        "added": 0,
                        "deleted": 0,
                        "unchanged": outcome.files_unchanged,
                        "bytes sent": 0,
                        "seconds": round(self.seconds, 2),
                        "url": "",
                    }
                )
            for commit in outcome.commits:
                rows.append(
                    {
                        "stage": label,
                        "commit": commit.oid,
                        "added": commit.files_added,
                        "deleted": commit.files_deleted,
                        "unchanged": outcome.files_unchanged,
                        "bytes sent": commit.bytes_sent,
                        "seconds": round(self.seconds, 2),
                        "url": commit.url,
                    }
                )
        return rows


def _run_plans(
    stage: StageName,
    target: HubTarget,
    plans: list[CommitPlan],
    token: SecretStr,
    revision: str,
    *,
    delete_folders: Mapping[str, list[str]] | None = None,
    progress_label: str | None = None,
) -> StageResult:
    """Commit each plan in order, record each commit as an artifact, and return the stage result."""
    logger = get_run_logger()
    started = time.monotonic()
    result = StageResult(stage=stage, revision=revision, skipped=not plans)
    if not plans:
        logger.info("Stage %s: nothing to push, skipped.", stage)
        return result
    api = HfApi()
    for plan in plans:
        progress = artifacts.UploadProgress(target.repo_id, progress_label) if progress_label else None
        try:
            outcome = commit_plan(
                api,
                target,
                plan,
                token.get_secret_value(),
                revision=result.revision,
                delete_folders=(delete_folders or {}).get(plan.label, ()),
                progress=progress,
            )
        except Exception as exc:
            wait_before_retry(exc)
            raise
        for commit in outcome.commits:
            artifacts.record_commit(target.repo_id, plan.label, commit)
            if commit.pr_revision:
                result.revision = commit.pr_revision
        result.outcomes.append(outcome)
        made = ", ".join(c.oid[:8] for c in outcome.commits) or "no commit, unchanged"
        logger.info("Stage %s (%s): %s.", stage, plan.label, made)
    result.seconds = time.monotonic() - started
    return result


@task(name="push-card", **STAGE_TASK_OPTIONS)
def push_card(
    target: HubTarget,
    folder: DatasetFolder,
    token: SecretStr,
    *,
    revision: str,
    messages: dict[str, str] | None,
    content_key: str,
    card: CardOptions,
) -> StageResult:
    """Stage 1: render the dataset card from the data and commit it as ``README.md``.

    The Hub validates the card's YAML (``validate-yaml``) before the commit is accepted.
    """
    rendered = render_card(
        list(folder.data_files),
        {p.name: list(p.files) for p in folder.processors},
        card,
        builder_config=folder.builder_config,
        metadata=folder.metadata,
    )
    plan = plan_content_stage("card", rendered.text.encode("utf-8"), messages)
    result = _run_plans("card", target, [plan], token, revision)
    artifacts.record_card(target.repo_id, rendered.text)
    result.card_text = rendered.text
    return result


@task(name="push-data", **STAGE_TASK_OPTIONS)
def push_data(
    target: HubTarget,
    folder: DatasetFolder,
    token: SecretStr,
    *,
    revision: str,
    messages: dict[str, str] | None,
    content_key: str,
) -> StageResult:
    """Stage 2: ``parquet-files/*.parquet`` → ``data/``; batches no longer produced are deleted in the commit."""
    return _run_plans(
        "data", target, plan_files_stage("data", folder, messages), token, revision, progress_label="data"
    )


@task(name="push-images", **STAGE_TASK_OPTIONS)
def push_images(
    target: HubTarget,
    folder: DatasetFolder,
    token: SecretStr,
    *,
    revision: str,
    messages: dict[str, str] | None,
    content_key: str,
) -> StageResult:
    """Stage 3: ``images/`` as is; skipped when the folder has no images."""
    return _run_plans(
        "images", target, plan_files_stage("images", folder, messages), token, revision, progress_label="images"
    )


def previous_processors(api: HfApi, target: HubTarget, revision: str, token: str) -> list[str]:
    """Processor names of the previous push, read from the ``metadata.json`` on the Hub (uploaded last)."""
    try:
        path = hf_hub_download(
            target.repo_id, METADATA, repo_type=target.repo_type, revision=revision, token=token
        )
    except EntryNotFoundError:
        return []
    try:
        names = json.loads(Path(path).read_text(encoding="utf-8")).get("file_paths", {}).get("processor-files", {})
    except (ValueError, AttributeError):
        return []
    valid = []
    for name in names if isinstance(names, dict) else []:
        try:
            valid.append(check_processor_name(str(name)))
        except DatasetFolderError:
            logging.getLogger(__name__).warning(
                "Ignoring unsafe processor name %r in the Hub's metadata.json", name
            )
    return valid


@task(name="push-processors", **STAGE_TASK_OPTIONS)
def push_processors(
    target: HubTarget,
    folder: DatasetFolder,
    token: SecretStr,
    *,
    revision: str,
    messages: dict[str, str] | None,
    content_key: str,
) -> StageResult:
    """Stage 4: one commit per processor output (``<name>/``); outputs of vanished processors are deleted."""
    plans = plan_files_stage("processors", folder, messages)
    current = {p.name for p in folder.processors}
    vanished = [
        n for n in previous_processors(HfApi(), target, revision, token.get_secret_value()) if n not in current
    ]
    delete_folders: dict[str, list[str]] = {}
    if vanished:
        if not plans:
            plans = [
                CommitPlan(
                    stage="processors",
                    label="processors-removed",
                    message=f"Remove outputs of processors no longer produced: {', '.join(vanished)}",
                    files=(),
                )
            ]
        delete_folders[plans[0].label] = vanished
    return _run_plans("processors", target, plans, token, revision, delete_folders=delete_folders)


@task(name="push-builder-config", **STAGE_TASK_OPTIONS)
def push_builder_config(
    target: HubTarget,
    folder: DatasetFolder,
    token: SecretStr,
    *,
    revision: str,
    messages: dict[str, str] | None,
    content_key: str,
) -> StageResult:
    """Stage 5: ``builder_config.json`` with credentials redacted; skipped when the folder has none."""
    if folder.builder_config is None:
        return _run_plans("builder_config", target, [], token, revision)
    clean = redact_secrets(folder.builder_config, [token.get_secret_value()])
    plan = plan_content_stage("builder_config", json_bytes(clean), messages)
    return _run_plans("builder_config", target, [plan], token, revision)


@task(name="push-metadata", **STAGE_TASK_OPTIONS)
def push_metadata(
    target: HubTarget,
    folder: DatasetFolder,
    token: SecretStr,
    *,
    revision: str,
    messages: dict[str, str] | None,
    content_key: str,
) -> StageResult:
    """Stage 6: ``metadata.json`` with paths in the repo layout, unknown keys kept, credentials redacted."""
    content = hub_metadata(folder, [token.get_secret_value()])
    plan = plan_content_stage("metadata", json_bytes(content), messages)
    return _run_plans("metadata", target, [plan], token, revision)


# Stage name → its task, in push order.
STAGE_TASKS: dict[StageName, Task[..., StageResult]] = {
    "card": push_card,
    "data": push_data,
    "images": push_images,
    "processors": push_processors,
    "builder_config": push_builder_config,
    "metadata": push_metadata,
}
