"""A Retry never publishes an older run's data over a newer run's.

A Retry resumes a run: the stages that had committed come back ``Cached``, trusted to be what the branch holds,
and the others run. When another flow run has committed to the branch since the retried run first started
(tonight's scheduled run, after last night's failed one), that trust is wrong: resuming published the older
run's remaining stages (its processors, its ``metadata.json``) over the newer dataset, whose card and data
stayed, so the repo mixed two generations. So a Retry first reads the branch's history back to when the run
first started, and fails at once, before anything is generated or pushed, when a commit there names another flow
run (the ``Prefect-Flow-Run`` trailer of every stage commit). Commits without a trailer (made by hand, or by
another tool) do not stop it. A new run is never refused: it checks every stage against the Hub.

The guard reads the trailer from the commit's description (``message`` in the Hub's commit list, which
huggingface_hub's ``list_repo_commits`` reads too), and compares the Hub's commit dates with Prefect's clock: a
commit that the two clocks' skew puts before the run's start is not seen, so the guard lets the Retry through
(it fails open, as a run without it did), rather than refuse a Retry for a commit made before the run.

A Retry is any flow run of the push's chain (the push, and the flows it was called from) on its second or later
attempt; the time it first started is Prefect's ``start_time``, which a Retry keeps.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from huggingface_hub import HfApi
from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError
from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import SecretStr

from tasks.hub_client import hub_api
from tasks.hub_commit import HubTarget, history
from tasks.push_run_key import CallingRuns, calling_runs
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


def retry_origin(chain: CallingRuns) -> RetryOrigin | None:
    """The Retry that the running flow run (with its callers, ``chain``) is part of; None on a first attempt."""
    retried = [run for run in chain.runs if run.run_count > 1 and run.start_time is not None]
    if not retried:
        return None
    first = min(retried, key=lambda run: cast(datetime, run.start_time))
    return RetryOrigin(
        root_run=str(chain.runs[-1].id), first_started=cast(datetime, first.start_time), retried_run=str(first.id)
    )


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
        f"({str(commit['id'])[:8]} '{commit.get('title', '')}', {commit['date']}). Resuming would publish this "
        "older run's data over that run's newer dataset (what this run had not committed, or all of it). Nothing "
        "was generated or pushed. "
        "To push these parameters again, start a new run: it compares every stage with the Hub."
    )


def refuse_superseded_retry(target: HubTarget, token: SecretStr, chain: CallingRuns | None = None) -> None:
    """On a Retry, run :func:`check_retry_not_superseded`; on a first attempt, do nothing (no task, no Hub request).

    Args:
        target: The repo and branch the run pushes to.
        token: The push's token.
        chain: The running flow's :func:`~tasks.push_run_key.calling_runs`, if already read; else read here.
    """
    origin = retry_origin(chain or calling_runs())
    if origin is not None:
        check_retry_not_superseded(target, token, origin)
