"""The generation flow: a Data Designer-style config in, a dataset folder in Data Designer's layout out.

Batches are Prefect tasks submitted to the flow's task runner (threads by default). For a cluster, either pass
``task_runner="dask"`` (and ``dask_address`` of a running scheduler), or replace the runner without touching
code, as Prefect allows for any flow::

    from prefect_dask import DaskTaskRunner        # or: from prefect_ray import RayTaskRunner
    generate_dataset.with_options(task_runner=DaskTaskRunner(address="tcp://scheduler:8786"))(...)

Batches running on other machines must see ``output_dir`` (shared storage) and a Prefect API (a server, not
the ephemeral mode), and need the environment variables that LLM provider keys refer to.

CLI::

    python -m flows.generate CONFIG --num-records N --output DIR [--batch-size B] [--seed S] ...

(``--help`` lists every option: batches in flight, checkpoints, resume.)
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any, Literal, cast
from uuid import UUID

from prefect import flow, get_run_logger
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.context import FlowRunContext
from prefect.futures import PrefectFuture, as_completed
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner
from prefect.utilities.annotations import quote

from flows.terminal_run import terminal_run
from tasks.artifacts import artifact_slug
from tasks.events import emit_dataset_generated
from tasks.folder_lock import generating_into
from tasks.generation.answer_journal import prune_journals
from tasks.generation.batch import BatchResult, generate_batch
from tasks.generation.batch_writer import remove_temp_files
from tasks.generation.checkpoint import Checkpointer, CheckpointTarget
from tasks.generation.config import BuilderConfig
from tasks.generation.errors import CheckpointRefusedError, ConfigError, OutputFolderError
from tasks.generation.listing import first_few
from tasks.generation.llm import resolve_api_key
from tasks.generation.metadata import build_metadata, write_builder_config, write_metadata
from tasks.generation.plan import Plan, get_plan
from tasks.generation.result import GeneratedDataset
from tasks.generation.source import from_config
from tasks.generation.state import (
    STATE_FILE,
    GenerationState,
    UnreadableStateError,
    batch_files,
    batch_is_complete,
    foreign_files,
    generated_files,
    read_state,
    remove_stale_files,
    write_state,
)
from tasks.generation.stop_signal import stop_signal
from tasks.validation import validate_dask_address

DEFAULT_BATCH_SIZE = 1000
# Batches in flight when they wait on LLM endpoints or run elsewhere. Batches that only render templates in this
# process's threads hold the GIL: a second one in flight only contends for it (measured on the no-LLM example,
# 100k records: 1 in flight 3.1 s, 2 in flight 3.3 s, 4 in flight 3.7-4.4 s), so those run one at a time.
DEFAULT_MAX_IN_FLIGHT = 4


def default_max_in_flight(plan: Plan, runner: TaskRunner[Any] | None) -> int:
    """Batches to keep in flight when the caller does not say: 1 for batches without LLM columns on a thread
    pool (CPU-bound Python), else :data:`DEFAULT_MAX_IN_FLIGHT`."""
    if isinstance(runner, ThreadPoolTaskRunner) and not plan.providers():
        return 1
    return DEFAULT_MAX_IN_FLIGHT


class _Progress:
    """A progress artifact and a log line, updated at most every few seconds (API calls cost time)."""

    def __init__(self, logger: Any, name: str, done: int, total: int, every: float = 2.0) -> None:
        self.logger, self.done, self.total, self.every = logger, done, total, every
        self.started = self.last = time.monotonic()
        self.generated = 0
        key = artifact_slug(name) or "dataset"
        self.artifact = cast(
            UUID,
            create_progress_artifact(
                100.0 * done / total, key=f"{key}-generation-progress", description=f"Batches of {name} generated"
            ),
        )

    def add(self, records: int, final: bool = False) -> None:
        self.done += 0 if final else 1
        self.generated += records
        now = time.monotonic()
        if final or now - self.last >= self.every:
            self.last = now
            update_progress_artifact(self.artifact, 100.0 * self.done / self.total)
            rate = self.generated / max(now - self.started, 1e-9)
            self.logger.info("%d of %d batches done (%.0f records/s)", self.done, self.total, rate)


def _run_batches(
    todo: list[int], submit: Callable[[int], PrefectFuture[BatchResult]], max_in_flight: int
) -> Generator[BatchResult, None, None]:
    """Submit batches with at most ``max_in_flight`` running (bounded memory, roughly in order); yield results
    as they complete. After a failure nothing new is submitted, running batches finish (so they are kept for a
    resume), then the first error is raised. Closed early (the caller failed), it also waits for the running
    batches: the run must not leave its folder (and free its lock) while they still write into it."""
    queue = iter(todo)
    in_flight: list[PrefectFuture[BatchResult]] = []
    error: BaseException | None = None
    try:
        while True:
            while error is None and len(in_flight) < max_in_flight:
                index = next(queue, None)
                if index is None:
                    break
                in_flight.append(submit(index))
            if not in_flight:
                break
            done = next(as_completed(in_flight))
            in_flight.remove(done)
            try:
                result = done.result()
            except BaseException as exc:
                error = error or exc
                continue
            yield result
    except GeneratorExit:
        for future in in_flight:
            future.wait()
        raise
    if error is not None:
        raise error


# Threads by default; batches release the GIL in numpy, Arrow, Parquet writes, fsync and LLM I/O.
_DEFAULT_RUNNER = cast("TaskRunner[PrefectFuture[Any]]", ThreadPoolTaskRunner())


@flow(name="generate-dataset", task_runner=_DEFAULT_RUNNER)
def generate_dataset(
    config: BuilderConfig | dict[str, Any] | str | Path,
    num_records: int,
    output_dir: str | Path,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    seed: int = 0,
    checkpoint: CheckpointTarget | None = None,
    resume: bool = True,
    max_in_flight: int | None = None,
    task_runner: Literal["threads", "dask"] = "threads",
    dask_address: str | None = None,
) -> GeneratedDataset:
    """Generate a dataset folder (``parquet-files/``, ``processors-files/``, ``metadata.json``,
    ``builder_config.json``) from a Data Designer-style config.

    Batch ``i`` depends only on (config, ``seed``, ``i``, ``batch_size``), so reruns are byte-identical and a
    crashed run resumes: with ``resume`` (the default), complete batch files of the same run in ``output_dir``
    are kept, or fetched from the checkpoint when the folder is gone, and only the others are generated.

    Args:
        config: Anything :func:`tasks.generation.source.from_config` accepts: a config model, a dict, YAML/JSON
            text, a local path, or an http(s) URL (e.g. the ``builder_config.json`` of a pushed dataset).
        num_records: Records to generate.
        output_dir: The dataset folder (created if missing). Files of a different earlier run of this flow are
            replaced; a folder holding a dataset this flow did not write is refused unless ``resume=False``.
        batch_size: Records per batch (one Parquet file and one Prefect task each).
        seed: Seed of every random choice (samplers, UUIDs, the ``seed`` sent to LLM endpoints).
        checkpoint: Push completed batches to a Hub repo/branch while generating (at most one commit per
            ``interval_seconds``); also where a run resumes from when the local folder is gone.
        resume: Reuse complete batches of the same run, and the LLM answers its incomplete batches received
            before they failed or were interrupted (``.llm-answers/``); False regenerates everything and sends
            every request again.
        max_in_flight: Batches submitted at once (bounds memory; raise it for a cluster). None: one at a time
            for batches without LLM columns on the thread pool, else 4 (:func:`default_max_in_flight`).
        task_runner: ``"threads"``: the flow's own task runner (a thread pool, or whatever ``with_options``
            set); ``"dask"``: a ``prefect_dask.DaskTaskRunner`` on ``dask_address`` (a local cluster if None).
        dask_address: Address of a running Dask scheduler, for ``task_runner="dask"``.

    Returns:
        The folder and a summary of what it holds; the push flow accepts it in place of a path.

    Raises:
        UnsupportedConfigError: unsupported column/sampler/processor types (every one listed), before any batch.
        ConfigError: an invalid config or a missing API key, before any batch.
        TemplateRenderError: a template failed on a row (column and row named).
        LLMError: an LLM request failed for good (after retries).
        FolderInUseError: another run is generating into ``output_dir`` or pushing it (tasks.folder_lock).

    Examples:
        Generate the no-LLM example into ``./out/greetings``:
        ```python
        from flows.generate import generate_dataset

        result = generate_dataset("examples/multilingual_greetings.yaml", 2000, "out/greetings", seed=7)
        print(result.num_records, result.columns)
        ```
    """
    logger = get_run_logger()
    for name, value, least in [("num_records", num_records, 1), ("batch_size", batch_size, 1), ("seed", seed, 0)]:
        if value < least:
            raise ValueError(f"{name} must be at least {least}, got {value}.")
    if max_in_flight is not None and max_in_flight < 1:
        raise ValueError(f"max_in_flight must be at least 1 (or None for the default), got {max_in_flight}.")
    validate_dask_address(task_runner, dask_address)
    if task_runner == "dask" and importlib.util.find_spec("prefect_dask") is None:
        raise ValueError(
            "task_runner='dask' needs prefect-dask: install the project's dask extra (pip install -e '.[dask]')."
        )
    builder = from_config(config)
    plan = get_plan(builder)
    for provider in plan.providers():
        resolve_api_key(provider)  # fail before generating when a key is missing; the key itself is dropped

    root = Path(output_dir).expanduser().resolve()
    root.mkdir(parents=True, exist_ok=True)
    # One generation per folder, no push while it writes; its batches' LLM requests stop when it is interrupted.
    with generating_into(root), stop_signal(root) as stop:
        remove_temp_files(root)
        state = GenerationState(
            config_hash=plan.config_hash,
            seed=seed,
            batch_size=batch_size,
            num_records=num_records,
            processors=plan.processor_names,
        )
        total = state.total_batches
        try:
            previous, unreadable = read_state(root), ""
        except UnreadableStateError as exc:  # not taken for "another tool's folder": say what is wrong with it
            previous, unreadable = None, str(exc)
        if previous is None and resume and any(p.suffix == ".parquet" for p in generated_files(root)):
            what = f"whose {unreadable}" if unreadable else f"that this generator did not write (no {STATE_FILE})"
            raise OutputFolderError(
                f"{root} holds a dataset {what}; choose another folder, or pass resume=False (--no-resume) to "
                "replace it"
            )
        if unreadable:
            logger.warning("%s; this run replaces it", unreadable)
        foreign = foreign_files(root) if previous is None else []  # a replaced folder must not keep another's
        if foreign:
            shown = first_few([str(p.relative_to(root)) for p in foreign])
            raise OutputFolderError(
                f"{root} holds {len(foreign)} files this generator never writes ({shown}), which a push of the folder "
                "would publish with the new dataset; move them away or choose another folder"
            )
        completed: set[int] = set()
        resuming = resume and previous is not None and previous.same_run(state)
        if resuming:
            completed = {i for i in range(total) if batch_is_complete(root, state, i)}
        # metadata.json and builder_config.json go in every run (rewritten at its end): only batches say that an
        # earlier generation's (or an incomplete batch's) files were removed. The answers journals of this run's
        # incomplete batches stay: their next attempt takes the LLM answers received before.
        answers = set(range(total)) - completed if resuming else set()
        stale = remove_stale_files(root, state, keep=completed, answers=answers)
        removed = [p for p in stale if p.suffix == ".parquet"]
        if removed:
            logger.info(
                "removed %d batch files of an earlier generation (or of incomplete batches) in %s",
                len(removed),
                root,
            )
        # This run's state before anything else lands in the folder (batches restored from a checkpoint): killed
        # from here on, the folder is this run's, never an earlier run's with other batches in it.
        write_state(root, state.model_copy(update={"completed_batches": sorted(completed)}))

        checkpointer: Checkpointer | None = None
        if checkpoint is not None:
            checkpointer = Checkpointer(checkpoint, root, state, logger=logger)
            remote = checkpointer.prepare(reuse=resume)
            if resume and remote is not None:
                missing = state.reusable_from(remote) - completed
                restored = checkpointer.download(missing)
                if restored:
                    logger.info("restored %d batches from checkpoint %s", len(restored), checkpoint.repo_id)
                    completed |= restored
                    write_state(root, state.model_copy(update={"completed_batches": sorted(completed)}))
        resumed = len(completed)
        if resumed:
            logger.info("resuming: %d of %d batches already complete", resumed, total)
        try:
            if checkpointer is not None:
                checkpointer.start()
                for index in sorted(completed - checkpointer.remote_batches):
                    checkpointer.add(batch_files(index, state.processors), index)

            todo = [i for i in range(total) if i not in completed]
            logger.info(
                "generating %d batches of up to %d records (%d records total)", len(todo), batch_size, num_records
            )

            def parameters(index: int, config: Any = builder) -> dict[str, Any]:
                return {
                    "config": config,
                    "output_dir": str(root),
                    "batch_index": index,
                    "num_rows": state.rows_in(index),
                    "seed": seed,
                }

            progress = _Progress(logger, root.name, len(completed), total)

            def run(submit: Callable[[int], PrefectFuture[BatchResult]], runner: TaskRunner[Any] | None) -> None:
                in_flight = max_in_flight or default_max_in_flight(plan, runner)
                results = _run_batches(todo, submit, in_flight)
                try:
                    for result in results:
                        completed.add(result.batch_index)
                        if checkpointer is not None:
                            checkpointer.add(result.files, result.batch_index)  # raises once refused
                        progress.add(result.num_records)
                except Exception:
                    results.close()  # the running batches finish first; an interruption (Ctrl-C) does not wait
                    raise

            try:
                if task_runner == "dask":
                    from prefect_dask import DaskTaskRunner  # optional dependency: imported only when asked for

                    with DaskTaskRunner(address=dask_address) as runner:
                        run(lambda i: runner.submit(generate_batch, parameters=parameters(i)), runner)
                else:
                    context = FlowRunContext.get()
                    flow_runner = context.task_runner if context else None
                    # quote: else Prefect walks the whole config model (looking for futures) at every batch. Threads
                    # only: a quote does not survive pickling to another process (the task would get a tuple).
                    passed: Any = quote(builder) if isinstance(flow_runner, ThreadPoolTaskRunner) else builder
                    run(lambda i: generate_batch.submit(**parameters(i, passed)), flow_runner)
            except BaseException as exc:
                if not isinstance(exc, Exception):
                    # Interrupted (Ctrl-C, a cancellation): the running batches' requests not yet sent are dropped,
                    # else they all go out (and are paid for) before the process can exit.
                    stop.set()
                write_state(root, state.model_copy(update={"completed_batches": sorted(completed)}))
                raise

            progress.add(0, final=True)
            prune_journals(root)  # left by batches restored from the checkpoint instead of generated
            done = sorted(completed)
            write_state(root, state.model_copy(update={"completed_batches": done}))
            write_builder_config(root, plan)
            metadata = build_metadata(root, plan, state, dataset_name=root.name, completed=done)
            write_metadata(root, metadata)
            commits: list[str] = []
            if checkpointer is not None:
                checkpointer.add(["builder_config.json", "metadata.json"])
                commits = [c.oid for c in checkpointer.close()]
                if checkpointer.refused is not None:  # the batches are in the folder; a rerun resumes from them
                    raise CheckpointRefusedError(checkpointer.refused)
                if checkpointer.error and not commits:
                    logger.warning("no checkpoint commit succeeded: %s", checkpointer.error)
        except BaseException as exc:
            if checkpointer is not None:  # close() again after the final one changes nothing
                # A failed run's completed batches still reach the checkpoint (what a resume elsewhere needs), even
                # without the final flush, also when it failed after its batches (writing the metadata, the
                # progress artifact); an interrupted one (Ctrl-C, cancellation) stops at once: its batches stay in
                # the folder, from which a rerun resumes. Either way the committer and its worker stop.
                checkpointer.close(flush=isinstance(exc, Exception))
            raise

        result = GeneratedDataset(
            path=root,
            num_records=metadata["actual_num_records"],
            num_batches=len(done),
            columns=plan.output_columns,
            processors=plan.processor_names,
            dataset_name=root.name,
            config_hash=plan.config_hash,
            resumed_batches=resumed,
            checkpoint_commits=commits,
        )
    # After the lock is released: the event may start a push of this folder (an automation), which must find it free.
    emit_dataset_generated(
        result,
        config_hash=plan.config_hash,
        seed=seed,
        checkpoint=None
        if checkpoint is None
        else {"repo_id": checkpoint.repo_id, "branch": checkpoint.branch, "commits": commits},
    )
    logger.info("wrote %d records in %d batches to %s", result.num_records, result.num_batches, root)
    return result


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, ConfigError) and len(exc.problems) > 1:
        return f"{exc.header}: " + "; ".join(exc.problems)
    return " ".join(str(exc).split()) or type(exc).__name__


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit code (1 with a one-line reason on stderr on failure)."""
    parser = argparse.ArgumentParser(
        prog="python -m flows.generate",
        description="Generate a dataset folder (Data Designer layout) from a builder_config (path, URL, YAML).",
    )
    parser.add_argument("config", help="config file, http(s) URL (Hub/GitHub blob URLs work), or YAML/JSON text")
    parser.add_argument("--num-records", type=int, required=True)
    parser.add_argument("--output", required=True, help="dataset folder to write")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--max-in-flight", type=int, help="batches at once (default: 1 without LLM columns, else 4)"
    )
    parser.add_argument("--checkpoint-repo", help="push completed batches to this dataset repo while generating")
    parser.add_argument("--checkpoint-branch", default="checkpoint")
    parser.add_argument("--checkpoint-interval", type=float, default=60.0, help="seconds between commits")
    parser.add_argument("--no-resume", action="store_true", help="regenerate every batch")
    args = parser.parse_args(argv)
    try:
        checkpoint = (
            CheckpointTarget(
                repo_id=args.checkpoint_repo,
                branch=args.checkpoint_branch,
                interval_seconds=args.checkpoint_interval,
            )
            if args.checkpoint_repo
            else None
        )
        with terminal_run():
            result = generate_dataset(
                args.config,
                args.num_records,
                args.output,
                batch_size=args.batch_size,
                seed=args.seed,
                checkpoint=checkpoint,
                resume=not args.no_resume,
                max_in_flight=args.max_in_flight,
            )
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return 1
    print(f"wrote {result.num_records} records in {result.num_batches} batches to {result.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
