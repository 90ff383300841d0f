"""The six stage tasks of a push. Each is a retried Prefect task that makes its own Hub commit(s).

Order and content (product.md §3): card → ``README.md``; data → ``data/``; images → ``images/``;
processors → ``<name>/`` (one commit each); builder config → ``builder_config.json`` (secrets redacted);
metadata → ``metadata.json`` (paths rewritten, secrets redacted).

Every task takes a ``StageJob``: the ``HubTarget``, the checked ``DatasetFolder``, the token (a ``SecretStr``,
never part of a cache key or a log line), the revision to commit to, the commit messages, and a ``content_key``
the flow computes from the stage's content (see ``tasks.stage_cache``).

Example (the repo must exist: the push flow creates it first with ``tasks.prepare_repo``):
    ```python
    from prefect import flow
    from pydantic import SecretStr
    from tasks.dataset_folder import scan_dataset_folder
    from tasks.hub_commit import HubTarget
    from tasks.stages import StageJob, push_data

    @flow
    def data_only():
        job = StageJob(target=HubTarget(repo_id="alice/greetings"), folder=scan_dataset_folder("my-dataset"),
                       token=SecretStr("hf_..."), revision="main", content_key="v1")
        return push_data(job)
    ```
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Mapping
from typing import Any

from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RemoteEntryNotFoundError
from prefect import Task, task
from prefect.logging import get_run_logger
from pydantic import BaseModel, Field, SecretStr

from tasks import artifacts
from tasks.card.options import CardOptions
from tasks.card_cache import cached_card
from tasks.dataset_folder import DatasetFolder, DatasetFolderError, check_processor_name
from tasks.hub_client import downloaded, hub_api
from tasks.hub_commit import (
    CommitOutcome,
    CommitRecord,
    HubTarget,
    branch_head,
    commit_plan,
    opens_pr,
    parquet_files_at,
)
from tasks.hub_metadata import hub_metadata, json_bytes
from tasks.opened_pull_request import opened_pull_request, remember_pull_request
from tasks.push_run_key import root_run
from tasks.redaction import redact_secrets
from tasks.repo_layout import DATA_FOLDER, METADATA
from tasks.retry_policy import describe_failure, retry_options
from tasks.stage_cache import stage_cache_key
from tasks.stage_plan import CommitPlan, StageName, plan_content_stage, plan_files_stage, plan_removal

# Every stage commit names the flow run that made it (a git-style trailer in the commit's description, the outermost
# run: kept by a Retry), so the Hub's history leads back to the run.
RUN_TRAILER = "Prefect-Flow-Run"
STAGE_TASK_OPTIONS: dict[str, Any] = {**retry_options(), "persist_result": True, "cache_key_fn": stage_cache_key}


class StageError(RuntimeError):
    """A stage failed for a reason found in the exception it wraps (named in the message)."""


class StageJob(BaseModel):
    """What every stage task receives: where to push, what from, with which token.

    Attributes:
        target: Repo, branch, PR mode, split limit.
        folder: The checked dataset folder.
        token: The Hub token, as a secret: never part of a cache key, a log line or a parameter shown in the UI.
        revision: Where this stage commits (``refs/pr/N`` once an earlier stage opened the pull request).
        messages: Commit titles by stage, overriding the defaults.
        content_key: Fingerprint of the content this stage pushes (see ``tasks.stage_cache``).
        run_key: Which push this is (``tasks.push_run_key``): a Retry keeps it, also when the push is a subflow
            (Prefect gives a retried subflow a new run id, but its root and its call in the parent stay). Its
            root, the outermost flow run, is what each commit's ``Prefect-Flow-Run`` trailer names.
        preuploaded: ``tasks.preupload`` uploaded this stage's large files ahead, and reported their progress.
        head: Where the previous stage left the branch (its last commit): spares the stage reading it. Only a
            hint, never part of the cache key: a stage that finds the branch elsewhere reads it and compares again.
    """

    target: HubTarget
    folder: DatasetFolder
    token: SecretStr
    revision: str
    messages: dict[str, str] | None = None
    content_key: str
    run_key: str = ""
    preuploaded: bool = False
    head: str | None = None


THIS_ATTEMPT, EARLIER_ATTEMPT = "this", "earlier (Cached)"


def table_row(
    stage: str,
    commit: str,
    *,
    unchanged: int = 0,
    made: CommitRecord | None = None,
    seconds: float | None = 0.0,
    attempt: str = THIS_ATTEMPT,
) -> dict[str, Any]:
    """One row of a run's stage table (its table artifact): a commit made, or a stage's state in ``commit``.

    ``seconds`` is the whole stage's time, on its first row; ``None`` (an empty cell) on its other rows, so that
    the column adds up to the push's time. ``attempt`` says which attempt of the flow run did the work: a Retry
    takes the stages that had committed from the cache, and their bytes and seconds are the earlier attempt's.
    """
    return {
        "stage": stage,
        "commit": commit,
        "added": made.files_added if made else 0,
        "deleted": made.files_deleted if made else 0,
        "unchanged": unchanged,
        "bytes sent": made.bytes_sent if made else 0,
        "seconds": "" if seconds is None else round(seconds, 2),
        "attempt": attempt,
        "url": made.url if made else "",
    }


class StageResult(BaseModel):
    """What a stage did: its commits (none if the Hub already had everything), counts and timing."""

    stage: StageName
    outcomes: list[CommitOutcome] = Field(default_factory=list)
    seconds: float = 0.0
    skipped: bool = False
    revision: str = "main"  # where later stages commit (``refs/pr/N`` once a pull request is open)
    head: str = ""  # the branch head the stage left (its last commit, or the head it found unchanged)
    cached: bool = False  # taken from the cache by a Retry: an earlier attempt of the run made its commits

    @property
    def commits(self) -> list[CommitRecord]:
        """Every commit the stage made, over all its commit plans, in order."""
        return [c for o in self.outcomes for c in o.commits]

    def rows(self) -> list[dict[str, Any]]:
        """Rows of the run's stage table: one per commit, or one for a stage or commit plan without commit; the
        stage's seconds on its first row only."""
        attempt = EARLIER_ATTEMPT if self.cached else THIS_ATTEMPT
        if not self.outcomes or self.skipped:
            state = "skipped (nothing to push)" if self.skipped else ""
            rows = [table_row(self.stage, state, seconds=None, attempt=attempt)]
        else:
            rows = []
            for outcome in self.outcomes:
                unchanged = outcome.files_unchanged
                if not outcome.commits:
                    rows.append(
                        table_row(
                            outcome.label,
                            "unchanged (no commit)",
                            unchanged=unchanged,
                            seconds=None,
                            attempt=attempt,
                        )
                    )
                rows += [
                    table_row(outcome.label, c.oid, unchanged=unchanged, made=c, seconds=None, attempt=attempt)
                    for c in outcome.commits
                ]
        rows[0]["seconds"] = round(self.seconds, 2)
        return rows


