"""Samplers and batches without the engine: seeded, vectorised, typed from the config."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from tasks.generation.batch import generate_batch, generate_tables
from tasks.generation.config import parse_config
from tasks.generation.errors import ConfigError, TemplateRenderError
from tasks.generation.plan import build_plan
from tasks.generation.samplers import column_rng, sample_column

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "multilingual_greetings.yaml"


def _column(spec: dict) -> object:
    return parse_config({"columns": [{"name": "c", "column_type": "sampler", **spec}]}).columns[0]


def test_same_seed_batch_column_same_values_and_streams_are_independent() -> None:
    col = _column({"sampler_type": "uniform", "params": {"low": 0, "high": 1}})
    a = sample_column(col, column_rng(1, 2, 3), 100)  # type: ignore[arg-type]
    b = sample_column(col, column_rng(1, 2, 3), 100)  # type: ignore[arg-type]
    assert a.equals(b)
    for other in (column_rng(2, 2, 3), column_rng(1, 3, 3), column_rng(1, 2, 4)):
        assert not a.equals(sample_column(col, other, 100))  # type: ignore[arg-type]


def test_category_weights() -> None:
    col = _column({"sampler_type": "category", "params": {"values": ["x", "y"], "weights": [9, 1]}})
    values = sample_column(col, column_rng(0, 0, 0), 20_000).to_pylist()  # type: ignore[arg-type]
    assert 0.88 < values.count("x") / len(values) < 0.92


def test_numeric_samplers_and_convert_to() -> None:
    gauss = sample_column(
        _column({"sampler_type": "gaussian", "params": {"mean": 50, "stddev": 5}, "convert_to": "int"}),  # type: ignore[arg-type]
        column_rng(0, 0, 0),
        5000,
    )
    assert gauss.type == pa.int64() and 49 < np.mean(gauss.to_numpy()) < 51
    bern = sample_column(_column({"sampler_type": "bernoulli", "params": {"p": 0.25}}), column_rng(0, 0, 0), 8000)  # type: ignore[arg-type]
    assert set(bern.to_pylist()) == {0, 1} and 0.22 < np.mean(bern.to_numpy()) < 0.28
    pois = sample_column(_column({"sampler_type": "poisson", "params": {"mean": 3}}), column_rng(0, 0, 0), 8000)  # type: ignore[arg-type]
    assert pois.type == pa.int64() and 2.9 < np.mean(pois.to_numpy()) < 3.1
    uni = sample_column(
        _column(
            {"sampler_type": "uniform", "params": {"low": 1, "high": 2, "decimal_places": 1}, "convert_to": "str"}
        ),  # type: ignore[arg-type]
        column_rng(0, 0, 0),
        100,
    )
    assert uni.type == pa.string() and all(re.fullmatch(r"[12]\.\d", v) for v in uni.to_pylist())


def test_uuid_is_seeded_and_well_formed() -> None:
    col = _column({"sampler_type": "uuid", "params": {"prefix": "id-"}})
    values = sample_column(col, column_rng(0, 0, 0), 1000).to_pylist()  # type: ignore[arg-type]
    assert values == sample_column(col, column_rng(0, 0, 0), 1000).to_pylist()  # type: ignore[arg-type]
    assert len(set(values)) == 1000
    parsed = uuid.UUID(values[0].removeprefix("id-"))
    assert parsed.version == 4 and parsed.variant == uuid.RFC_4122
    short = sample_column(
        _column({"sampler_type": "uuid", "params": {"short_form": True, "uppercase": True}}),
        column_rng(0, 0, 0),
        5,  # type: ignore[arg-type]
    ).to_pylist()
    assert all(re.fullmatch(r"[0-9A-F]{8}", v) for v in short)


def test_datetime_range_unit_and_format() -> None:
    col = _column(
        {"sampler_type": "datetime", "params": {"start": "2024-01-01", "end": "2024-01-03", "unit": "h"}}
    )
    drawn = sample_column(col, column_rng(0, 0, 0), 2000)  # type: ignore[arg-type]
    # Without convert_to, ISO-8601 text to the second, as Data Designer writes datetime samplers.
    assert drawn.type == pa.string() and all(
        re.fullmatch(r"2024-01-0[12]T\d\d:00:00", v) for v in drawn.to_pylist()
    )
    values = [datetime.fromisoformat(v) for v in drawn.to_pylist()]
    assert min(values) >= datetime(2024, 1, 1) and max(values) < datetime(2024, 1, 3)
    assert len(set(values)) == 48
    formatted = sample_column(
        _column(
            {
                "sampler_type": "datetime",
                "params": {"start": "2020-01-01", "end": "2021-01-01", "unit": "M"},
                "convert_to": "%Y/%m",
            }
        ),  # type: ignore[arg-type]
        column_rng(0, 0, 0),
        500,
    ).to_pylist()
    assert set(formatted) == {f"2020/{m:02d}" for m in range(1, 13)}


def test_subcategory_follows_its_parent() -> None:
    config = parse_config(
        {
            "columns": [
                {
                    "name": "lang",
                    "column_type": "sampler",
                    "sampler_type": "category",
                    "params": {"values": ["en", "fr"]},
                },
                {
                    "name": "word",
                    "column_type": "sampler",
                    "sampler_type": "subcategory",
                    "params": {"category": "lang", "values": {"en": ["Hi", "Hello"], "fr": ["Salut"]}},
                },
            ]
        }
    )
    main, _ = generate_tables(build_plan(config), seed=0, batch_index=0, num_rows=500)
    for lang, word in zip(main["lang"].to_pylist(), main["word"].to_pylist(), strict=True):
        assert word in ({"Hi", "Hello"} if lang == "en" else {"Salut"})


def test_expression_dtypes_and_render_errors_name_the_row() -> None:
    config = parse_config(
        {
            "columns": [
                {"name": "n", "column_type": "sampler", "sampler_type": "poisson", "params": {"mean": 4}},
                {"name": "double", "column_type": "expression", "expr": "{{ n * 2 }}", "dtype": "int"},
                {"name": "half", "column_type": "expression", "expr": "{{ n / 2 }}", "dtype": "float"},
                {"name": "big", "column_type": "expression", "expr": "{{ n > 3 }}", "dtype": "bool"},
                {"name": "empty", "column_type": "expression", "expr": "{{ '' }}", "dtype": "int"},
            ]
        }
    )
    main, _ = generate_tables(build_plan(config), seed=0, batch_index=0, num_rows=50)
    n = main["n"].to_pylist()
    assert main["double"].to_pylist() == [2 * v for v in n]
    assert main["half"].to_pylist() == [v / 2 for v in n]
    assert main["big"].to_pylist() == [v > 3 for v in n]
    assert main["empty"].null_count == 50
    bad = parse_config(
        {
            "columns": [
                {"name": "w", "column_type": "sampler", "sampler_type": "category", "params": {"values": ["x"]}},
                {"name": "num", "column_type": "expression", "expr": "{{ w }}", "dtype": "float"},
            ]
        }
    )
    with pytest.raises(TemplateRenderError, match=r"column 'num', row 0: 'x' is not a valid float"):
        generate_tables(build_plan(bad), seed=0, batch_index=0, num_rows=3)


def test_batch_task_writes_cdc_parquet_with_page_index(tmp_path: Path) -> None:
    config = parse_config(yaml.safe_load(EXAMPLE.read_text()))
    result = generate_batch.fn(config, str(tmp_path), batch_index=3, num_rows=200, seed=5)
    assert result.files == [
        "processors-files/conversations/batch_00003.parquet",
        "parquet-files/batch_00003.parquet",
    ]
    main = tmp_path / "parquet-files" / "batch_00003.parquet"
    meta = pq.read_metadata(main)
    assert meta.num_rows == 200
    assert meta.row_group(0).column(0).has_offset_index  # page index written
    chat = pq.read_table(tmp_path / result.files[0])
    assert chat.schema.field("messages").type == pa.list_(
        pa.struct([("role", pa.string()), ("content", pa.string())])
    )
    first = chat["messages"][0].as_py()
    assert [m["role"] for m in first] == ["system", "user", "assistant"]
    # Same inputs in another folder: the same bytes.
    other = tmp_path / "again"
    generate_batch.fn(config, str(other), batch_index=3, num_rows=200, seed=5)
    assert (other / "parquet-files" / "batch_00003.parquet").read_bytes() == main.read_bytes()
    assert not list(tmp_path.rglob(".*tmp-*"))  # no temporary files left behind


def test_reusable_batches_between_runs() -> None:
    from tasks.generation.state import GenerationState

    old = GenerationState(config_hash="h", seed=1, batch_size=10, num_records=25, completed_batches=[0, 1, 2])
    bigger = old.model_copy(update={"num_records": 40, "completed_batches": []})
    smaller = old.model_copy(update={"num_records": 15, "completed_batches": []})
    assert bigger.reusable_from(old) == {0, 1}  # batch 2 held 5 rows, now 10
    assert smaller.reusable_from(old) == {0}  # batch 1 now holds 5 rows; batch 2 is gone
    assert old.model_copy(update={"seed": 2}).reusable_from(old) == set()
    assert old.model_copy(update={"config_hash": "x"}).reusable_from(old) == set()


def test_convert_to_int_rounds_half_to_even_as_data_designer() -> None:
    def ints(spec: dict, n: int = 2000) -> list[int]:
        return sample_column(_column({**spec, "convert_to": "int"}), column_rng(0, 0, 0), n).to_pylist()  # type: ignore[arg-type]

    assert set(ints({"sampler_type": "category", "params": {"values": [0.5, 1.5, 2.5, 2.7]}})) == {0, 2, 3}
    assert set(ints({"sampler_type": "category", "params": {"values": ["2.5", "3.5", "-0.6"]}})) == {2, 4, -1}
    assert set(ints({"sampler_type": "uniform", "params": {"low": 1, "high": 5}})) == {1, 2, 3, 4, 5}
    # The int is made before decimal_places applies: 3.46 gives 3, not round(3.5) = 4.
    spec = {"sampler_type": "uniform", "params": {"low": 0, "high": 10, "decimal_places": 1}}
    assert ints(spec) == np.round(column_rng(0, 0, 0).uniform(0, 10, 2000)).astype(int).tolist()


def test_datetime_convert_to_int_counts_units_of_the_sampler_since_1970() -> None:
    def ints(start: str, end: str, unit: str) -> set[int]:
        params = {"start": start, "end": end, "unit": unit}
        col = _column({"sampler_type": "datetime", "params": params, "convert_to": "int"})
        return set(sample_column(col, column_rng(0, 0, 0), 500).to_pylist())  # type: ignore[arg-type]

    assert ints("2024-01-01", "2024-01-03", "D") == {19723, 19724}
    assert ints("2020-01-01", "2021-01-01", "M") == set(range(600, 612))
    assert ints("1970-01-01T05:00", "1970-01-01T07:00", "h") == {5, 6}


def test_uuid_has_data_designer_form_and_no_repeats_within_a_batch() -> None:
    col = _column({"sampler_type": "uuid", "params": {"prefix": "id-"}})
    values = sample_column(col, column_rng(0, 0, 0), 100).to_pylist()  # type: ignore[arg-type]
    assert all(re.fullmatch(r"id-[0-9a-f]{32}", v) for v in values)  # uuid4().hex: no hyphens
    # 8 hex digits repeat about 5 times in 200,000 draws; repeats are drawn again, reproducibly.
    short = _column({"sampler_type": "uuid", "params": {"short_form": True}})
    ids = sample_column(short, column_rng(0, 0, 0), 200_000).to_pylist()  # type: ignore[arg-type]
    assert len(set(ids)) == 200_000
    assert ids == sample_column(short, column_rng(0, 0, 0), 200_000).to_pylist()  # type: ignore[arg-type]


def test_a_float_or_converted_category_parent_feeds_its_subcategory() -> None:
    def run(parent: dict, values: dict) -> list[dict]:
        config = parse_config(
            {
                "columns": [
                    {"name": "dose", "column_type": "sampler", "sampler_type": "category", **parent},
                    {"name": "label", "column_type": "sampler", "sampler_type": "subcategory",
                     "params": {"category": "dose", "values": values}},
                ]
            }
        )  # fmt: skip
        return generate_tables(build_plan(config), seed=0, batch_index=0, num_rows=50)[0].to_pylist()

    rows = run({"params": {"values": [0.5, 1.0]}}, {"0.5": ["half"], "1.0": ["full"]})
    assert {(r["dose"], r["label"]) for r in rows} == {(0.5, "half"), (1.0, "full")}
    rows = run({"params": {"values": [1.2, 2.0]}, "convert_to": "int"}, {"1": ["one"], "2": ["two"]})
    assert {(r["dose"], r["label"]) for r in rows} == {(1, "one"), (2, "two")}
    with pytest.raises(ConfigError, match=r"no subcategory values for 'dose' keys \['1.0'\]"):
        run({"params": {"values": [0.5, 1.0]}}, {"0.5": ["half"], "1": ["full"]})


def test_a_data_designer_template_slicing_a_datetime_reads_its_iso_text() -> None:
    # Data Designer hands expressions ISO strings: '{{ sent_at[:10] }}' is the date there, and must be here.
    config = parse_config(
        {
            "columns": [
                {
                    "name": "sent_at",
                    "column_type": "sampler",
                    "sampler_type": "datetime",
                    "params": {"start": "2024-05-01", "end": "2024-05-02", "unit": "s"},
                },
                {"name": "day", "column_type": "expression", "expr": "{{ sent_at[:10] }}"},
            ]
        }
    )
    main, _ = generate_tables(build_plan(config), seed=0, batch_index=0, num_rows=20)
    assert set(main.column("day").to_pylist()) == {"2024-05-01"}
    assert all(re.fullmatch(r"2024-05-01T\d\d:\d\d:\d\d", v) for v in main.column("sent_at").to_pylist())
