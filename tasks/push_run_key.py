"""Which push a flow run is, across Prefect's Retries: the key of a push's stage caches and of its pull request.

A Retry of a push run keeps the run's id. A Retry of a parent flow (generate-then-push, or a user's flow that
calls the push as a subflow or with ``run_deployment``) runs the push again as a *new* flow run, but from the same
call in the parent: Prefect records each such call as a task run of the calling flow run, named by its task key
and its dynamic key (the call's number within that run), and a Retry of the caller makes the same call again. So
a push is the outermost flow run plus, at each level down, the call it came from: a Retry at any level finds its
stages' results, and two pushes made by one parent run are two different pushes.
"""

from __future__ import annotations

from prefect import get_client
from prefect.context import FlowRunContext


def push_run_key() -> str:
    """The running push's key, ``<root flow run id>/<task key>#<dynamic key>/...`` (see the module docstring);
    reads the calling runs from the Prefect API.

    Raises:
        RuntimeError: not called inside a flow run.
    """
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        raise RuntimeError("push_run_key() is called inside the push's flow run")
    flow_run = context.flow_run
    calls: list[str] = []
    if flow_run.parent_task_run_id is not None:
        with get_client(sync_client=True) as client:
            while flow_run.parent_task_run_id is not None:
                call = client.read_task_run(flow_run.parent_task_run_id)
                calls.append(f"{call.task_key}#{call.dynamic_key}")
                if call.flow_run_id is None:  # a call from a task run outside any flow run: the top
                    break
                flow_run = client.read_flow_run(call.flow_run_id)
    return "/".join([str(flow_run.id), *reversed(calls)])


def root_run(key: str) -> str:
    """The outermost flow run's id in a key of :func:`push_run_key` (the one a commit's trailer names)."""
    return key.split("/", 1)[0]
