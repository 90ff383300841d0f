"""Scenario 5: generation of the no-LLM example (examples/multilingual_greetings.yaml): our flow vs Data
Designer 0.9.6 on the same config, records/s; and what checkpointing to the Hub costs.

Ours is measured by ``bench/generation.py`` (the generation team's benchmark), run as a child:
``python -m bench.generation --records N --batch-size 1000 --interval 1 --repeat 9 --json FILE``. It warms Prefect's
ephemeral API up, then times whole flow runs: ``plain``, ``checkpoint`` (a commit at most every second to a
branch of its own embedded Hub), ``checkpoint-bg-hub`` (the same to a second embedded Hub that runs in the
background, niceness +10: its work takes only the CPU the run leaves, as on huggingface.co, where the Hub's work is
not on the user's cores) and ``checkpoint+flush``, plus the engine alone (no Prefect).

Data Designer runs ``DataDesigner.create`` on the very same YAML (it is Data Designer's builder-config format)
in its own venv, with its default buffer of 1,000 records; ``op_s`` is the ``create`` call (its profiling
step included, as for any user), without interpreter start and imports.
"""

from __future__ import annotations

import json
import shutil
from typing import Any

from bench.dd_venv import ensure_dd_venv
from bench.measure import ROOT, interleave, python_child, run_child
from bench.scenarios.context import Context

EXAMPLE = ROOT / "examples" / "multilingual_greetings.yaml"
BATCH = 1000
# Plain and checkpointed runs alternate this many times within each round: a 100k-record run lasts a few
# seconds, and single runs of the same code differ by up to 20 % here. Three per round still left rounds 8 points
# apart, five left them 10 points apart; so the report pools every run of every round (bench.report) and
# gives the checkpoint's cost with a bootstrap interval.
INNER_REPEATS = 9


def generation_scenario(ctx: Context, sizes: list[int], repeats_by_size: dict[int, int]) -> dict[str, Any]:
    dd_python = ensure_dd_venv(log=ctx.log)
    out: dict[str, Any] = {}
    for n in sizes:
        ctx.log(f"generation of {n:,} records:")

        def ours(round_no: int, n: int = n) -> dict[str, Any]:
            home = ctx.fresh_dir("gen-ours")
            json_file = home / "rows.json"
            run = run_child(
                python_child("bench.generation", "--records", str(n), "--batch-size", str(BATCH),
                             "--interval", "1", "--repeat", str(INNER_REPEATS), "--json", str(json_file)),
                env={**ctx.clean_env(), "PYTHONUNBUFFERED": "1"},
                log=ctx.work / "logs" / f"gen-ours-{n}-{round_no}.log",
            )  # fmt: skip
            row = json.loads(json_file.read_text())[0]
            return {
                "wall_s": run.wall_s,
                "plain_s": row["plain_s"],
                "engine_s": row["engine_s"],
                "checkpoint_s": row["checkpoint_s"],
                "flush_s": row["flush_s"],
                "checkpoint_bg_hub_s": row["checkpoint_bg_hub_s"],
                "checkpoint_commits": row["commits"],
                "records_per_s": n / row["plain_s"],
                "engine_records_per_s": n / row["engine_s"],
                "checkpoint_records_per_s": n / row["checkpoint_s"],
                "checkpoint_slowdown_pct": 100 * (row["checkpoint_s"] / row["plain_s"] - 1),
                "flush_slowdown_pct": 100 * (row["flush_s"] / row["plain_s"] - 1),
                "checkpoint_bg_hub_slowdown_pct": 100 * (row["checkpoint_bg_hub_s"] / row["plain_s"] - 1),
                # every run, in the order they alternated: the report pools them over the rounds (bench.report)
                "plain_runs": row["runs"]["plain"],
                "checkpoint_runs": row["runs"]["checkpoint"],
                "checkpoint_bg_hub_runs": row["runs"]["checkpoint-bg-hub"],
            }

        def data_designer(round_no: int, n: int = n) -> dict[str, Any]:
            home = ctx.fresh_dir("gen-dd")
            env = {**ctx.clean_env(), "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HOME": str(home / "hf-home")}
            run = run_child(
                python_child("bench.peers", "dd-generate", str(EXAMPLE), str(n), str(home / "artifacts"),
                             python=dd_python),
                env=env, log=ctx.work / "logs" / f"gen-dd-{n}-{round_no}.log",
            )  # fmt: skip
            shutil.rmtree(home / "artifacts", ignore_errors=True)
            return {"wall_s": run.wall_s, "op_s": run.result["op_s"], "records_per_s": run.result["records_per_s"],
                    "peak_rss_mib": run.peak_rss_mib}  # fmt: skip

        repeats = repeats_by_size.get(n, ctx.repeats)
        out[str(n)] = interleave({"ours": ours, "data_designer": data_designer}, repeats, progress=ctx.log)
    return out
