"""Column statistics of a parquet dataset, computed by streaming record batches with pyarrow (pure, no Prefect).

What is computed, per column, over all files:

- **Nulls**: the exact number of null values. A column that one file lacks counts as null for that file's rows.
- **Unique**: the number of distinct non-null values.

  - Exact up to :data:`EXACT_DISTINCT_LIMIT` distinct values per column (1,000,000 by default). Fixed-width
    values (integers, floats, booleans, dates, times, timestamps, durations) are kept as their 64-bit pattern
    (8 bytes each). Variable-length values (strings, binary, decimals, and nested lists/structs/maps after
    canonical encoding) are kept as 128-bit BLAKE2b digests (16 bytes each, whatever the value's length). With
    digests a count is exact unless two different values collide; the chance of that is below ``n**2 / 2**129``,
    about 1.5e-27 at the bound.
  - Above the bound the column switches to a HyperLogLog sketch (:mod:`tasks.card.hyperloglog`, 2**14 registers,
    relative standard error about 0.81 %) seeded with the exact set gathered so far, and
    :attr:`ColumnStatistics.unique_exact` becomes ``False``. Hashes are deterministic, so an unchanged dataset
    always gets the same estimate (and the same card).
  - Value identity is Arrow equality, with two exceptions: ``-0.0`` equals ``0.0``, and all NaNs are one
    value (not a null). Nested values (list, struct, map, fixed-size list) are encoded injectively and
    vectorised: every element is length-prefixed, nulls inside are marked. Types the encoder does not know (e.g.
    unions) go through canonical JSON of their Python value.

- **Tokens** (string columns only, non-null values): ``words``, whitespace-separated words using Unicode
  whitespace exactly as Python's ``str.split()`` (``pyarrow.compute.utf8_split_whitespace``); and
  ``tokens``, an estimate of ``ceil(UTF-8 bytes / 4)``, the usual rule of thumb for BPE tokenizers on English
  text. No tokenizer is used, so the numbers do not depend on what is installed.

Memory: one record batch at a time (``batch_rows`` rows, read from one row group), plus per column the exact key
set (at most the bound: 8 MiB of bit patterns or 16 MiB of digests per million) and the keys of recent batches
waiting to be merged into it (at most a quarter of the bound). Merges sort instead of hashing (``pc.unique``'s
hash table takes 60-240 MiB per million keys) and run one column at a time. Past the bound a column needs only
its 16 KiB sketch. None of this grows with the number of rows.

Failures: each statistic of each column is guarded on its own. A failure is logged with its reason, kept in
:attr:`ColumnStatistics.errors`, and the other statistics go on. A file that cannot be read makes every statistic
that depends on it fail (the numbers would be partial), but never raises.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import BaseModel, Field

from tasks.card.hyperloglog import (
    DEFAULT_PRECISION,
    SLICE_ROWS,
    HyperLogLog,
    as_uint64,
    digest128,
    hash64,
    hash64_from_digest128,
    is_fixed_width_hashable,
)

__all__ = [
    "DEFAULT_BATCH_ROWS",
    "EXACT_DISTINCT_LIMIT",
    "TEXT_STATS_METHOD",
    "ColumnStatistics",
    "DatasetStatistics",
    "TokenStatistics",
    "canonical_keys",
    "compute_statistics",
    "count_distinct",
]

logger = logging.getLogger(__name__)

EXACT_DISTINCT_LIMIT = 1_000_000
DEFAULT_BATCH_ROWS = 65_536
TEXT_STATS_METHOD = (
    "words: whitespace-separated (Unicode whitespace, as Python's str.split()); "
    "tokens: estimated as ceil(UTF-8 bytes / 4), no tokenizer"
)
# merge pending per-batch distinct keys into the exact set once they outnumber it (amortised O(n log n))
_MIN_CONSOLIDATE = 1 << 16

_LB = pa.large_binary()
_LB_EMPTY = pa.scalar(b"", _LB)
_LB_COLON = pa.scalar(b":", _LB)
_LB_NULL_MARK = pa.scalar(b"~", _LB)
_LB_NULL = pa.scalar(None, _LB)


class TokenStatistics(BaseModel):
    """Length statistics of a text column over its non-null values (see :data:`TEXT_STATS_METHOD`)."""

    method: str = TEXT_STATS_METHOD
    values: int = 0
    words_mean: float | None = None
    words_min: int | None = None
    words_max: int | None = None
    tokens_mean: float | None = None
    tokens_min: int | None = None
    tokens_max: int | None = None


class ColumnStatistics(BaseModel):
    """One column's statistics over all files; a statistic that failed is None, its reason in ``errors``.

    ``arrow_type`` is the type unified over the files (the types seen, joined by " | ", when they do not unify);
    ``unique_exact`` is False once ``unique_count`` is a HyperLogLog estimate; ``tokens`` is for text columns only.
    """

    name: str
    arrow_type: str
    is_text: bool = False
    null_count: int | None = None
    unique_count: int | None = None
    unique_exact: bool = True
    tokens: TokenStatistics | None = None
    errors: dict[str, str] = Field(default_factory=dict)
    error: str | None = None  # the errors joined, ``None`` when every statistic worked


class DatasetStatistics(BaseModel):
    """A dataset's statistics, as :func:`compute_statistics` returns them, with the settings the card quotes.

    ``num_records`` sums the parquet footers' row counts (None when a file cannot be read); ``columns`` come in
    order of first appearance over the files.
    """

    num_records: int | None
    columns: list[ColumnStatistics]
    num_files: int = 0
    exact_distinct_limit: int = EXACT_DISTINCT_LIMIT
    hll_relative_error: float = 1.04 / math.sqrt(1 << DEFAULT_PRECISION)
    token_method: str = TEXT_STATS_METHOD
    error: str | None = None  # a dataset-level failure (e.g. an unreadable file)

    @property
    def num_columns(self) -> int:
        """Number of columns over all files (one missing from some files still counts)."""
        return len(self.columns)

    def column(self, name: str) -> ColumnStatistics | None:
        """The statistics of column ``name``, or None when no file has it."""
        return next((c for c in self.columns if c.name == name), None)


# ---------------------------------------------------------------------------------------------------------------
# canonical keys: what "distinct" compares


def _is_stringish(type_: pa.DataType) -> bool:
    return (
        pa.types.is_string(type_)
        or pa.types.is_large_string(type_)
        or pa.types.is_binary(type_)
        or pa.types.is_large_binary(type_)
        or pa.types.is_fixed_size_binary(type_)
        or type_ in (pa.string_view(), pa.binary_view())
    )


def _is_text(type_: pa.DataType) -> bool:
    if pa.types.is_dictionary(type_):
        return _is_text(type_.value_type)
    return pa.types.is_string(type_) or pa.types.is_large_string(type_) or type_ == pa.string_view()


def _normalise_float(arr: pa.Array) -> pa.Array:
    arr = pc.add(arr, pa.scalar(0.0, arr.type))  # -0.0 + 0.0 == 0.0
    return pc.if_else(pc.is_nan(arr), pa.scalar(math.nan, arr.type), arr)


def _temporal_as_int(arr: pa.Array) -> pa.Array:
    type_ = arr.type
    if (
        pa.types.is_date(type_)
        or pa.types.is_time(type_)
        or pa.types.is_timestamp(type_)
        or pa.types.is_duration(type_)
    ):
        return arr.view(pa.int32() if type_.bit_width == 32 else pa.int64())
    return arr


def _json_payload(arr: pa.Array) -> pa.Array:
    """Fallback: canonical JSON of each Python value (nulls stay null)."""
    out = [
        None
        if value is None
        else json.dumps(value, sort_keys=True, default=repr, ensure_ascii=False, separators=(",", ":")).encode()
        for value in arr.to_pylist()
    ]
    return pa.array(out, _LB)


def _payload(arr: pa.Array) -> pa.Array:
    """An injective large_binary encoding of each value of ``arr`` (for one type); null where ``arr`` is null."""
    type_ = arr.type
    if pa.types.is_dictionary(type_):
        return _payload(arr.dictionary_decode())  # type: ignore[attr-defined]
    if pa.types.is_null(type_):
        return pa.nulls(len(arr), _LB)
    if is_fixed_width_hashable(type_):
        if pa.types.is_floating(type_):
            arr = _normalise_float(pc.cast(arr, pa.float64()))
        arr = _temporal_as_int(arr)
        return pc.cast(pc.cast(arr, pa.large_string()), _LB)
    if pa.types.is_decimal(type_):
        return pc.cast(pc.cast(arr, pa.large_string()), _LB)
    if _is_stringish(type_):
        return pc.cast(arr, _LB)
    if pa.types.is_fixed_size_list(type_):
        return _payload(pc.cast(arr, pa.large_list(type_.value_field)))
    if pa.types.is_list(type_) or pa.types.is_large_list(type_) or pa.types.is_map(type_):
        # a map's values are its key/value structs; element order is part of the value
        elements = _element(arr.values)  # type: ignore[attr-defined]
        offsets = pc.cast(arr.offsets, pa.int64())  # type: ignore[attr-defined]
        lists = pa.LargeListArray.from_arrays(offsets, elements, mask=arr.is_null())
        return pc.binary_join(lists, _LB_EMPTY)
    if pa.types.is_struct(type_):
        fields = [_element(child) for child in arr.flatten()]  # type: ignore[attr-defined]
        if not fields:
            joined = pa.array([b""] * len(arr), _LB)
        elif len(fields) == 1:
            joined = fields[0]
        else:
            joined = pc.binary_join_element_wise(*fields, _LB_EMPTY)
        return pc.if_else(arr.is_null(), _LB_NULL, joined)
    return _json_payload(arr)


def _element(arr: pa.Array) -> pa.Array:
    """Self-delimiting encoding of each value inside a nested value: ``<byte length>:<payload>``, ``~`` for null."""
    payload = _payload(arr)
    lengths = pc.cast(pc.cast(pc.binary_length(payload), pa.large_string()), _LB)
    return pc.fill_null(pc.binary_join_element_wise(lengths, payload, _LB_COLON), _LB_NULL_MARK)


def canonical_keys(values: pa.Array) -> pa.Array:
    """Distinct keys of the non-null ``values`` of one batch: equal keys if and only if equal values.

    Fixed-width types give the 64-bit pattern of their values as uint64 (``-0.0`` as ``0.0``, one NaN); every other
    type gives 128-bit digests of its values (of their canonical encoding when nested). Either way keys compare
    with plain equality and sort, which :func:`_sorted_distinct` relies on.
    """
    if values.null_count:
        values = values.drop_null()
    type_ = values.type
    if pa.types.is_dictionary(type_):
        values = values.dictionary_decode()  # type: ignore[attr-defined]
        type_ = values.type
    if len(values) == 0 or pa.types.is_null(type_):
        return pa.array([], pa.binary(16))
    if is_fixed_width_hashable(type_):
        return pc.unique(as_uint64(values))  # the value's 64-bit pattern (floats normalised)
    if _is_stringish(type_) or pa.types.is_decimal(type_):
        return digest128(pc.unique(values))
    return digest128(pc.unique(_payload(values)))


# ---------------------------------------------------------------------------------------------------------------
# accumulators


def _key_hashes(keys: pa.Array) -> pa.Array:
    """64-bit hashes of keys from :func:`canonical_keys`: digests already are hashes; bit patterns get mixed."""
    if pa.types.is_fixed_size_binary(keys.type):
        return hash64_from_digest128(keys)  # type: ignore[arg-type]
    return hash64(keys)


def _sorted_distinct(parts: list[pa.Array]) -> pa.Array:
    """Distinct values of ``parts`` (uint64 or fixed-size binary keys), by sorting.

    Used to merge large key sets: ``pc.unique`` is faster but its hash table needs 60-240 MiB for about a
    million keys, while sorting needs the keys, their sorted copy and 8 bytes of index per key.
    """
    keys = pa.concat_arrays(parts)
    parts.clear()
    ordered = pc.take(keys, pc.sort_indices(keys))
    del keys
    n = len(ordered)
    if n < 2:
        return ordered
    changed = pc.not_equal(ordered.slice(1), ordered.slice(0, n - 1))
    return pa.concat_arrays([ordered.slice(0, 1), pc.filter(ordered.slice(1), changed)])


class _DistinctCounter:
    """Exact distinct keys up to ``limit``, then a HyperLogLog sketch.

    Keys of each batch wait in ``pending`` and are merged into the exact set (one ``pc.unique`` over both) when
    they outnumber it, but never more than ``limit // 4`` of them: the merge costs amortised O(n log n) and its
    transient memory stays within about 1.25 times the exact set. ``merge_lock`` (shared by the columns of one
    pass) lets only one column merge at a time, so transients of several columns do not add up.
    """

    def __init__(self, limit: int, precision: int, merge_lock: threading.Lock | None = None) -> None:
        self.limit = limit
        self.precision = precision
        self.merge_lock = merge_lock or threading.Lock()
        self.exact: pa.Array | None = None
        self.pending: list[pa.Array] = []
        self.pending_len = 0
        self.sketch: HyperLogLog | None = None
        self.at_most = 0  # the sum of the batches' distinct counts: no estimate may exceed it

    def add(self, keys: pa.Array) -> None:
        """Count the distinct keys of one batch (each key once: see ``canonical_keys``)."""
        if len(keys) == 0:
            return
        self.at_most += len(keys)
        if self.sketch is not None:
            self.sketch.add_hashes(_key_hashes(keys))
            return
        self.pending.append(keys)
        self.pending_len += len(keys)
        exact_len = len(self.exact) if self.exact is not None else 0
        if self.pending_len >= max(_MIN_CONSOLIDATE, min(exact_len, self.limit // 4)):
            self._consolidate()

    def _consolidate(self) -> None:
        with self.merge_lock:
            parts = ([self.exact] if self.exact is not None else []) + self.pending
            self.exact, self.pending, self.pending_len = None, [], 0
            if not parts:
                return
            merged = parts[0] if len(parts) == 1 else _sorted_distinct(parts)
            del parts
            if len(merged) > self.limit:
                self.sketch = HyperLogLog(self.precision)
                for offset in range(0, len(merged), SLICE_ROWS):  # bounded temporaries
                    self.sketch.add_hashes(_key_hashes(merged.slice(offset, SLICE_ROWS)))
            else:
                self.exact = merged

    def result(self) -> tuple[int, bool]:
        """``(count, exact)``; an estimate is kept within what is known: over ``limit`` (the exact count went
        past it), at most the sum of the batches' distinct counts (so never over 100 % of the values)."""
        if self.sketch is None:
            self._consolidate()
        if self.sketch is None:
            return (len(self.exact) if self.exact is not None else 0), True
        return min(max(round(self.sketch.estimate()), self.limit + 1), self.at_most), False


