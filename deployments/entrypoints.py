"""The flows that the deployments run: thin entry points that take one pydantic parameter model.

Each flow unpacks its model and runs the project's flow *inline* (``push_dataset.fn``, ...), so the stage tasks
are task runs of the deployment's own flow run. That is what makes the UI's Retry resume a push: a retried run
keeps its id, the stage cache keys include the flow run id (``tasks.stage_cache``), and the stages that had
committed come back ``Cached``. (A subflow would resume too, since the cache keys use the root run, but its
artifacts would sit on the subflow's page.) Inline, every stage's artifacts are on the deployment run's page.

The token is never a parameter: it comes from ``HF_TOKEN`` in the environment of the process that runs the flow
(the serve process, or the worker), or from a saved ``HuggingFaceCredentials`` block named in the parameters.
"""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime
from typing import Any, Literal, cast
from uuid import UUID

from huggingface_hub.utils import disable_progress_bars
from prefect import flow, get_client, get_run_logger
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterId,
    FlowRunFilter,
    FlowRunFilterExpectedStartTime,
    FlowRunFilterState,
    FlowRunFilterStateType,
    FlowRunFilterTags,
)
from prefect.client.schemas.objects import State, StateType
from prefect.client.schemas.sorting import FlowRunSort
from prefect.runtime import flow_run
from prefect.states import Cancelled

from deployments.parameters import CardParameters, GenerateAndPushParameters, PushParameters, VerifyParameters
from flows.generate_and_push import generate_and_push
from flows.push import push_dataset
from flows.push_result import PushResult
from flows.verify import VerificationResult, verify_pushed_dataset
from tasks.credentials import HuggingFaceCredentials, load_credentials

# A deployment run writes to a log (the serve process's or the worker's output), not a terminal: huggingface_hub's
# progress bars would fill it with cursor codes, about 200 lines per push. The stages report their progress as an
# artifact instead. HF_HUB_DISABLE_PROGRESS_BARS=0 in the environment keeps the bars.
if "HF_HUB_DISABLE_PROGRESS_BARS" not in os.environ:
    disable_progress_bars()


def _credentials(block_name: str | None) -> HuggingFaceCredentials | None:
    """The saved block ``credentials_block`` names, or None without a name (see ``load_credentials``)."""
    return load_credentials(block_name) if block_name else None


def _run_name(prefix: str, field: str) -> Any:
    """A ``flow_run_name`` callable: ``<prefix>-<repo>`` from the run's ``params`` (a model or its dict)."""

    def name() -> str:
        params: Any = flow_run.parameters.get("params")
        value = params.get(field) if isinstance(params, dict) else getattr(params, field, None)
        return f"{prefix}-{str(value).replace('/', '-')}" if value else prefix

    return name


def _push_options(params: CardParameters) -> dict[str, Any]:
    """The push options both push deployments take from their parameters (``push_dataset``'s keywords)."""
    return {
        "private": params.private,
        "tags": list(params.tags),
        "credentials": _credentials(params.credentials_block),
        "license": params.license,
        "language": params.language,
        "task_categories": params.task_categories,
        "pretty_name": params.pretty_name,
        "revision": params.revision,
        "create_pr": params.create_pr,
        "stages": list(params.stages) if params.stages else None,
        "max_files_per_commit": params.max_files_per_commit,
    }


@flow(name="push-folder", flow_run_name=_run_name("push", "repo_id"), log_prints=True)
def push_folder(params: PushParameters) -> PushResult:
    """Push a dataset folder that is already on disk to a Hub dataset repo, stage by stage.

    A run that failed at a stage can be retried from the UI: the stages that had committed are ``Cached``, the
    others run again.
    """
    return push_dataset.fn(
        params.dataset_dir,
        params.repo_id,
        params.description,
        **_push_options(params),
    )


def run_seed(seed: int | Literal["per-run"], run_id: str | None) -> int:
    """The generation seed: ``seed`` itself, or for ``"per-run"`` one drawn from the flow run's id, which a Retry
    keeps (so the retried run resumes its batches) and a new run does not (so each scheduled run makes new data).
    """
    if seed != "per-run":
        return seed
    if not run_id:
        raise ValueError('seed "per-run" needs a flow run: call the deployment, or pass an integer seed.')
    # A hash of the whole id: Prefect's run ids are UUIDv7, whose leading digits are a timestamp in milliseconds,
    # the same for the runs the scheduler creates in one pass.
    return int.from_bytes(hashlib.sha256(str(UUID(run_id)).encode()).digest()[:4], "big")


