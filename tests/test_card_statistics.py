"""Streaming column statistics of the dataset card (tasks.card.statistics), checked against plain Python."""

from __future__ import annotations

import datetime as dt
import decimal
import logging
import math
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from factories import make_dataset_folder

import tasks.card.statistics as statistics_module
from tasks.card.statistics import canonical_keys, compute_statistics, count_distinct

# ---------------------------------------------------------------------------------------------------------------
# independent reference: plain Python over to_pylist()


def _hashable(value: Any) -> Any:
    """A hashable stand-in for a Python value from Arrow: equal values, equal stand-ins (NaN is one value)."""
    if isinstance(value, float) and math.isnan(value):
        return ("nan",)
    if isinstance(value, list):
        return ("list", tuple(_hashable(v) for v in value))
    if isinstance(value, tuple):  # map entries come as (key, value) tuples
        return ("tuple", tuple(_hashable(v) for v in value))
    if isinstance(value, dict):
        return ("dict", tuple((k, _hashable(v)) for k, v in value.items()))
    return value


def reference(paths: list[Path]) -> dict[str, Any]:
    """Records, and per column nulls / unique / word and token stats, from the whole files in plain Python."""
    tables = [pq.read_table(p) for p in paths]
    records = sum(t.num_rows for t in tables)
    names: list[str] = []
    for t in tables:
        names += [n for n in t.column_names if n not in names]
    columns = {}
    for name in names:
        values: list[Any] = []
        for t in tables:
            values += t.column(name).to_pylist() if name in t.column_names else [None] * t.num_rows
        present = [v for v in values if v is not None]
        col: dict[str, Any] = {"nulls": len(values) - len(present), "unique": len({_hashable(v) for v in present})}
        if present and all(isinstance(v, str) for v in present):
            words = [len(v.split()) for v in present]
            tokens = [(len(v.encode("utf-8")) + 3) // 4 for v in present]
            col["tokens"] = {
                "values": len(present),
                "words_mean": sum(words) / len(words),
                "words_min": min(words),
                "words_max": max(words),
                "tokens_mean": sum(tokens) / len(tokens),
                "tokens_min": min(tokens),
                "tokens_max": max(tokens),
            }
        columns[name] = col
    return {"records": records, "names": names, "columns": columns}


def assert_matches_reference(paths: list[Path], **kwargs: Any) -> None:
    stats = compute_statistics(paths, **kwargs)
    ref = reference(paths)
    assert stats.num_records == ref["records"]
    assert [c.name for c in stats.columns] == ref["names"]
    for col in stats.columns:
        expected = ref["columns"][col.name]
        assert col.error is None, col.error
        assert col.null_count == expected["nulls"], col.name
        assert col.unique_exact
        assert col.unique_count == expected["unique"], col.name
        if "tokens" in expected:
            assert col.tokens is not None
            got = col.tokens.model_dump(exclude={"method"})
            for key, value in expected["tokens"].items():
                assert got[key] == pytest.approx(value, rel=1e-12), (col.name, key)


# ---------------------------------------------------------------------------------------------------------------


def test_factory_folder_matches_plain_python(tmp_path: Path) -> None:
    root = make_dataset_folder(tmp_path / "ds", batches=4, rows_per_batch=50)
    paths = sorted((root / "parquet-files").glob("*.parquet"))
    assert_matches_reference(paths)


def test_small_batches_and_merges_give_the_same_numbers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Record batches of 7 rows and merges of the exact set every 4 keys: same exact numbers."""
    root = make_dataset_folder(
        tmp_path / "ds", batches=3, rows_per_batch=40, processor_dir=None, processor_file=None
    )
    paths = sorted((root / "parquet-files").glob("*.parquet"))
    monkeypatch.setattr(statistics_module, "_MIN_CONSOLIDATE", 4)
    assert_matches_reference(paths, batch_rows=7, threads=1)
    assert_matches_reference(paths, batch_rows=7, threads=3)


def test_nested_list_struct_map_and_odd_scalars(tmp_path: Path) -> None:
    # values chosen so that a naive concatenation would collide: ["1:a", "b"] vs ["1", ":ab"], "" vs None inside
    table = pa.table(
        {
            "tags": pa.array([["1:a", "b"], ["1", ":ab"], [], None, ["1:a", "b"], [""], [None], ["x", None]]),
            "ints": pa.array([[1, 2], [12], [1, 2], [], None, [2, 1], [None], [None, None]], pa.list_(pa.int64())),
            "messages": pa.array(
                [
                    [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}],
                    [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}],
                    [{"role": "user", "content": "hiyo"}],
                    [{"role": None, "content": "x"}],
                    [{"role": "", "content": "x"}],
                    None,
                    [],
                    [None],
                ],
                pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())])),
            ),
            "judge": pa.array(
                [
                    {"score": 1, "why": "ok"},
                    {"score": 1, "why": "ok"},
                    {"score": None, "why": "ok"},
                    None,
                    {"score": 2, "why": None},
                    {"score": 2, "why": ""},
                    {"score": 12, "why": ""},
                    {"score": 1, "why": "k"},
                ],
                pa.struct([("score", pa.int64()), ("why", pa.string())]),
            ),
            "attrs": pa.array(
                [
                    [("a", 1)],
                    [("a", 1)],
                    [("a", None)],
                    [],
                    None,
                    [("b", 1), ("a", 1)],
                    [("a", 1), ("b", 1)],
                    [("ab", 1)],
                ],
                pa.map_(pa.string(), pa.int64()),
            ),
            "pair": pa.array(
                [[1, 2], [1, 2], [2, 1], None, [None, 1], [1, None], [1, 2], [3, 4]], pa.list_(pa.int64(), 2)
            ),
            "floats": pa.array([0.0, -0.0, math.nan, math.nan, None, 1.5, 1.5, math.inf]),
            "small": pa.array([1, 2, 3, 1, None, 2, 3, 4], pa.int8()),
            "flag": pa.array([True, False, None, True, True, False, None, None]),
            "day": pa.array([dt.date(2024, 1, d) for d in (1, 2, 1, 1, 3, 3, 2, 1)]),
            "at": pa.array([dt.datetime(2024, 1, 1, h, tzinfo=dt.UTC) for h in (1, 1, 2, 3, 4, 4, 1, 2)]),
            "price": pa.array(
                [decimal.Decimal(x) for x in ("1.50", "1.50", "2.00", "0.10", "0.01", "2.00", "3", "4")],
                pa.decimal128(6, 2),
            ),
            "blob": pa.array([b"\x00", b"\x00\x00", b"", None, b"\xff", b"\x00", b"", b"a"], pa.binary()),
            "big_text": pa.array(
                ["a b", "a b", None, "é 東京  x", "", "tab\there", "a\u3000b", "a b"], pa.large_string()
            ),
        }
    )
    path = tmp_path / "nested.parquet"
    pq.write_table(table, path)
    assert_matches_reference([path])
    # and with batches of one row (everything merges across batches)
    assert_matches_reference([path], batch_rows=1)


def test_canonical_keys_dictionary_and_views() -> None:
    words = pa.array(["b", "a", "b", None, "c"])
    assert len(canonical_keys(words.dictionary_encode())) == 3
    assert len(canonical_keys(pa.array(["x", "y", "x"], pa.string_view()))) == 2
    assert len(canonical_keys(pa.nulls(3))) == 0


def test_all_null_columns(tmp_path: Path) -> None:
    path = tmp_path / "nulls.parquet"
    pq.write_table(pa.table({"typed": pa.array([None] * 5, pa.string()), "untyped": pa.nulls(5)}), path)
    stats = compute_statistics([path])
    for name in ("typed", "untyped"):
        col = stats.column(name)
        assert col is not None and col.error is None
        assert col.null_count == 5
        assert col.unique_count == 0
    typed = stats.column("typed")
    assert typed is not None and typed.tokens is not None and typed.tokens.values == 0
    assert typed.tokens.words_mean is None


def test_schemas_that_differ_between_files(tmp_path: Path) -> None:
    # batch 0: "note" all null (null type), "extra" absent; batch 1: "note" strings, "extra" present;
    # "clash" is int64 in one file and string in the other
    a, b = tmp_path / "batch_00000.parquet", tmp_path / "batch_00001.parquet"
    pq.write_table(pa.table({"id": [1, 2], "note": pa.nulls(2), "clash": pa.array([1, 2])}), a)
    pq.write_table(
        pa.table({"id": [3, 4, 5], "note": ["x", "y", "x"], "extra": [1.0, None, 1.0], "clash": ["a", "b", None]}),
        b,
    )
    stats = compute_statistics([a, b])
    assert stats.num_records == 5
    assert [c.name for c in stats.columns] == ["id", "note", "clash", "extra"]
    note, extra, clash = stats.column("note"), stats.column("extra"), stats.column("clash")
    assert note is not None and note.arrow_type == "string" and (note.null_count, note.unique_count) == (2, 2)
    assert extra is not None and (extra.null_count, extra.unique_count) == (3, 1)  # absent in file 0: 2 nulls
    assert clash is not None
    assert clash.null_count == 1  # counted although the types disagree
    assert clash.unique_count is None and clash.error is not None and "disagree" in clash.error
    assert clash.arrow_type == "int64 | string"


def test_exact_up_to_the_bound_then_hyperloglog(tmp_path: Path) -> None:
    n = 30_000
    path = tmp_path / "many.parquet"
    pq.write_table(
        pa.table(
            {
                "id": pa.array(range(n), pa.int64()),
                "text": pa.array([f"row number {i}" for i in range(n)]),
                "few": pa.array([i % 7 for i in range(n)]),
            }
        ),
        path,
        row_group_size=4096,
    )
    stats = compute_statistics([path], exact_limit=5_000, batch_rows=4096)
    for name in ("id", "text"):
        col = stats.column(name)
        assert col is not None and col.unique_count is not None
        assert not col.unique_exact
        assert abs(col.unique_count - n) <= 4 * stats.hll_relative_error * n  # 4 standard errors
    few = stats.column("few")
    assert few is not None and few.unique_exact and few.unique_count == 7
    # the same under the default bound: exact
    exact = compute_statistics([path])
    assert all(c.unique_exact for c in exact.columns)
    assert [c.unique_count for c in exact.columns] == [n, n, 7]
    # estimates are deterministic (the card of an unchanged dataset does not change)
    again = compute_statistics([path], exact_limit=5_000, batch_rows=4096)
    assert [c.unique_count for c in again.columns] == [c.unique_count for c in stats.columns]


def test_count_distinct_across_chunks_exact_then_estimated() -> None:
    chunks = [pa.array([1.0, -0.0, None, math.nan]), pa.array([0.0, 2.0, math.nan, None])]
    assert count_distinct(chunks) == (4, True)  # 1, 0 (= -0.0), NaN, 2; nulls are not values
    assert count_distinct([pa.array([["a"], ["a"], ["b", "a"]])]) == (2, True)
    assert count_distinct([]) == (0, True)
    n = 20_000
    words = [pa.array([f"word {i}" for i in range(start, start + 1000)]) for start in range(0, n, 1000)]
    estimate, exact = count_distinct(words + words, exact_limit=2_000)  # every value twice
    assert not exact and abs(estimate - n) <= 0.05 * n
    assert count_distinct(words + words) == (n, True)


def test_an_estimated_distinct_count_stays_within_what_is_known() -> None:
    """All 100,000 values distinct: the sketch alone says about 100,241 (over 100 % on the card); the count is
    at most the values, and over the exact limit it went past."""
    n = 100_000
    unique = [pa.array([f"id-{i:08d}" for i in range(start, start + 10_000)]) for start in range(0, n, 10_000)]
    estimate, exact = count_distinct(unique, exact_limit=1_000)
    assert not exact and 1_001 <= estimate <= n
    few = [pa.array([f"v{i}" for i in range(1_001)])]  # just past the limit: never estimated below it
    assert count_distinct(few, exact_limit=1_000)[0] >= 1_001


def test_a_failing_statistic_is_na_for_that_column_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    root = make_dataset_folder(tmp_path / "ds", processor_dir=None, processor_file=None)
    paths = sorted((root / "parquet-files").glob("*.parquet"))
    real = statistics_module._canonical_keys

    def broken(values: pa.Array) -> pa.Array:
        if pa.types.is_floating(values.type):
            raise RuntimeError("hasher exploded")
        return real(values)

    monkeypatch.setattr(statistics_module, "_canonical_keys", broken)
    with caplog.at_level(logging.WARNING, logger="tasks.card.statistics"):
        stats = compute_statistics(paths)
    score = stats.column("score")
    assert score is not None
    assert score.unique_count is None
    assert score.errors == {"unique": "RuntimeError: hasher exploded"}
    assert score.null_count == 0  # the other statistics of the column still work
    assert "hasher exploded" in caplog.text and "'score'" in caplog.text
    ref = reference(paths)
    for col in stats.columns:
        if col.name != "score":
            assert col.error is None
            assert col.unique_count == ref["columns"][col.name]["unique"]


def test_unsupported_type_falls_back_not_crashes(tmp_path: Path) -> None:
    """A type the vectorised encoder does not know (here a dense union, read from memory) still gets counted."""
    union = pa.UnionArray.from_dense(
        pa.array([0, 1, 0, 1], pa.int8()),
        pa.array([0, 0, 1, 1], pa.int32()),
        [pa.array([1, 1]), pa.array(["a", "b"])],
    )
    keys = canonical_keys(union)
    assert len(keys) == 3  # 1, "a", "b"


def test_unreadable_and_truncated_files_do_not_raise(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    good = tmp_path / "batch_00000.parquet"
    pq.write_table(pa.table({"x": [1, 2, 3]}), good)
    bad = tmp_path / "batch_00001.parquet"
    bad.write_bytes(b"PAR1 this is not parquet")
    with caplog.at_level(logging.WARNING):
        stats = compute_statistics([good, bad])
    assert stats.num_records is None
    assert stats.error is not None and "batch_00001.parquet" in stats.error
    x = stats.column("x")
    assert x is not None and x.unique_count is None and x.null_count is None  # partial numbers are not shown
    assert "incomplete" in (x.error or "")


def test_a_file_failing_midway(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "batch_00000.parquet"
    pq.write_table(pa.table({"x": list(range(100))}), path, row_group_size=10)
    real = statistics_module._iter_batches

    def failing(pf: pq.ParquetFile, batch_rows: int):  # type: ignore[no-untyped-def]
        for i, batch in enumerate(real(pf, batch_rows)):
            if i == 2:
                raise OSError("disk went away")
            yield batch

    monkeypatch.setattr(statistics_module, "_iter_batches", failing)
    stats = compute_statistics([path], batch_rows=10)
    assert stats.num_records == 100  # from the footer
    assert stats.error is not None and "after 20 rows" in stats.error
    x = stats.column("x")
    assert x is not None and x.unique_count is None and x.null_count is None


def test_no_files() -> None:
    stats = compute_statistics([])
    assert stats.num_records == 0 and stats.columns == [] and stats.error is None


def test_arguments_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="batch_rows"):
        compute_statistics([], batch_rows=0)
    with pytest.raises(ValueError, match="exact_limit"):
        compute_statistics([], exact_limit=-1)
