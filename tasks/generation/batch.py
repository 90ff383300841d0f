"""One batch: columns in dependency order, processors after, files written atomically. A Prefect task.

A batch's content depends only on (config, seed, batch index, batch size): samplers draw from a generator
seeded by (seed, batch, column), templates are pure, and LLM requests carry a seed from the same streams. So the
next attempt of a failed batch sends the same requests, and takes the answers an earlier attempt received from
its answers journal (:mod:`tasks.generation.answer_journal`) instead of paying for them again.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import pyarrow as pa
from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.exceptions import MissingContextError
from prefect.logging import get_run_logger
from pydantic import BaseModel

from tasks.generation.answer_journal import AnswerJournal, request_digest
from tasks.generation.batch_writer import write_parquet_atomic
from tasks.generation.config import BuilderConfig, DropColumnsProcessor, SamplerColumn, SubcategoryParams
from tasks.generation.errors import TemplateRenderError
from tasks.generation.llm import (
    CallStats,
    Completion,
    LLMError,
    RequestsStopped,
    RetryPolicy,
    get_client,
    request_body,
)
from tasks.generation.plan import Plan, PlannedColumn, get_plan
from tasks.generation.processors import SchemaTransform
from tasks.generation.samplers import column_rng, sample_column
from tasks.generation.state import DATA_DIR, PROCESSORS_DIR, batch_name
from tasks.generation.stop_signal import signal_for


class BatchResult(BaseModel):
    """What a batch task returns.

    Attributes:
        batch_index: The batch.
        num_records: Rows written to the main file.
        files: Paths written, relative to the dataset folder, main file last.
    """

    batch_index: int
    num_records: int
    files: list[str]


def _cast(texts: list[str], dtype: str, name: str) -> pa.Array:
    if dtype == "str":
        return pa.array(texts, pa.string())
    out: list[Any] = []
    for i, text in enumerate(texts):
        value = text.strip()
        if not value:
            out.append(None)  # an empty render is a missing value, not an error
            continue
        try:
            if dtype == "int":
                try:
                    out.append(int(value))
                except ValueError:
                    out.append(int(float(value)))
            elif dtype == "float":
                out.append(float(value))
            else:
                try:
                    out.append(bool(int(float(value))))
                except ValueError:
                    out.append(value.lower() == "true")
        except (ValueError, OverflowError):
            raise TemplateRenderError(f"column {name!r}, row {i}: {text!r} is not a valid {dtype}") from None
    return pa.array(out, {"int": pa.int64(), "float": pa.float64(), "bool": pa.bool_()}[dtype])


def _logger() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    # The task run's logger, so that retries and cut answers show in the Prefect UI; the module's outside a run.
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger(__name__)


def _llm_column(
    column: PlannedColumn,
    rows: list[dict[str, Any]],
    seed: int,
    batch_index: int,
    stop: threading.Event | None,
    journal: AnswerJournal | None,
) -> pa.Array:
    assert column.template is not None and column.model is not None and column.provider is not None
    stream = (seed, batch_index)
    prompts = column.template.render_rows(rows, stream)
    systems: list[str | None] = (
        list(column.system_template.render_rows(rows, stream)) if column.system_template else [None] * len(rows)
    )
    # One request seed per row, from the column's own stream: answers do not depend on arrival order.
    seeds = column_rng(seed, batch_index, column.index).integers(0, 2**31 - 1, len(rows))
    bodies = [
        request_body(column.model, column.provider, prompt=p, system_prompt=s, seed=int(r))
        for p, s, r in zip(prompts, systems, seeds, strict=True)
    ]
    log = _logger()
    where = f"column {column.name!r} (model {column.model.alias!r}), batch {batch_index}"
    # Answers an earlier attempt of this batch received for these very requests: not sent (nor paid for) again.
    known: list[Completion | None] = [None] * len(bodies)
    digests: list[str] = []
    if journal is not None:  # a SHA-256 per body: computed only when there is a journal to look it up in
        digests = [request_digest(body) for body in bodies]
        known = [journal.get(column.name, d) for d in digests]
    missing = [row for row, answer in enumerate(known) if answer is None]
    if journal is not None and len(journal):  # an earlier attempt left answers
        log.info(
            "%s: %d of %d answers reused from an earlier attempt (answers journal), %d requests to send",
            where,
            len(bodies) - len(missing),
            len(bodies),
            len(missing),
        )

    def keep(index: int, answer: Completion) -> None:
        assert journal is not None
        journal.append(column.name, digests[missing[index]], answer)

    stats = CallStats(
        on_first_retry=lambda message: log.warning(
            "%s: %s; further retries of this batch are summed up when it ends", where, message
        )
    )
    try:
        received = get_client(column.provider, column.model).complete_many(
            [bodies[row] for row in missing], stats, stop, keep if journal is not None else None
        )
    except RequestsStopped:
        raise
    except LLMError as exc:
        failed = missing[exc.row] if exc.row is not None else None  # the batch's row, not the call's index
        at = f", row {failed}" if failed is not None else ""
        raise LLMError(
            f"{where}{at}: {exc.message}", advice=_advice(exc, column), exhausted=exc.exhausted, row=failed
        ) from None
    for index, answer in zip(missing, received, strict=True):
        known[index] = answer
    answers = [answer for answer in known if answer is not None]
    if stats.retries:
        log.warning(
            "%s: %d requests retried (%s)",
            where,
            sum(stats.retries.values()),
            ", ".join(f"{reason}: {n}" for reason, n in stats.retries.most_common()),
        )
    cut = sum(answer.finish_reason == "length" for answer in answers)
    if cut:
        # Kept (a cap is often meant), but said: a truncated answer is not what a reader of the dataset expects.
        max_tokens = column.model.inference_parameters.max_tokens
        log.warning(
            "%s: %d of %d answers were cut at %s (finish_reason 'length'); raise inference_parameters.max_tokens "
            "of model %r to get whole answers",
            where,
            cut,
            len(answers),
            f"max_tokens={max_tokens}" if max_tokens else "the server's output limit",
            column.model.alias,
        )
    return pa.array([answer.content for answer in answers], pa.string())


def _advice(exc: LLMError, column: PlannedColumn) -> str:
    """What to do about a batch's failed request: the client's advice when it knows the cause, else what fits an
    exhausted or a refused request."""
    assert column.provider is not None
    if exc.advice:
        return exc.advice
    if exc.exhausted:
        provider = column.provider
        waited = RetryPolicy.for_provider(provider).total_backoff()
        return (
            "the endpoint may be down or overloaded. Batches completed so far are kept: a rerun with the same "
            f"parameters resumes from them. The retries waited about {waited:g} s in all (unless the server asked "
            f"for longer); to wait longer before giving up, raise max_retries (now {provider.max_retries}), "
            f"retry_backoff_seconds (now {provider.retry_backoff_seconds:g}) or max_backoff_seconds (now "
            f"{provider.max_backoff_seconds:g}) of provider {provider.name!r}"
        )
    return "retrying the same request cannot help: fix the config, the prompt or the endpoint, then rerun"


def generate_tables(
    plan: Plan,
    *,
    seed: int,
    batch_index: int,
    num_rows: int,
    stop: threading.Event | None = None,
    journal: AnswerJournal | None = None,
) -> tuple[pa.Table, dict[str, pa.Table]]:
    """Generate one batch in memory: the main table and each ``schema_transform`` output.

    Args:
        plan: The compiled config.
        seed: The run seed.
        batch_index: Which batch.
        num_rows: Records in the batch.
        stop: Set when the run is interrupted: LLM requests not yet sent are dropped.
        journal: The batch's answers journal: LLM answers found there are not requested, new ones are appended
            as they arrive. None: every request is sent, no answer kept.

    Raises:
        TemplateRenderError: a template failed on a row (column and row named).
        LLMError: a chat completion failed for good.
        RequestsStopped: ``stop`` was set.
    """
    arrays: dict[str, pa.Array] = {}
    rows: list[dict[str, Any]] | None = None

    def ensure_rows() -> list[dict[str, Any]]:
        nonlocal rows
        if rows is None:
            rows = [{} for _ in range(num_rows)]
            for name, array in arrays.items():
                for row, value in zip(rows, array.to_pylist(), strict=True):
                    row[name] = value
        return rows

    for column in plan.columns:
        config = column.config
        array: pa.Array
        if isinstance(config, SamplerColumn):
            parent = arrays[config.params.category] if isinstance(config.params, SubcategoryParams) else None
            array = sample_column(config, column_rng(seed, batch_index, column.index), num_rows, parent)
        elif column.model is not None:
            array = _llm_column(column, ensure_rows(), seed, batch_index, stop, journal)
        else:
            assert column.template is not None
            texts = column.template.render_rows(ensure_rows(), (seed, batch_index))
            array = _cast(texts, config.dtype, config.name)  # type: ignore[union-attr]
        arrays[column.name] = array
        if rows is not None:
            for row, value in zip(rows, array.to_pylist(), strict=True):
                row[column.name] = value

    outputs: dict[str, pa.Table] = {}
    for step in plan.steps:
        if isinstance(step, SchemaTransform):
            outputs[step.name] = step.run(ensure_rows(), (seed, batch_index))
        else:
            assert isinstance(step, DropColumnsProcessor)  # applied through plan.output_columns
    main = pa.Table.from_arrays([arrays[name] for name in plan.output_columns], schema=plan.schema)
    return main, outputs


def write_batch(plan: Plan, root: Path, *, seed: int, batch_index: int, num_rows: int) -> BatchResult:
    """Generate a batch and write its files (processor outputs first, the main file last).

    The LLM requests stop when the run generating into ``root`` in this process is interrupted
    (:mod:`tasks.generation.stop_signal`); looked up once, so every column of the batch sees the same signal.
    A batch with LLM columns keeps their answers in its journal under ``root`` while it runs, takes those an
    earlier attempt left there, and deletes the journal once its main file is written; a batch without LLM
    columns opens none.
    """
    stop = signal_for(root)
    journal = AnswerJournal.for_batch(root, batch_index) if plan.providers() else None
    main, outputs = generate_tables(
        plan, seed=seed, batch_index=batch_index, num_rows=num_rows, stop=stop, journal=journal
    )
    name = batch_name(batch_index)
    files = []
    for processor, table in outputs.items():
        rel = f"{PROCESSORS_DIR}/{processor}/{name}"
        write_parquet_atomic(table, root / rel)
        files.append(rel)
    write_parquet_atomic(main, root / DATA_DIR / name)
    files.append(f"{DATA_DIR}/{name}")
    if journal is not None:
        journal.delete()  # its answers are in the file now
    return BatchResult(batch_index=batch_index, num_records=main.num_rows, files=files)


@task(
    name="generate-batch",
    task_run_name="generate-batch-{batch_index:05d}",
    cache_policy=NO_CACHE,  # resume works from the files themselves; no result to cache
    retries=0,  # LLM requests retry on their own; the next run regenerates a failed batch from its answers journal
)
def generate_batch(
    config: BuilderConfig, output_dir: str, batch_index: int, num_rows: int, seed: int = 0
) -> BatchResult:
    """Generate batch ``batch_index`` of a dataset into ``output_dir`` (Data Designer layout).

    Args:
        config: The generation config.
        output_dir: The dataset folder (shared storage when batches run on other machines).
        batch_index: Which batch; with ``seed``, it fixes the content.
        num_rows: Records in this batch.
        seed: The run seed.

    Returns:
        The files written, relative to ``output_dir``, main file last.
    """
    plan = get_plan(config)
    return write_batch(plan, Path(output_dir), seed=seed, batch_index=batch_index, num_rows=num_rows)
