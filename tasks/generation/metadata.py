"""``metadata.json`` in Data Designer's shape, with statistics read from the Parquet footers (no data scan)."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

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


def column_statistics(root: Path, plan: Plan, files: list[str]) -> list[dict[str, Any]]:
    """Per main-dataset column: type, records, nulls, and min/max for numbers and timestamps.

    Read from row-group statistics in the footers, so the cost does not grow with the data.
    """
    columns = {c.name: c.config for c in plan.columns}
    stats: dict[str, dict[str, Any]] = {
        name: {
            "column_name": name,
            "column_type": columns[name].column_type,
            "pyarrow_dtype": str(plan.schema.field(name).type),
            "num_records": 0,
            "num_null": 0,
        }
        for name in plan.output_columns
    }
    for name, entry in stats.items():
        config = columns[name]
        if isinstance(config, SamplerColumn):
            entry["sampler_type"] = config.sampler_type
    for rel in files:
        meta = pq.read_metadata(root / rel)
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