def count_distinct(chunks: Iterable[pa.Array], *, exact_limit: int = EXACT_DISTINCT_LIMIT) -> tuple[int, bool]:
    """Distinct non-null values in ``chunks`` (the batches of one column), as ``(count, exact)``.

    Exact up to ``exact_limit`` distinct values and a HyperLogLog estimate above it, so memory stays bounded (16
    bytes per distinct value up to the limit) whatever the number of rows. Values compare as in the card's
    statistics: ``-0.0`` equals ``0.0``, NaN is one value, nested values compare by content.
    """
    counter = _DistinctCounter(exact_limit, DEFAULT_PRECISION)
    for chunk in chunks:
        counter.add(canonical_keys(chunk))
    return counter.result()


@dataclass
class _TokenCounter:
    values: int = 0
    words_sum: int = 0
    words_min: int | None = None
    words_max: int | None = None
    tokens_sum: int = 0
    tokens_min: int | None = None
    tokens_max: int | None = None

    def add(self, values: pa.Array) -> None:
        if values.null_count:
            values = values.drop_null()
        if len(values) == 0:
            return
        if pa.types.is_dictionary(values.type):
            values = values.dictionary_decode()  # type: ignore[attr-defined]
        if values.type == pa.string_view():
            values = pc.cast(values, pa.large_string())
        # split() on a blank string gives [""] and on edge whitespace empty pieces, so trim first and count
        # blank strings as 0 words: this equals len(s.split()) for every string
        trimmed = pc.utf8_trim_whitespace(values)
        words = pc.if_else(
            pc.equal(trimmed, ""), 0, pc.cast(pc.list_value_length(pc.utf8_split_whitespace(trimmed)), pa.int64())
        )
        tokens = pc.divide(pc.add(pc.cast(pc.binary_length(values), pa.int64()), 3), 4)
        self.values += len(values)
        for name, arr in (("words", words), ("tokens", tokens)):
            bounds = pc.min_max(arr)
            total = pc.sum(arr).as_py() or 0
            low, high = bounds["min"].as_py(), bounds["max"].as_py()
            setattr(self, f"{name}_sum", getattr(self, f"{name}_sum") + total)
            current_min, current_max = getattr(self, f"{name}_min"), getattr(self, f"{name}_max")
            setattr(self, f"{name}_min", low if current_min is None else min(current_min, low))
            setattr(self, f"{name}_max", high if current_max is None else max(current_max, high))

    def result(self) -> TokenStatistics:
        n = self.values
        return TokenStatistics(
            values=n,
            words_mean=self.words_sum / n if n else None,
            words_min=self.words_min,
            words_max=self.words_max,
            tokens_mean=self.tokens_sum / n if n else None,
            tokens_min=self.tokens_min,
            tokens_max=self.tokens_max,
        )


