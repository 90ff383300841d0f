"""A Retry never publishes an older run's data over a newer run's.

A Retry resumes a run: the stages that had committed come back ``Cached``, trusted to be what the branch holds,
and the others run. When another flow run has committed to the branch since the retried run first started
(tonight's scheduled run, after last night's failed one), that trust is wrong: resuming published the older
run's remaining stages (its processors, its ``metadata.json``) over the newer dataset, whose card and data
stayed, so the repo mixed two generations. So a Retry first reads the branch's history back to when the run
first started, and fails at once, before anything is generated or pushed, when a commit there names another flow
run (the ``Prefect-Flow-Run`` trailer of every stage commit). Commits without a trailer (made by hand, or by
another tool) do not stop it. A new run is never refused: it checks every stage against the Hub.

A Retry is any flow run of the push's chain (the push, and the flows it was called from) on its second or later
attempt; the time it first started is Prefect's ``start_time``, which a Retry keeps.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from huggingface_hub import HfApi
from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError
from prefect import get_client, task
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext
from pydantic import SecretStr

from tasks.hub_client import hub_api
from tasks.hub_commit import HubTarget, history
from tasks.retry_policy import retry_options
from tasks.stages import RUN_TRAILER

_TRAILER = re.compile(rf"^{RUN_TRAILER}: *([0-9a-fA-F-]{{36}}) *$", re.MULTILINE)


class SupersededRetryError(RuntimeError):
    """A Retry that would publish its run's data over a newer run's commits (see the module docstring)."""


@dataclass(frozen=True)
class RetryOrigin:
    """A retried run: the outermost flow run (what the trailers name) and when the retried run first started."""

    root_run: str
    first_started: datetime
    retried_run: str


def retry_origin() -> RetryOrigin | None:
    """The running flow's Retry, or None on a first attempt (or outside a flow run). Reads the runs from the API:
    the run's own ``run_count`` in its context may predate the attempt."""
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return None
    retried: list[Any] = []
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(context.flow_run.id)
        while True:
            if run.run_count > 1 and run.start_time is not None:
                retried.append(run)
            if run.parent_task_run_id is None:
                break
            call = client.read_task_run(run.parent_task_run_id)
            if call.flow_run_id is None:
                break
            run = client.read_flow_run(call.flow_run_id)
    if not retried:
        return None
    first = min(retried, key=lambda r: r.start_time)
    return RetryOrigin(root_run=str(run.id), first_started=first.start_time, retried_run=str(first.id))


def run_named_by(message: str | None) -> str | None:
    """The flow run id a commit description's ``Prefect-Flow-Run`` trailer names, or None."""
    found = _TRAILER.search(message or "")
    return found.group(1).lower() if found else None


def newer_run_commit(api: HfApi, target: HubTarget, token: str, origin: RetryOrigin) -> dict[str, Any] | None:
    """The newest commit of ``target.revision`` made by another flow run since ``origin`` first started, or None.

    The history is read newest first, and only until this run's own latest commit or the first commit older than
    the run's start: everything below was there before the run (or raced its first attempt, as any push may).
    """
    try:
        for commit in history(api, target.repo_type, target.repo_id, target.revision, token):
            named = run_named_by(commit.get("message"))
            if named == origin.root_run.lower():
                return None
            if datetime.fromisoformat(str(commit["date"]).replace("Z", "+00:00")) < origin.first_started:
                return None
            if named is not None:
                return commit
    except (RepositoryNotFoundError, RevisionNotFoundError):
        return None  # no repo or no branch yet: nothing published over
    return None


@task(name="check-retry", cache_policy=NO_CACHE, **retry_options())  # checked at every attempt
def check_retry_not_superseded(target: HubTarget, token: SecretStr, origin: RetryOrigin) -> None:
    """Fail a Retry whose branch another flow run has committed to since the run first started.

    Raises:
        SupersededRetryError: naming that run and its commit (not retried: nothing a retry can change).
    """
    if target.create_pr:
        return  # the run commits into its own pull request; the branch is not touched
    commit = newer_run_commit(hub_api(), target, token.get_secret_value(), origin)
    if commit is None:
        return
    started = origin.first_started.strftime("%Y-%m-%d %H:%M:%S %Z").strip()
    raise SupersededRetryError(
        f"Not resumed: this is a Retry of flow run {origin.retried_run}, and since it first started ({started}) "
        f"flow run {run_named_by(commit.get('message'))} committed to {target.repo_id}@{target.revision} "
        f"({str(commit['id'])[:8]} '{commit.get('title', '')}', {commit['date']}). Resuming would publish what "
        "is left of this run's older dataset over the newer one, mixing the two. Nothing was generated or pushed. "
        "To push these parameters again, start a new run: it compares every stage with the Hub."
    )


def refuse_superseded_retry(target: HubTarget, token: SecretStr) -> None:
    """On a Retry, run :func:`check_retry_not_superseded`; on a first attempt, do nothing (no task, no request)."""
    origin = retry_origin()
    if origin is not None:
        check_retry_not_superseded(target, token, origin)
