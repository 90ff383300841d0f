"""One batch: columns in dependency order, processors after, files written atomically. A Prefect task.

A batch's content depends only on (config, seed, batch index, batch size): samplers draw from a generator
seeded by (seed, batch, column), templates are pure, and LLM requests carry a seed from the same streams.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel

from tasks.generation.batch_writer import write_parquet_atomic
from tasks.generation.config import BuilderConfig, DropColumnsProcessor, SamplerColumn, SubcategoryParams
from tasks.generation.errors import TemplateRenderError
from tasks.generation.llm import get_client, request_body
from tasks.generation.plan import Plan, PlannedColumn, get_plan
from tasks.generation.processors import SchemaTransform
from tasks.generation.samplers import column_rng, sample_column
from tasks.generation.state import DATA_DIR, PROCESSORS_DIR, batch_name


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


def _llm_column(column: PlannedColumn, rows: list[dict[str, Any]], seed: int, batch_index: int) -> pa.Array:
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
    answers = get_client(column.provider, column.model).complete_many(bodies)
    return pa.array(answers, pa.string())


def generate_tables(
    plan: Plan, *, seed: int, batch_index: int, num_rows: int
) -> tuple[pa.Table, dict[str, pa.Table]]:
    """Generate one batch in memory: the main table and each ``schema_transform`` output.

    Raises:
        TemplateRenderError: a template failed on a row (column and row named).
        LLMError: a chat completion failed for good.
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
            array = _llm_column(column, ensure_rows(), seed, batch_index)
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
    """Generate a batch and write its files (processor outputs first, the main file last)."""
    main, outputs = generate_tables(plan, seed=seed, batch_index=batch_index, num_rows=num_rows)
    name = batch_name(batch_index)
    files = []
    for processor, table in outputs.items():
        rel = f"{PROCESSORS_DIR}/{processor}/{name}"
        write_parquet_atomic(table, root / rel)
        files.append(rel)
    write_parquet_atomic(main, root / DATA_DIR / name)
    files.append(f"{DATA_DIR}/{name}")
    return BatchResult(batch_index=batch_index, num_records=main.num_rows, files=files)


@task(
    name="generate-batch",
    task_run_name="generate-batch-{batch_index:05d}",
    cache_policy=NO_CACHE,  # resume works from the files themselves; no result to cache
    retries=0,  # LLM requests retry on their own; a failed batch is regenerated by the next run
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