# A later scheduled run in these states may still publish the night's dataset, or has.
_MAY_PUBLISH = [StateType.SCHEDULED, StateType.PENDING, StateType.RUNNING, StateType.PAUSED, StateType.COMPLETED]


def later_scheduled_run() -> Any | None:
    """A later run of this scheduled run's schedule that is already due, or None.

    Only for a first attempt of a run the schedule created (tag ``auto-scheduled``): the other runs of its
    deployment with the same parameters, created by the schedule, due after it and by now. Each publishes a whole
    dataset over the last one, so of the runs that a machine switched off for nights (or a run that outlasted the
    interval) leaves due at once, only the latest is worth generating; measured before this check, three missed
    runs all ran back to back, and not in order, so an earlier night's dataset was the one left published.
    A later run only counts while it may still publish (scheduled, pending, running, paused) or has (completed):
    one that was cancelled, failed or crashed leaves the night to this run. When the runs cannot be read, the run
    goes ahead (the check only spares work).
    """
    if flow_run.id is None:
        return None
    try:
        return _later_scheduled_run(UUID(flow_run.id))
    except Exception as exc:
        get_run_logger().warning("Could not look for later scheduled runs (%s); generating anyway.", exc)
        return None


def _later_scheduled_run(run_id: UUID) -> Any | None:
    """:func:`later_scheduled_run` for the flow run ``run_id``."""
    with get_client(sync_client=True) as client:
        this = client.read_flow_run(run_id)
        if this.deployment_id is None or "auto-scheduled" not in this.tags or this.run_count > 1:
            return None
        if this.expected_start_time is None:
            return None
        due = client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[this.deployment_id])),
            flow_run_filter=FlowRunFilter(
                expected_start_time=FlowRunFilterExpectedStartTime(
                    after_=this.expected_start_time,
                    before_=cast(Any, datetime.now(UTC)),  # pydantic makes it Prefect's DateTime
                ),
                tags=FlowRunFilterTags(all_=["auto-scheduled"]),
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=_MAY_PUBLISH)),
            ),
            sort=FlowRunSort.EXPECTED_START_TIME_DESC,
            limit=200,
        )
    # Latest first (the sort): the first later run with the same parameters is the one that publishes.
    return next(
        (
            run
            for run in due
            if run.id != this.id
            and run.expected_start_time is not None
            and run.expected_start_time > this.expected_start_time
            and run.parameters == this.parameters
        ),
        None,
    )


@flow(name="generate-then-push", flow_run_name=_run_name("generate-push", "repo"), log_prints=True)
def generate_then_push(params: GenerateAndPushParameters) -> PushResult | State[Any]:
    """Generate ``records`` records from ``config`` and push them to ``repo`` (the scheduled deployment's flow).

    Generation and push run as subflows of this run (see ``flows.generate_and_push``). A retried run resumes
    generation from its complete batch files, and its push takes the stages that committed from the cache
    (``Cached``) and runs the others. A scheduled run that finds a later run of its schedule already due ends
    ``Cancelled`` at once (see ``later_scheduled_run``): only the latest of the runs due together generates.
    """
    later = later_scheduled_run()
    if later is not None:
        message = (
            f"Skipped: the later scheduled run {later.id} (due {later.expected_start_time:%Y-%m-%d %H:%M %Z}) "
            "is due too, and it publishes the dataset; nothing was generated or pushed."
        )
        get_run_logger().warning(message)
        return Cancelled(message=message)
    seed = run_seed(params.seed, flow_run.id)
    if params.seed == "per-run":
        get_run_logger().info("Generating with seed %d, drawn from this flow run's id (a Retry keeps it).", seed)
    return generate_and_push.fn(
        params.config,
        params.repo,
        params.description,
        num_records=params.records,
        batch_size=params.batch_size,
        seed=seed,
        checkpoint_branch=params.checkpoint_branch,
        checkpoint_interval_seconds=params.checkpoint_interval_seconds,
        task_runner=params.task_runner,
        dask_address=params.dask_address,
        **_push_options(params),
    )


@flow(name="verify-after-push", flow_run_name=_run_name("verify", "repo_id"), log_prints=True)
def verify_after_push(params: VerifyParameters) -> VerificationResult:
    """Load a pushed dataset back from the Hub and check it (the chained deployment's flow)."""
    return verify_pushed_dataset.fn(
        params.repo_id,
        params.revision,
        params.expected_records,
        credentials=_credentials(params.credentials_block),
    )


__all__ = [
    "GenerateAndPushParameters",
    "PushParameters",
    "VerifyParameters",
    "generate_then_push",
    "push_folder",
    "verify_after_push",
]
