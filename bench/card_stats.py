"""Benchmark of the dataset card statistics (``tasks.card.statistics.compute_statistics``) against a pandas full load.

    python -m bench.card_stats [--rows 1000000 4000000] [--row-group 100000] [--keep DIR]

For each size, this writes a 10-column dataset of that many rows into a temporary folder (with pyarrow, one row
group at a time, so generating it takes bounded memory). It then runs, each in a fresh subprocess:

- ``stats``: ``compute_statistics`` over the parquet files (streaming, record batch by record batch);
- ``pandas``: ``pandas.read_parquet`` of the whole dataset, then the same numbers (records, nulls, unique
  counts, word and token-estimate mean/min/max of the text columns);
- ``baseline``: the imports of ``stats`` and nothing else (the interpreter and library floor).

It prints a Markdown table with wall time and peak RSS of each subprocess. Peak RSS is measured by the parent from
the child's own resource usage (``os.wait4``, the per-child ``RUSAGE_CHILDREN``). It also checks that both
methods agree (exact counts equal; HyperLogLog estimates within 4 standard errors). This is a benchmark, not a
test: nothing here is timed by pytest.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

_WORD_TEXT = (
    "the of and to in is was for on that with as by at from his her an were are which this be or has had one "
    "not but all they their there been have who will more no if out so said what up its about into than them "
    "can only other new some could time these two may then do first any my now such like our over man me even "
    "most made after also did many before must through back years where much your way well down should because "
    "each just those people how too little state good very make world still own see men work long get here "
    "between both life being under never day same another know while last might us great old year off come "
    "since against go came right used take three über façade naïve 東京 données"
)
WORDS = _WORD_TEXT.split()

COLUMNS = [
    "id",
    "uuid",
    "category",
    "count",
    "score",
    "flag",
    "created_at",
    "text",
    "nickname",
    "tags",
]


def _generate(folder: Path, rows: int, row_group: int, seed: int = 0) -> list[Path]:
    """Write ``rows`` rows as ``batch_NNNNN.parquet`` files of up to 4 row groups each; bounded memory."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    vocab = pa.array(WORDS)
    categories = pa.array(["books", "music", "film", "games", "travel", "food", "sport"])
    nicknames = pa.array([f"user{i:05d}" for i in range(50_000)])
    tag_vocab = pa.array(["news", "howto", "review", "faq", "opinion", "story", "guide", "list"])
    base_time = np.datetime64("2024-01-01T00:00:00", "us").astype(np.int64)
    folder.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    writer: pq.ParquetWriter | None = None
    groups_in_file = 0
    start = 0
    while start < rows:
        n = min(row_group, rows - start)
        ids = np.arange(start, start + n, dtype=np.int64)
        # text: 8..40 words from the vocabulary plus the row id (so nearly every text is distinct)
        lengths = rng.integers(8, 41, n)
        word_cols = []
        for position in range(40):
            idx = pa.array(rng.integers(0, len(WORDS), n))
            words = pc.take(vocab, idx)
            word_cols.append(pc.if_else(pa.array(lengths > position), words, pa.nulls(n, pa.string())))
        text = pc.binary_join_element_wise(
            *word_cols, pc.cast(pa.array(ids), pa.string()), " ", null_handling="skip"
        )
        tag_len = rng.integers(0, 4, n)
        tag_offsets = np.concatenate([[0], np.cumsum(tag_len)]).astype(np.int32)
        tag_values = pc.take(tag_vocab, pa.array(rng.integers(0, len(tag_vocab), int(tag_offsets[-1]))))
        tags = pa.ListArray.from_arrays(pa.array(tag_offsets), tag_values)
        nick_idx = pa.array(rng.integers(0, len(nicknames), n), mask=rng.random(n) < 0.3)
        table = pa.table(
            {
                "id": pa.array(ids),
                "uuid": pa.array([f"{x:032x}" for x in rng.integers(0, 2**62, n)], pa.string()),
                "category": pc.take(categories, pa.array(rng.integers(0, len(categories), n))),
                "count": pa.array(rng.poisson(3.0, n).astype(np.int64)),
                "score": pa.array(np.round(rng.normal(0.5, 0.2, n), 4)),
                "flag": pa.array(rng.random(n) < 0.5),
                "created_at": pa.array(base_time + rng.integers(0, 10**12, n), pa.timestamp("us")),
                "text": text,
                "nickname": pc.take(nicknames, nick_idx),
                "tags": tags,
            }
        )
        if writer is None:
            path = folder / f"batch_{len(paths):05d}.parquet"
            paths.append(path)
            writer = pq.ParquetWriter(path, table.schema)
            groups_in_file = 0
        writer.write_table(table, row_group_size=row_group)
        groups_in_file += 1
        if groups_in_file == 4:
            writer.close()
            writer = None
        start += n
    if writer is not None:
        writer.close()
    return paths


