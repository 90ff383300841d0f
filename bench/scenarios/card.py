"""Scenario 4: card statistics (``tasks.card.statistics.compute_statistics``, streaming) vs a pandas full load, on
generated 10-column datasets; wall time and peak RSS of each, in fresh processes.

The dataset generator and the workers are ``bench/card_stats.py``'s (the card team's benchmark): its
``_run_worker`` starts ``python -m bench.card_stats --worker KIND FOLDER`` and measures it with ``os.wait4``.
The datasets are cached in ``.bench-cache/card-stats-rg<row group>/<rows>/``.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from bench import card_stats
from bench.measure import interleave
from bench.scenarios.context import CACHE, Context


def ensure_dataset(ctx: Context, rows: int, row_group: int) -> tuple[Path, dict[str, Any]]:
    folder = CACHE / f"card-stats-rg{row_group}" / str(rows)
    ready = folder.with_name(f"{rows}.ready")
    if not ready.exists():
        ctx.log(f"generating the {rows:,}-row card-statistics dataset (cached for later runs) ...")
        shutil.rmtree(folder, ignore_errors=True)
        card_stats._run_worker("generate", folder, "--rows", str(rows), "--row-group", str(row_group))
        ready.write_text("ok\n")
    files = sorted(folder.glob("*.parquet"))
    return folder, {"rows": rows, "row_group": row_group, "files": len(files),
                    "bytes": sum(p.stat().st_size for p in files)}  # fmt: skip


def card_scenario(ctx: Context, sizes: list[int], row_group: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for rows in sizes:
        folder, info = ensure_dataset(ctx, rows, row_group)
        ctx.log(f"card statistics on {rows:,} rows ({info['bytes'] / 2**20:.0f} MiB of parquet):")
        seen: dict[str, dict[str, Any]] = {}

        def worker(kind: str, folder: Path = folder, seen: dict[str, dict[str, Any]] = seen):
            def one(round_no: int) -> dict[str, Any]:
                r = card_stats._run_worker(kind, folder)
                seen[kind] = r
                return {"wall_s": r["wall"], "compute_s": r.get("seconds", 0.0), "peak_rss_mib": r["peak_mib"]}

            return one

        runs = interleave({k: worker(k) for k in ("stats", "pandas", "baseline")}, ctx.repeats, progress=ctx.log)
        problems = card_stats._compare(seen["stats"], seen["pandas"], seen["stats"]["rel_err"])
        out[str(rows)] = {"dataset": info, "runs": runs, "agree_with_pandas": not problems,
                          "mismatches": problems, "batch_rows": seen["stats"]["batch_rows"]}  # fmt: skip
    return out