def _run_plans(
    stage: StageName,
    job: StageJob,
    plans: list[CommitPlan],
    *,
    delete_folders: Mapping[str, list[str]] | None = None,
    progress_label: str | None = None,
    head: str | None = None,
) -> StageResult:
    """Commit each plan in order, record each commit as an artifact, and return the stage result."""
    logger = get_run_logger()
    started = time.monotonic()
    target, token = job.target, job.token
    result = StageResult(stage=stage, revision=job.revision, skipped=not plans)
    if not plans:
        logger.info("Stage %s: nothing to push, skipped.", stage)
        return result
    note_pull_request = None
    if job.run_key:
        note_pull_request = functools.partial(remember_pull_request, job.run_key, target)
        if opens_pr(target, job.revision):
            # This stage may have opened the run's pull request before it failed, or before its content changed.
            result.revision = opened_pull_request(job.run_key, target) or job.revision
    api = hub_api()
    hint = job.head
    # Plans that only delete leftovers: the folder has nothing for this stage; with none found, it is skipped.
    removal_only = all(not p.files for p in plans)
    for plan in plans:
        progress = None
        if progress_label and plan.files and not job.preuploaded:
            progress = artifacts.UploadProgress(target.repo_id, progress_label)
        try:
            outcome = commit_plan(
                api,
                target,
                plan,
                token.get_secret_value(),
                revision=result.revision,
                head=head,
                head_hint=hint,
                delete_folders=(delete_folders or {}).get(plan.label, ()),
                progress=progress,
                description=f"{RUN_TRAILER}: {root_run(job.run_key)}" if job.run_key else "",
                on_pull_request=note_pull_request,
            )
        except Exception as exc:
            if isinstance(exc, HfHubHTTPError) or exc.__cause__ is None:  # its own message says it all
                raise
            # e.g. huggingface_hub's RuntimeError("Error while uploading ...") around a 503: say what the Hub said.
            raise StageError(f"{plan.label}: {describe_failure(exc)}") from exc
        for commit in outcome.commits:
            artifacts.record_commit(target.repo_id, plan.label, commit)
            if commit.pr_revision:
                result.revision = commit.pr_revision
        result.outcomes.append(outcome)
        result.head = hint = outcome.head
        made = ", ".join(c.oid[:8] for c in outcome.commits) or (
            "nothing to push or remove, skipped" if removal_only else "no commit, unchanged"
        )
        logger.info("Stage %s (%s): %s.", stage, plan.label, made)
    result.seconds = time.monotonic() - started
    result.skipped = removal_only and not result.commits
    return result


def render_folder_card(folder: DatasetFolder, card: CardOptions) -> str:
    """The dataset card of a folder: statistics from its parquet files, types from its builder config."""
    from tasks.card.render import render_card  # imported when a card is rendered, not when it is cached

    return render_card(
        list(folder.data_files),
        {p.name: list(p.files) for p in folder.processors},
        card,
        builder_config=folder.builder_config,
        metadata=folder.metadata,
    ).text


