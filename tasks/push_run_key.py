"""Which push a flow run is, across Prefect's Retries: the key of a push's stage caches and of its pull request.

A Retry of a push run keeps the run's id. A Retry of a parent flow (generate-then-push, or a user's flow that
calls the push as a subflow or with ``run_deployment``) runs the push again as a *new* flow run, but from the same
call in the parent: Prefect records each such call as a task run of the calling flow run, named by its task key
and its dynamic key (the call's number within that run), and a Retry of the caller makes the same call again. So
a push is the outermost flow run plus, at each level down, the call it came from: a Retry at any level finds its
stages' results, and two pushes made by one parent run are two different pushes.
"""

from __future__ import annotations

from dataclasses import dataclass

from prefect import get_client
from prefect.client.schemas.objects import FlowRun, TaskRun
from prefect.context import FlowRunContext


@dataclass(frozen=True)
class CallingRuns:
    """The running flow run and the flow runs that called it, as the Prefect API has them now.

    Attributes:
        runs: The running flow run first, the outermost last.
        calls: ``calls[i]`` is the task run of the call that started ``runs[i]``: a task run of ``runs[i + 1]``,
            or, for the outermost run, one outside any flow run (a flow called from a task run alone).
    """

    runs: list[FlowRun]
    calls: list[TaskRun]


def calling_runs() -> CallingRuns:
    """Read the running flow run and its callers from the Prefect API (the run in the context may predate this
    attempt: its ``run_count`` does).

    Raises:
        RuntimeError: not called inside a flow run.
    """
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        raise RuntimeError("calling_runs() is called inside a flow run")
    calls: list[TaskRun] = []
    with get_client(sync_client=True) as client:
        runs = [client.read_flow_run(context.flow_run.id)]
        while runs[-1].parent_task_run_id is not None:
            call = client.read_task_run(runs[-1].parent_task_run_id)
            calls.append(call)
            if call.flow_run_id is None:  # a call from a task run outside any flow run: the top
                break
            runs.append(client.read_flow_run(call.flow_run_id))
    return CallingRuns(runs=runs, calls=calls)


def push_run_key(chain: CallingRuns) -> str:
    """The running push's key, ``<root flow run id>/<task key>#<dynamic key>/...`` (see the module docstring).

    Args:
        chain: The push's :func:`calling_runs`.
    """
    calls = [f"{call.task_key}#{call.dynamic_key}" for call in chain.calls]
    return "/".join([str(chain.runs[-1].id), *reversed(calls)])


def root_run(key: str) -> str:
    """The outermost flow run's id in a key of :func:`push_run_key` (the one a commit's trailer names)."""
    return key.split("/", 1)[0]
