"""Builders of Data Designer-shaped dataset folders (product.md §2) for tests."""

from __future__ import annotations

import json
import random
import struct
import zlib
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

LANGS = ["en", "fr", "de", "es", "ja"]
GREETINGS = {"en": "Hello", "fr": "Bonjour", "de": "Hallo", "es": "Hola", "ja": "こんにちは"}


def parquet_bytes(folder: Path) -> dict[str, bytes]:
    """Relative path → bytes of every parquet file under ``folder`` (to compare two runs byte for byte)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*.parquet"))}


def tiny_png(seed: int) -> bytes:
    """A valid 2x2 RGB PNG whose pixels depend on ``seed``."""
    rng = random.Random(seed)
    raw = b"".join(b"\x00" + bytes(rng.randrange(256) for _ in range(6)) for _ in range(2))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def main_table(start: int, rows: int, seed: int = 0) -> pa.Table:
    rng = random.Random(seed * 1_000_003 + start)
    langs = [rng.choice(LANGS) for _ in range(rows)]
    names = [rng.choice(["Ada", "Linus", "Grace", "Guido", None]) for _ in range(rows)]
    return pa.table(
        {
            "id": pa.array(range(start, start + rows), pa.int64()),
            "language": pa.array(langs, pa.string()),
            "name": pa.array(names, pa.string()),
            "score": pa.array([rng.gauss(0.5, 0.2) for _ in range(rows)], pa.float64()),
            "greeting": pa.array(
                [f"{GREETINGS[lang]} {name or 'friend'}!" for lang, name in zip(langs, names, strict=True)],
                pa.string(),
            ),
        }
    )


def conversations(table: pa.Table) -> pa.Table:
    msgs = [
        [{"role": "user", "content": f"Greet me in {lang}"}, {"role": "assistant", "content": greet}]
        for lang, greet in zip(table["language"].to_pylist(), table["greeting"].to_pylist(), strict=True)
    ]
    msg_type = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
    return pa.table({"messages": pa.array(msgs, msg_type)})


BUILDER_CONFIG: dict[str, Any] = {
    "data_designer": {
        "columns": [
            {"name": "id", "column_type": "sampler", "sampler_type": "uuid", "params": {}},
            {
                "name": "language",
                "column_type": "sampler",
                "sampler_type": "category",
                "params": {"values": LANGS},
            },
            {
                "name": "name",
                "column_type": "sampler",
                "sampler_type": "category",
                "params": {"values": ["Ada", "Linus", "Grace", "Guido"]},
            },
            {"name": "score", "column_type": "sampler", "sampler_type": "gaussian", "params": {"mean": 0.5}},
            {"name": "greeting", "column_type": "expression", "expr": "{{ language }} {{ name }}"},
        ],
        "model_configs": [
            {
                "alias": "writer",
                "model": "some/model",
                "provider": "nvidia",
                "api_key": "sk-SECRET-builder-key-123",
            }
        ],
        "processors": [{"name": "conversations", "processor_type": "schema_transform", "template": {}}],
    },
    "library_version": "0.9.6",
}


def make_dataset_folder(
    root: Path,
    *,
    batches: int = 3,
    rows_per_batch: int = 20,
    processor_dir: str | None = "conversations",
    processor_file: str | None = "summary",
    images: int = 3,
    builder_config: bool = True,
    seed: int = 0,
) -> Path:
    """Write a Data Designer-shaped folder under ``root`` and return it."""
    root.mkdir(parents=True, exist_ok=True)
    data_dir = root / "parquet-files"
    data_dir.mkdir(exist_ok=True)
    file_paths: dict[str, Any] = {"parquet-files": [], "processor-files": {}}
    tables = []
    for b in range(batches):
        table = main_table(b * rows_per_batch, rows_per_batch, seed)
        tables.append(table)
        path = data_dir / f"batch_{b:05d}.parquet"
        pq.write_table(table, path)
        file_paths["parquet-files"].append(f"parquet-files/{path.name}")
    if processor_dir:
        pdir = root / "processors-files" / processor_dir
        pdir.mkdir(parents=True, exist_ok=True)
        file_paths["processor-files"][processor_dir] = []
        for b, table in enumerate(tables):
            path = pdir / f"batch_{b:05d}.parquet"
            pq.write_table(conversations(table), path)
            file_paths["processor-files"][processor_dir].append(f"processors-files/{processor_dir}/{path.name}")
    if processor_file:
        (root / "processors-files").mkdir(exist_ok=True)
        whole = pa.concat_tables(tables)
        summary = pa.table({"language": whole["language"], "length": pa.compute.utf8_length(whole["greeting"])})
        pq.write_table(summary, root / "processors-files" / f"{processor_file}.parquet")
        file_paths["processor-files"][processor_file] = [f"processors-files/{processor_file}.parquet"]
    for i in range(images):
        img_dir = root / "images" / "avatar"
        img_dir.mkdir(parents=True, exist_ok=True)
        (img_dir / f"{i:08x}-0000-4000-8000-000000000000.png").write_bytes(tiny_png(seed * 100 + i))
    if builder_config:
        (root / "builder_config.json").write_text(json.dumps(BUILDER_CONFIG, indent=2))
    total = batches * rows_per_batch
    metadata = {
        "actual_num_records": total,
        "target_num_records": total,
        "original_target_num_records": total,
        "buffer_size": rows_per_batch,
        "total_num_batches": batches,
        "num_completed_batches": batches,
        "dataset_name": "dataset",
        "config_hash": "abc123",
        "file_paths": file_paths,
        "column_statistics": [
            {"column_name": "greeting", "column_type": "expression", "num_records": total},
        ],
        "preserve_dropped_columns": False,
        "some_future_key": {"kept": True},
    }
    (root / "metadata.json").write_text(json.dumps(metadata, indent=2))
    return root