@task(name="push-card", **STAGE_TASK_OPTIONS)
def push_card(job: StageJob, card: CardOptions) -> StageResult:
    """Stage 1: render the dataset card from the data and commit it as ``README.md``.

    The Hub validates the card's YAML (``validate-yaml``) before the commit is accepted.
    """
    text = cached_card(job.content_key, lambda: render_folder_card(job.folder, card))  # stats once per content
    result = _run_plans("card", job, [plan_content_stage("card", text.encode("utf-8"), job.messages)])
    artifacts.record_card(job.target.repo_id, text)
    return result


@task(name="push-data", **STAGE_TASK_OPTIONS)
def push_data(job: StageJob) -> StageResult:
    """Stage 2: ``parquet-files/*.parquet`` → ``data/``; batches no longer produced are deleted in the commit."""
    return _run_plans("data", job, plan_files_stage("data", job.folder, job.messages), progress_label="data")


@task(name="push-images", **STAGE_TASK_OPTIONS)
def push_images(job: StageJob) -> StageResult:
    """Stage 3: ``images/`` as is; with no images in the folder, only deletes those an earlier push left."""
    plans = plan_files_stage("images", job.folder, job.messages) or [plan_removal("images")]
    return _run_plans("images", job, plans, progress_label="images")


def previous_processors(api: HfApi, target: HubTarget, revision: str, token: str) -> list[str]:
    """Processor names of the previous push, read from the ``metadata.json`` on the Hub (uploaded last)."""
    try:
        with downloaded(
            api, target.repo_id, METADATA, repo_type=target.repo_type, revision=revision, token=token
        ) as path:
            text = path.read_text(encoding="utf-8")
    except RemoteEntryNotFoundError:
        return []  # no metadata.json on the Hub: no earlier push to compare with
    except LocalEntryNotFoundError as exc:  # the Hub could not be reached: an outage (retried), not "no push"
        raise StageError(f"reading the previous push's metadata.json: {describe_failure(exc)}") from exc
    try:
        names = json.loads(text).get("file_paths", {}).get("processor-files", {})
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
def push_processors(job: StageJob) -> StageResult:
    """Stage 4: one commit per processor output (``<name>/``); outputs of vanished processors are deleted."""
    plans = plan_files_stage("processors", job.folder, job.messages)
    current = {p.name for p in job.folder.processors}
    previous = previous_processors(hub_api(), job.target, job.revision, job.token.get_secret_value())
    vanished = [name for name in previous if name not in current]
    delete_folders: dict[str, list[str]] = {}
    if vanished:
        if not plans:
            removal = f"Remove outputs of processors no longer produced: {', '.join(vanished)}"
            plans = [CommitPlan(stage="processors", label="processors-removed", message=removal, files=())]
        delete_folders[plans[0].label] = vanished
    return _run_plans("processors", job, plans, delete_folders=delete_folders)


@task(name="push-builder-config", **STAGE_TASK_OPTIONS)
def push_builder_config(job: StageJob) -> StageResult:
    """Stage 5: ``builder_config.json`` with credentials redacted; with none in the folder, only deletes the one an
    earlier push left (it would describe another generation)."""
    if job.folder.builder_config is None:
        return _run_plans("builder_config", job, [plan_removal("builder_config")])
    clean = redact_secrets(job.folder.builder_config, [job.token.get_secret_value()])
    return _run_plans(
        "builder_config", job, [plan_content_stage("builder_config", json_bytes(clean), job.messages)]
    )


@task(name="push-metadata", **STAGE_TASK_OPTIONS)
def push_metadata(job: StageJob) -> StageResult:
    """Stage 6: ``metadata.json`` with paths in the repo layout, unknown keys kept, credentials redacted."""
    api, token = hub_api(), job.token.get_secret_value()
    target = job.target
    # List what the repo holds at the head this commit will be made on (412 if it moves): when another push
    # raced this one, metadata.json still lists exactly the files that are there. So this stage reads the head
    # itself rather than take the previous stage's (``job.head``): its content depends on it.
    head = branch_head(api, target, job.revision, token)
    on_hub = {
        folder: parquet_files_at(api, target, head, folder, token)
        for folder in (DATA_FOLDER, *(p.name for p in job.folder.processors))
    }
    content = hub_metadata(job.folder, [token], repo_files=on_hub)
    plan = plan_content_stage("metadata", json_bytes(content), job.messages)
    return _run_plans("metadata", job, [plan], head=head)


# Stage name → its task, in push order.
STAGE_TASKS: dict[StageName, Task[..., StageResult]] = {
    "card": push_card,
    "data": push_data,
    "images": push_images,
    "processors": push_processors,
    "builder_config": push_builder_config,
    "metadata": push_metadata,
}