@dataclass
class _Column:
    name: str
    type: pa.DataType | None  # None: the files disagree on the type
    types_seen: list[str]
    limit: int
    precision: int
    merge_lock: threading.Lock
    nulls: int = 0
    errors: dict[str, str] = field(default_factory=dict)
    distinct: _DistinctCounter = field(init=False)
    tokens: _TokenCounter | None = field(init=False)

    def __post_init__(self) -> None:
        self.distinct = _DistinctCounter(self.limit, self.precision, self.merge_lock)
        self.tokens = _TokenCounter() if self.type is not None and _is_text(self.type) else None
        if self.type is None:
            reason = "the files disagree on its type: " + ", ".join(self.types_seen)
            self.fail("unique", reason)

    def fail(self, statistic: str, reason: str) -> None:
        if statistic in self.errors:
            return
        self.errors[statistic] = reason
        logger.warning("card statistics: %s of column %r is n/a: %s", statistic, self.name, reason)

    def guarded(self, statistic: str, action: Callable[[], None]) -> None:
        if statistic in self.errors:
            return
        try:
            action()
        except Exception as exc:  # a statistic must never abort the card
            self.fail(statistic, f"{type(exc).__name__}: {exc}")

    def statistics(self) -> list[str]:
        return ["nulls", "unique"] + (["tokens"] if self.tokens is not None else [])

    def add(self, arr: pa.Array | pa.ChunkedArray | None, rows: int) -> None:
        if arr is None:  # column absent from this file: its rows are null here
            self.nulls += rows
            return
        if isinstance(arr, pa.ChunkedArray):
            arr = pa.concat_arrays(arr.chunks) if arr.num_chunks != 1 else arr.chunk(0)
        chunk: pa.Array = arr

        def count_nulls() -> None:
            self.nulls += len(chunk) if pa.types.is_null(chunk.type) else chunk.null_count

        self.guarded("nulls", count_nulls)
        values: list[pa.Array] = []

        def prepare() -> pa.Array:
            if not values:
                prepared = chunk
                if self.type is not None and prepared.type != self.type and not pa.types.is_null(prepared.type):
                    prepared = pc.cast(prepared, self.type)
                values.append(prepared.drop_null() if prepared.null_count else prepared)
            return values[0]

        self.guarded("unique", lambda: self.distinct.add(_canonical_keys(prepare())))
        if self.tokens is not None:
            tokens = self.tokens
            self.guarded("tokens", lambda: tokens.add(prepare()))

    def result(self) -> ColumnStatistics:
        stats = ColumnStatistics(
            name=self.name,
            arrow_type=str(self.type) if self.type is not None else " | ".join(self.types_seen),
            is_text=self.tokens is not None,
        )
        if "nulls" not in self.errors:
            stats.null_count = self.nulls
        if "unique" not in self.errors:
            try:
                stats.unique_count, stats.unique_exact = self.distinct.result()
            except Exception as exc:
                self.fail("unique", f"{type(exc).__name__}: {exc}")
        if self.tokens is not None and "tokens" not in self.errors:
            try:
                stats.tokens = self.tokens.result()
            except Exception as exc:
                self.fail("tokens", f"{type(exc).__name__}: {exc}")
        stats.errors = dict(self.errors)
        stats.error = "; ".join(f"{k}: {v}" for k, v in self.errors.items()) or None
        return stats


