"""Child side of the push benchmarks for this project's staged push (``flows.push.push_dataset``).

    python -m bench.push run DIR REPO          # one push (a new flow run)
    python -m bench.push fail DIR REPO         # a push expected to fail (the parent injected a Hub fault)
    python -m bench.push retry DIR REPO RUN_ID # retry that flow run the way the Prefect UI does
    python -m bench.push empty                 # an empty flow run: Prefect's fixed cost per run
    python -m bench.push imports               # import huggingface_hub and nothing else: the interpreter floor
    python -m bench.push prefect-import        # import prefect and nothing else: the floor of any Prefect flow

The parent (``bench.scenarios.push``) sets ``HF_ENDPOINT``, ``HF_HUB_DISABLE_XET``, ``HF_TOKEN``, a fresh
``HF_HOME`` and ``PREFECT_API_URL`` (one ``prefect server start`` for the whole benchmark) before starting this
process, so ``huggingface_hub`` reads them at import. Each command writes a JSON result: ``import_s`` (imports),
``op_s`` (the flow call, measured in-process), and what the push did.
"""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING, Any, cast

from bench.measure import write_result

if TYPE_CHECKING:  # for annotations only: the commands import Prefect themselves, timed (import_s)
    from datetime import datetime

    from prefect.client.schemas.objects import State, TaskRun

DESCRIPTION = "Greetings in six languages, generated without an LLM (benchmark)."


def _summary(push: Any) -> dict[str, Any]:
    return {
        "commits": len(push.commits),
        # the Hub work: the stages' commit code and the uploads made ahead of them (which overlap earlier stages)
        "stage_s": sum(s.seconds for s in push.stages) + sum(p.seconds for p in push.preuploads),
        "stages": {s.stage: round(s.seconds, 4) for s in push.stages},
        "preuploads": {p.stage: round(p.seconds, 4) for p in push.preuploads},
    }


def _run(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    from flows.push import push_dataset
    from flows.terminal_run import terminal_run

    imported = time.perf_counter()
    if args.command == "run":
        with terminal_run():  # as `python -m flows.push` runs it
            push = push_dataset(args.dir, args.repo, DESCRIPTION)
        done = time.perf_counter()
        return {"import_s": imported - started, "op_s": done - imported, **_summary(push)}
    # fail: the parent injected a fault; the run must fail, and its id is what the retry needs.
    with terminal_run():
        state = push_dataset(args.dir, args.repo, DESCRIPTION, return_state=True)
    done = time.perf_counter()
    if not state.is_failed():
        raise SystemExit(f"the push was expected to fail, it ended {state.name}")
    return {
        "import_s": imported - started,
        "op_s": done - imported,
        "flow_run_id": str(state.state_details.flow_run_id),
        "state": state.name,
    }


def _base_name(task_run: Any) -> str:
    """A task run's name without the ``-<dynamic key>`` Prefect appends to a default name (whole, or its first
    3 characters); a name given by ``task_run_name`` (``preupload-data``) is kept. The same as
    ``tests/prefect_server.task_run_base_name``: the benchmark does not import the test harness."""
    for suffix in (f"-{task_run.dynamic_key}", f"-{task_run.dynamic_key[:3]}"):
        if task_run.name.endswith(suffix):
            return str(task_run.name[: -len(suffix)])
    return str(task_run.name)


def _scheduled(task_run: TaskRun) -> datetime:
    """When a task run was expected to start (else created): the order its retries' states are read in."""
    when = task_run.expected_start_time or task_run.created
    assert when is not None, "a task run read from the server has its creation time"
    return when


def _retry(args: argparse.Namespace) -> dict[str, Any]:
    """As the Prefect UI's Retry does: the run goes to AwaitingRetry, then the same flow run executes again
    with the same parameters (see tests/test_push_flow.py::test_retry_like_the_ui_reruns_only_unfinished_stages)."""
    started = time.perf_counter()
    from uuid import UUID

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterFlowRunId
    from prefect.flow_engine import run_flow
    from prefect.states import AwaitingRetry

    from flows.push import push_dataset
    from flows.terminal_run import terminal_run

    imported = time.perf_counter()
    run_id = UUID(args.run_id)
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(run_id, AwaitingRetry(message="Retry from the UI (benchmark)"), force=True)
        flow_run = client.read_flow_run(run_id)
    with terminal_run():
        # return_type="state" on a sync, non-generator flow returns its final State; run_flow's annotation is the
        # union over every kind of flow and return_type, which the type checker cannot narrow
        state = cast(
            "State",
            run_flow(
                push_dataset,
                flow_run=flow_run,
                return_type="state",
                parameters={"dataset": args.dir, "repo_id": args.repo, "description": DESCRIPTION},
            ),
        )
    done = time.perf_counter()
    deadline = time.monotonic() + 15  # Prefect 3 records task-run states from events, after the run returned
    with get_client(sync_client=True) as client:
        while True:
            runs = client.read_task_runs(
                task_run_filter=TaskRunFilter(flow_run_id=TaskRunFilterFlowRunId(any_=[run_id]))
            )
            if all(r.state is not None and r.state.is_final() for r in runs) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    latest: dict[str, str | None] = {}  # State.name is Optional in Prefect's schema
    for task_run in sorted(runs, key=_scheduled):
        latest[_base_name(task_run)] = task_run.state.name if task_run.state else ""
    return {
        "import_s": imported - started,
        "op_s": done - imported,
        "state": state.name,
        "completed": state.is_completed(),
        "task_states": latest,
    }


def _empty(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    from prefect import flow

    import flows.push  # noqa: F401  - the same imports as a push, so only the flow run itself differs
    from flows.terminal_run import terminal_run

    @flow(name="bench-empty")
    def empty() -> int:
        return 0

    imported = time.perf_counter()
    with terminal_run():
        empty()
    return {"import_s": imported - started, "op_s": time.perf_counter() - imported}


def _imports(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    import huggingface_hub  # noqa: F401

    return {"import_s": time.perf_counter() - started, "op_s": 0.0}


def _prefect_import(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    import prefect  # noqa: F401

    return {"import_s": time.perf_counter() - started, "op_s": 0.0}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.push", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("run", "fail"):
        p = sub.add_parser(name)
        p.add_argument("dir")
        p.add_argument("repo")
    p = sub.add_parser("retry")
    p.add_argument("dir")
    p.add_argument("repo")
    p.add_argument("run_id")
    sub.add_parser("empty")
    sub.add_parser("imports")
    sub.add_parser("prefect-import")
    args = parser.parse_args(argv)
    handler = {"run": _run, "fail": _run, "retry": _retry, "empty": _empty, "imports": _imports,
               "prefect-import": _prefect_import}[args.command]
    write_result(handler(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