# ---------------------------------------------------------------------------------------------------------------
# workers (run in a fresh subprocess each)


def _worker_generate(folder: Path, rows: int, row_group: int) -> dict[str, Any]:
    started = time.perf_counter()
    paths = _generate(folder, rows, row_group)
    return {
        "files": len(paths),
        "size_mib": sum(p.stat().st_size for p in paths) / 2**20,
        "seconds": time.perf_counter() - started,
    }


def _worker_baseline(folder: Path) -> dict[str, Any]:
    """The imports of the stats worker and nothing else: the floor under its peak RSS."""
    import tasks.card.statistics  # noqa: F401

    return {}


def _worker_stats(folder: Path) -> dict[str, Any]:
    from tasks.card.statistics import DEFAULT_BATCH_ROWS, compute_statistics

    files = sorted(folder.glob("*.parquet"))
    started = time.perf_counter()
    stats = compute_statistics(files)
    seconds = time.perf_counter() - started
    out: dict[str, Any] = {
        "seconds": seconds,
        "records": stats.num_records,
        "columns": {},
        "exact_limit": stats.exact_distinct_limit,
        "rel_err": stats.hll_relative_error,
        "batch_rows": DEFAULT_BATCH_ROWS,
    }
    for c in stats.columns:
        out["columns"][c.name] = {
            "nulls": c.null_count,
            "unique": c.unique_count,
            "exact": c.unique_exact,
            "tokens": c.tokens.model_dump(exclude={"method", "values"}) if c.tokens else None,
            "error": c.error,
        }
    return out


def _worker_pandas(folder: Path) -> dict[str, Any]:
    import pandas as pd

    started = time.perf_counter()
    df = pd.read_parquet(folder)
    out: dict[str, Any] = {"records": len(df), "columns": {}}
    for name in df.columns:
        col = df[name]
        non_null = col.dropna()
        # lists are unhashable in pandas: count them as tuples
        unique = non_null.map(tuple).nunique() if name == "tags" else non_null.nunique()
        tokens = None
        if name in ("uuid", "category", "text", "nickname"):
            text = non_null.astype(str)
            words = text.str.split().str.len()
            nbytes = text.str.encode("utf-8").str.len()
            est = (nbytes + 3) // 4
            tokens = {
                "words_mean": float(words.mean()),
                "words_min": int(words.min()),
                "words_max": int(words.max()),
                "tokens_mean": float(est.mean()),
                "tokens_min": int(est.min()),
                "tokens_max": int(est.max()),
            }
        out["columns"][name] = {"nulls": int(col.isna().sum()), "unique": int(unique), "tokens": tokens}
    out["seconds"] = time.perf_counter() - started
    return out


WORKERS = {"baseline": _worker_baseline, "stats": _worker_stats, "pandas": _worker_pandas}


def _run_worker(kind: str, folder: Path, *extra: str) -> dict[str, Any]:
    """Run one worker in a fresh interpreter; return its JSON plus wall seconds and peak RSS (MiB).

    The parent imports nothing heavy (no pyarrow, no data in memory): a child's peak RSS starts from its parent's
    RSS at fork time (Linux keeps the high-water mark across exec), so a fat parent would hide the child's.
    """
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.card_stats", "--worker", kind, str(folder), *extra],
        stdout=subprocess.PIPE,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert proc.stdout is not None
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} worker failed with exit code {proc.returncode}")
    result: dict[str, Any] = json.loads(output)
    result["wall"] = wall
    result["peak_mib"] = usage.ru_maxrss / 1024  # Linux: KiB
    return result


