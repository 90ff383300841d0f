"""``metadata.json`` in Data Designer's shape, with column statistics from the Parquet footers and one pass per column
for distinct values."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from tasks.card.statistics import count_distinct
from tasks.generation.batch_writer import write_bytes_atomic
from tasks.generation.config import SamplerColumn
from tasks.generation.plan import Plan
from tasks.generation.state import DATA_DIR, PROCESSORS_DIR, GenerationState, batch_name

GENERATOR = "prefect-hf-datasets"


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return None
    return value


_SIMPLE_DTYPES = (
    ("int", "int"),
    ("double", "float"),
    ("float", "float"),
    ("str", "string"),
    ("timestamp", "timestamp"),
    ("time", "time"),
    ("date", "date"),
)


def simple_dtype(type_: pa.DataType) -> str:
    """Data Designer's short label for a column type (``int``, ``float``, ``string``, ``list[int]``, ``dict``...).

    The same rule as Data Designer's profiler, whose dataset card prints it: the first of these words found in the
    Arrow type name, lists by their item type, structs as ``dict``, any other type by its Arrow name.
    """
    if pa.types.is_list(type_) or pa.types.is_large_list(type_):
        return f"list[{simple_dtype(type_.value_type)}]"
    if pa.types.is_struct(type_):
        return "dict"
    name = str(type_)
    return next((label for word, label in _SIMPLE_DTYPES if word in name), name)


def _column_batches(footers: dict[Path, pq.FileMetaData], name: str) -> Iterator[pa.Array]:
    for path, footer in footers.items():
        for batch in pq.ParquetFile(path, metadata=footer).iter_batches(columns=[name]):
            yield batch.column(0)


def column_statistics(root: Path, plan: Plan, files: list[str]) -> list[dict[str, Any]]:
    """Per main-dataset column, the keys Data Designer's profiler writes and its dataset card reads: type (Arrow
    and simple), records, nulls, distinct values; plus min/max for numbers and timestamps.

    Records, nulls and min/max come from the row-group statistics in the footers. Distinct values need the data:
    one column at a time, exact up to a million distinct values, then estimated (memory stays bounded).
    """
    columns = {c.name: c.config for c in plan.columns}
    names = plan.output_columns
    footers = {root / rel: pq.read_metadata(root / rel) for rel in files}  # read once, for both passes
    # Arrow's hashing and sorting release the GIL: one column per core.
    with ThreadPoolExecutor(max_workers=max(1, min(len(names), os.cpu_count() or 1))) as pool:
        counts = pool.map(lambda n: count_distinct(_column_batches(footers, n)), names)
        distinct = dict(zip(names, counts, strict=True))
    stats: dict[str, dict[str, Any]] = {}
    for name in names:
        type_ = plan.schema.field(name).type
        num_unique, exact = distinct[name]
        stats[name] = {
            "column_name": name,
            "column_type": columns[name].column_type,
            "pyarrow_dtype": str(type_),
            "simple_dtype": simple_dtype(type_),
            "num_records": 0,
            "num_null": 0,
            "num_unique": num_unique,
        }
        if not exact:
            stats[name]["num_unique_estimated"] = True
        config = columns[name]
        if isinstance(config, SamplerColumn):
            stats[name]["sampler_type"] = config.sampler_type
    for meta in footers.values():
        for rg in range(meta.num_row_groups):
            group = meta.row_group(rg)
            for i in range(group.num_columns):
                chunk = group.column(i)
                found = stats.get(chunk.path_in_schema)
                if found is None:
                    continue
                found["num_records"] += group.num_rows
                st = chunk.statistics
                if st is None:
                    continue
                if st.has_null_count:
                    found["num_null"] += st.null_count
                field_type = plan.schema.field(chunk.path_in_schema).type
                numeric = pa.types.is_integer(field_type) or pa.types.is_floating(field_type)
                if st.has_min_max and (numeric or pa.types.is_timestamp(field_type)):
                    lo, hi = _json_value(st.min), _json_value(st.max)
                    found["min"] = lo if "min" not in found else min(found["min"], lo)
                    found["max"] = hi if "max" not in found else max(found["max"], hi)
    return list(stats.values())


def build_metadata(
    root: Path, plan: Plan, state: GenerationState, *, dataset_name: str, completed: list[int]
) -> dict[str, Any]:
    """The content of ``metadata.json`` for a generated folder."""
    data_files = [f"{DATA_DIR}/{batch_name(i)}" for i in completed]
    processor_files = {
        name: [f"{PROCESSORS_DIR}/{name}/{batch_name(i)}" for i in completed] for name in plan.processor_names
    }
    actual = sum(state.rows_in(i) for i in completed)
    return {
        "actual_num_records": actual,
        "target_num_records": state.num_records,
        "original_target_num_records": state.num_records,
        "buffer_size": state.batch_size,
        "total_num_batches": state.total_batches,
        "num_completed_batches": len(completed),
        "dataset_name": dataset_name,
        "config_hash": plan.config_hash,
        "file_paths": {"parquet-files": data_files, "processor-files": processor_files},
        "column_statistics": column_statistics(root, plan, data_files),
        "preserve_dropped_columns": False,
        "seed": state.seed,
        "schema": {f.name: str(f.type) for f in plan.schema},
        "processor_schemas": {
            name: {f.name: str(f.type) for f in schema} for name, schema in plan.processor_schemas.items()
        },
        "generator": GENERATOR,
    }


def write_metadata(root: Path, metadata: dict[str, Any]) -> Path:
    """Write ``metadata.json`` atomically."""
    path = root / "metadata.json"
    write_bytes_atomic(path, (json.dumps(metadata, indent=2, ensure_ascii=False) + "\n").encode())
    return path


def write_builder_config(root: Path, plan: Plan) -> Path:
    """Write ``builder_config.json`` (Data Designer format, no secrets) atomically."""
    path = root / "builder_config.json"
    write_bytes_atomic(path, plan.config.to_json().encode())
    return path