def _canonical_keys(values: pa.Array) -> pa.Array:
    """Indirection so that tests can make one column's unique count fail."""
    return canonical_keys(values)


# ---------------------------------------------------------------------------------------------------------------
# the streaming pass


def _unified_type(types: list[pa.DataType]) -> pa.DataType | None:
    distinct: list[pa.DataType] = []
    for t in types:
        if t not in distinct:
            distinct.append(t)
    if len(distinct) == 1:
        return distinct[0]
    try:
        schemas = [pa.schema([pa.field("c", t)]) for t in distinct]
        return pa.unify_schemas(schemas, promote_options="permissive").field("c").type
    except (pa.ArrowException, TypeError, ValueError):
        return None


def _iter_batches(pf: pq.ParquetFile, batch_rows: int) -> Iterator[pa.RecordBatch]:
    yield from pf.iter_batches(batch_size=batch_rows, use_threads=True)


def compute_statistics(
    parquet_files: Sequence[Path | str],
    *,
    exact_limit: int = EXACT_DISTINCT_LIMIT,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    hll_precision: int = DEFAULT_PRECISION,
    threads: int | None = None,
) -> DatasetStatistics:
    """Statistics of the dataset made of ``parquet_files`` (in order), streaming one record batch at a time.

    Never raises for bad data: failures end up in ``errors``/``error`` of the column or the dataset (see the
    module docstring). ``num_records`` is the sum of the parquet footers' row counts.
    """
    if exact_limit < 0:
        raise ValueError("exact_limit must be >= 0")
    if batch_rows < 1:
        raise ValueError("batch_rows must be >= 1")
    paths = [Path(p) for p in parquet_files]
    dataset_errors: list[str] = []
    readable: list[tuple[Path, pa.Schema]] = []  # footers only: an open reader keeps a row group's buffers
    num_records: int | None = 0
    for path in paths:
        try:
            footer = pq.read_metadata(path)
            rows, schema = footer.num_rows, footer.schema.to_arrow_schema()
        except Exception as exc:
            reason = f"{path.name} cannot be read ({type(exc).__name__}: {exc})"
            logger.warning("card statistics: %s", reason)
            dataset_errors.append(reason)
            num_records = None
            continue
        readable.append((path, schema))
        if num_records is not None:
            num_records += rows

    # columns in order of first appearance; one type per column, unified over the files
    merge_lock = threading.Lock()
    types: dict[str, list[pa.DataType]] = {}
    for _, schema in readable:
        for fld in schema:
            types.setdefault(fld.name, []).append(fld.type)
    columns = {
        name: _Column(
            name=name,
            type=_unified_type(seen),
            types_seen=list(dict.fromkeys(str(t) for t in seen)),
            limit=exact_limit,
            precision=hll_precision,
            merge_lock=merge_lock,
        )
        for name, seen in types.items()
    }
    for reason in dataset_errors:
        for column in columns.values():
            for statistic in column.statistics():
                column.fail(statistic, f"incomplete: {reason}")

    default_threads = min(8, os.cpu_count() or 1)
    workers = max(1, min(threads if threads is not None else default_threads, len(columns) or 1))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="card-stats") as pool:
        for path, schema in readable:
            names = set(schema.names)
            done = 0
            try:
                with pq.ParquetFile(path) as pf:
                    for batch in _iter_batches(pf, batch_rows):
                        work = [
                            (column, batch.column(name) if name in names else None)
                            for name, column in columns.items()
                        ]
                        if workers == 1:
                            for column, values in work:
                                column.add(values, batch.num_rows)
                        else:  # columns are independent; pyarrow kernels release the GIL, so columns overlap
                            jobs = [pool.submit(column.add, values, batch.num_rows) for column, values in work]
                            for job in jobs:
                                job.result()
                        done += batch.num_rows
            except Exception as exc:
                reason = f"{path.name} failed after {done} rows ({type(exc).__name__}: {exc})"
                logger.warning("card statistics: %s", reason)
                dataset_errors.append(reason)
                for column in columns.values():
                    for statistic in column.statistics():
                        column.fail(statistic, f"incomplete: {reason}")

    return DatasetStatistics(
        num_records=num_records,
        columns=[column.result() for column in columns.values()],
        num_files=len(paths),
        exact_distinct_limit=exact_limit,
        hll_relative_error=HyperLogLog(hll_precision).relative_error,
        error="; ".join(dataset_errors) or None,
    )