def _compare(stats: dict[str, Any], pandas: dict[str, Any], rel_err: float) -> list[str]:
    problems = []
    if stats["records"] != pandas["records"]:
        problems.append(f"records {stats['records']} != {pandas['records']}")
    for name, p in pandas["columns"].items():
        s = stats["columns"][name]
        if s["error"]:
            problems.append(f"{name}: {s['error']}")
        if s["nulls"] != p["nulls"]:
            problems.append(f"{name}: nulls {s['nulls']} != {p['nulls']}")
        if s["exact"] and s["unique"] != p["unique"]:
            problems.append(f"{name}: unique {s['unique']} != {p['unique']}")
        if not s["exact"] and abs(s["unique"] - p["unique"]) > 4 * rel_err * p["unique"]:
            problems.append(f"{name}: estimate {s['unique']} too far from {p['unique']}")
        if p["tokens"] is not None:
            for key, value in p["tokens"].items():
                if abs(s["tokens"][key] - value) > 1e-9 * max(1.0, abs(value)):
                    problems.append(f"{name}: {key} {s['tokens'][key]} != {value}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 4_000_000])
    parser.add_argument("--row-group", type=int, default=100_000)
    parser.add_argument("--skip-pandas", action="store_true", help="do not run the pandas comparison")
    parser.add_argument("--keep", type=Path, default=None, help="generate into DIR/<rows> and keep it")
    parser.add_argument("--worker", choices=[*sorted(WORKERS), "generate"], help=argparse.SUPPRESS)
    parser.add_argument("folder", nargs="?", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker == "generate":
        print(json.dumps(_worker_generate(args.folder, args.rows[0], args.row_group)))
        return 0
    if args.worker:
        print(json.dumps(WORKERS[args.worker](args.folder)))
        return 0

    rows_out = []
    failures = []
    for rows in args.rows:
        tmp = Path(tempfile.mkdtemp(prefix="card-bench-")) if args.keep is None else args.keep / str(rows)
        try:
            gen = _run_worker("generate", tmp, "--rows", str(rows), "--row-group", str(args.row_group))
            size_mib = gen["size_mib"]
            print(
                f"generated {rows:,} rows x {len(COLUMNS)} columns: {gen['files']} files, {size_mib:.0f} MiB, "
                f"{gen['seconds']:.1f} s (peak RSS {gen['peak_mib']:.0f} MiB)",
                file=sys.stderr,
            )
            base = _run_worker("baseline", tmp)
            stats = _run_worker("stats", tmp)
            pandas = None if args.skip_pandas else _run_worker("pandas", tmp)
            if pandas is not None:
                failures += [f"{rows:,} rows: {p}" for p in _compare(stats, pandas, stats["rel_err"])]
            estimated = [n for n, c in stats["columns"].items() if not c["exact"]]
            rows_out.append((rows, size_mib, base, stats, pandas, estimated))
        finally:
            if args.keep is None:
                shutil.rmtree(tmp, ignore_errors=True)

    first = rows_out[0][3]
    print()
    print(
        f"Card statistics, {len(COLUMNS)} columns, row groups of {args.row_group:,} rows, record batches of "
        f"{first['batch_rows']:,}, exact distinct bound {first['exact_limit']:,}/column "
        f"(HyperLogLog beyond, ±{first['rel_err']:.2%} std. error), {os.cpu_count()} CPUs."
    )
    print("Wall time is the whole subprocess (interpreter start and imports included); compute is the call alone.")
    print()
    print(
        "| rows | parquet | baseline RSS | card stats: compute / wall | card stats peak RSS "
        "| pandas: compute / wall | pandas peak RSS | HLL-estimated columns |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---|")
    for rows, size_mib, base, stats, pandas, estimated in rows_out:
        pandas_time = f"{pandas['seconds']:.2f} s / {pandas['wall']:.2f} s" if pandas else "—"
        pandas_rss = f"{pandas['peak_mib']:,.0f} MiB" if pandas else "—"
        print(
            f"| {rows:,} | {size_mib:,.0f} MiB | {base['peak_mib']:,.0f} MiB "
            f"| {stats['seconds']:.2f} s / {stats['wall']:.2f} s | {stats['peak_mib']:,.0f} MiB "
            f"| {pandas_time} | {pandas_rss} | {', '.join(estimated) or '—'} |"
        )
    print()
    if args.skip_pandas:
        print("pandas comparison skipped.")
    elif failures:
        print("MISMATCHES between card statistics and pandas:")
        for failure in failures:
            print(f"- {failure}")
        return 1
    else:
        print("All numbers agree with pandas (exact counts equal; estimates within 4 standard errors).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
