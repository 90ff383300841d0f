"""Uploading the large files of the files stages ahead of their turn to commit.

The Hub stores a large file by its content (sha256) as soon as it is uploaded, and a commit only references it.
So the push flow uploads the files of the data, images and processors stages in the background, one stage
after the other, while the card renders and the earlier stages commit. Each stage still makes its own commit,
in stage order; it compares with the repo as always and finds the content of its files stored. An upload that
no commit references changes nothing in the repo.

A pre-upload is only a head start. It is not retried, and it does not fail: when a request fails, it logs a
warning and stops, and its stage uploads what is missing itself (retried as every stage is), so an outage does
not cost two rounds of back-off, and the run shows no failed task for it. A Retry of the run takes a finished
pre-upload from Prefect's cache, as it does a finished stage. ``HFDS_UPLOAD_AHEAD=0`` turns pre-uploads off:
each stage then uploads its own files.

Example (the repo must exist: the push flow creates it first with ``tasks.prepare_repo``):
    ```python
    from prefect import flow
    from pydantic import SecretStr
    from tasks.dataset_folder import scan_dataset_folder
    from tasks.hub_commit import HubTarget
    from tasks.preupload import preupload_stage
    from tasks.stages import StageJob, push_data

    @flow
    def data_with_head_start():
        job = StageJob(target=HubTarget(repo_id="alice/greetings"), folder=scan_dataset_folder("my-dataset"),
                       token=SecretStr("hf_..."), revision="main", content_key="v1")
        ahead = preupload_stage.submit(job, "data")  # uploads while this flow does other work
        ...
        done = ahead.result()
        return push_data(job.model_copy(update={"preuploaded": done.error is None}))
    ```
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from prefect import allow_failure, task
from prefect.futures import PrefectFuture
from prefect.logging import get_run_logger
from pydantic import BaseModel

from tasks import artifacts
from tasks.hub_client import hub_api
from tasks.hub_commit import preupload_plan
from tasks.retry_policy import describe_failure
from tasks.stage_cache import stage_cache_key
from tasks.stage_plan import StageName, plan_files_stage
from tasks.stages import StageJob

# Stages whose content does not depend on earlier commits, and whose files may be large.
PREUPLOAD_STAGES: tuple[StageName, ...] = ("data", "images", "processors")
# Stages whose progress artifact the pre-upload reports (the stage reports it when it uploads itself).
_PROGRESS_STAGES: tuple[StageName, ...] = ("data", "images")


class PreuploadResult(BaseModel):
    """What a pre-upload did: the bytes of the stage's files that differ from the repo, its time, and why it
    stopped early (``error``; the stage then uploads what is missing itself)."""

    stage: StageName
    bytes: int = 0
    seconds: float = 0.0
    error: str | None = None


def upload_ahead_enabled() -> bool:
    """Whether the push flow uploads large files ahead of their stage (``HFDS_UPLOAD_AHEAD``, default on)."""
    return os.environ.get("HFDS_UPLOAD_AHEAD", "1") != "0"


@task(name="preupload-files", task_run_name="preupload-{stage}", persist_result=True, cache_key_fn=stage_cache_key)
def preupload_stage(job: StageJob, stage: StageName) -> PreuploadResult:
    """Upload the large files of a files stage (data, images or processors) without committing them.

    Args:
        job: The stage's job (its ``content_key`` makes a Retry of the run take this task from the cache).
        stage: ``data``, ``images`` or ``processors``.

    Returns:
        The stage, the bytes of its files that differ from the repo (uploaded now, or found stored already), the
        seconds it took, and the failure that stopped it, if one did.
    """
    started = time.monotonic()
    api, token = hub_api(), job.token.get_secret_value()
    done = PreuploadResult(stage=stage)
    try:
        for plan in plan_files_stage(stage, job.folder, job.messages):
            progress = artifacts.UploadProgress(job.target.repo_id, stage) if stage in _PROGRESS_STAGES else None
            done.bytes += preupload_plan(api, job.target, plan, token, revision=job.revision, progress=progress)
    except Exception as exc:  # only a head start: the stage uploads what is missing, with its retries
        done.error = describe_failure(exc)
        get_run_logger().warning(
            "Uploading the %s files ahead stopped (%s); the stage uploads them itself.", stage, done.error
        )
    done.seconds = time.monotonic() - started
    return done


def start_preuploads(
    stages: list[StageName], job_of: Callable[[StageName], StageJob]
) -> dict[StageName, PrefectFuture[PreuploadResult]]:
    """Submit the pre-uploads of ``stages`` that have files, chained so that one stage uploads at a time (the
    first to commit first). Empty when ``HFDS_UPLOAD_AHEAD=0``. Call from a flow."""
    futures: dict[StageName, PrefectFuture[PreuploadResult]] = {}
    if not upload_ahead_enabled():
        return futures
    previous: PrefectFuture[PreuploadResult] | None = None
    for stage in (s for s in stages if s in PREUPLOAD_STAGES):
        job = job_of(stage)
        if not plan_files_stage(stage, job.folder, job.messages):
            continue
        after = [] if previous is None else [allow_failure(previous)]
        previous = futures[stage] = preupload_stage.submit(job, stage, return_state=False, wait_for=after)
    return futures


def wait_for_preupload(future: PrefectFuture[PreuploadResult] | None, stage: StageName) -> PreuploadResult | None:
    """Wait for a stage's pre-upload; its result, or None when there was none or its task run did not complete
    (crashed or cancelled). Either way a stage uploads whatever is still missing itself."""
    if future is None:
        return None
    future.wait()
    if future.state.is_completed():
        return future.result()
    get_run_logger().warning("The pre-upload of stage %s ended %s.", stage, future.state.name)
    return None
