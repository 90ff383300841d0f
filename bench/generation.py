"""Benchmark of the generation flow on the no-LLM example, with and without checkpoints to the embedded Hub.

    python -m bench.generation [--records 10000 100000] [--batch-size 1000] [--interval 1] [--json FILE]

The parent starts ``localhub.LocalHub`` and runs the measurements in a child process whose environment points
``huggingface_hub`` at it (``HF_ENDPOINT``, ``HF_HUB_DISABLE_XET=1`` must be set before the library is
imported). The child warms Prefect's ephemeral API up with a small run, then, for each size, runs
``generate_dataset`` (wall time of the whole flow run, Prefect included):

- ``plain``: no checkpoint: records/s;
- ``checkpoint``: checkpoints every ``--interval`` seconds to a branch of a Hub repo, ``final_flush=False``:
  what checkpointing costs while generating;
- ``checkpoint+flush``: the same with the final flush (which waits for the interval to elapse since the last
  commit, by design: at most one commit per interval).

It also times the engine alone (``write_batch`` in a loop, no Prefect) to show the orchestration overhead. It
prints a Markdown table; this is a benchmark, not a test.
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

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "multilingual_greetings.yaml"
BENCH_USER, BENCH_TOKEN = "bench", "hf_bench_token"


def _child(args: argparse.Namespace) -> int:
    """Runs inside the child process, with HF_ENDPOINT already set."""
    from huggingface_hub import HfApi
    from pydantic import SecretStr

    from flows.generate import generate_dataset
    from tasks.generation.batch import write_batch
    from tasks.generation.checkpoint import CheckpointTarget
    from tasks.generation.plan import get_plan
    from tasks.generation.source import from_config

    work = Path(args.work)
    config = from_config(EXAMPLE)
    generate_dataset(config, 2000, work / "warmup", batch_size=args.batch_size)  # starts the ephemeral API
    api = HfApi(token=BENCH_TOKEN)
    rows: list[dict[str, Any]] = []
    for n in args.records:
        plan = get_plan(config)
        engine_dir = work / f"engine-{n}"
        started = time.perf_counter()
        for i in range(-(-n // args.batch_size)):
            write_batch(plan, engine_dir, seed=0, batch_index=i, num_rows=min(args.batch_size, n - i * args.batch_size))
        engine = time.perf_counter() - started
        shutil.rmtree(engine_dir)

        results: dict[str, float] = {}
        commits: dict[str, int] = {}
        for mode in ("plain", "checkpoint", "checkpoint+flush"):
            out = work / f"{mode.replace('+', '-')}-{n}"
            checkpoint = None
            if mode != "plain":
                repo = f"{BENCH_USER}/gen-bench-{n}-{mode.replace('+', '-')}"
                api.create_repo(repo, repo_type="dataset", exist_ok=True)
                checkpoint = CheckpointTarget(
                    repo_id=repo,
                    branch="checkpoint",
                    interval_seconds=args.interval,
                    token=SecretStr(BENCH_TOKEN),
                    final_flush=mode == "checkpoint+flush",
                )
            started = time.perf_counter()
            result = generate_dataset(config, n, out, batch_size=args.batch_size, checkpoint=checkpoint, resume=False)
            results[mode] = time.perf_counter() - started
            commits[mode] = len(result.checkpoint_commits)
            assert result.num_records == n
            shutil.rmtree(out)
        rows.append(
            {
                "records": n,
                "engine_s": engine,
                "plain_s": results["plain"],
                "checkpoint_s": results["checkpoint"],
                "flush_s": results["checkpoint+flush"],
                "commits": commits["checkpoint"],
                "commits_flush": commits["checkpoint+flush"],
            }
        )
    Path(args.json_out).write_text(json.dumps(rows))
    return 0


def _table(rows: list[dict[str, Any]], interval: float) -> str:
    lines = [
        f"| records | engine only rec/s | flow rec/s | checkpoint every {interval:g}s: rec/s (slowdown, commits) "
        "| + final flush: s (slowdown, commits) |",
        "|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        n = r["records"]
        slow = 100 * (r["checkpoint_s"] / r["plain_s"] - 1)
        slow_flush = 100 * (r["flush_s"] / r["plain_s"] - 1)
        lines.append(
            f"| {n:,} | {n / r['engine_s']:,.0f} | {n / r['plain_s']:,.0f} ({r['plain_s']:.1f} s) "
            f"| {n / r['checkpoint_s']:,.0f} ({slow:+.1f} %, {r['commits']}) "
            f"| {r['flush_s']:.1f} ({slow_flush:+.1f} %, {r['commits_flush']}) |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Parse arguments; as the parent, start the Hub and the child; print the table."""
    parser = argparse.ArgumentParser(prog="python -m bench.generation", description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--interval", type=float, default=1.0, help="checkpoint interval in seconds")
    parser.add_argument("--json", help="also write the measurements to this file")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--json-out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return _child(args)

    from localhub import LocalHub

    work = Path(tempfile.mkdtemp(prefix="hfds-bench-gen-"))
    hub = LocalHub(work / "hub", port=0, users={BENCH_USER: BENCH_TOKEN}).start()
    try:
        env = dict(os.environ)
        env.update(
            {
                "HF_ENDPOINT": hub.url,
                "HF_HUB_DISABLE_XET": "1",
                "HF_TOKEN": BENCH_TOKEN,
                "HF_HOME": str(work / "hf-home"),
                "HF_HUB_DISABLE_PROGRESS_BARS": "1",
                "HF_HUB_DISABLE_TELEMETRY": "1",
                "PREFECT_HOME": str(work / "prefect-home"),
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                "PREFECT_LOGGING_LEVEL": "WARNING",
            }
        )
        env.pop("PREFECT_API_URL", None)  # the ephemeral API, like a first-time user
        json_out = work / "results.json"
        command = [
            sys.executable, "-m", "bench.generation", "--child", "--work", str(work / "runs"),
            "--json-out", str(json_out), "--batch-size", str(args.batch_size), "--interval", str(args.interval),
            "--records", *map(str, args.records),
        ]
        print(f"running {' '.join(command[2:])} against the embedded Hub at {hub.url} ...", file=sys.stderr)
        child = subprocess.run(command, env=env, cwd=ROOT)
        if child.returncode != 0:
            print(f"benchmark child failed with exit code {child.returncode}", file=sys.stderr)
            return child.returncode
        rows = json.loads(json_out.read_text())
    finally:
        hub.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(f"no-LLM example ({EXAMPLE.name}), batch size {args.batch_size}, {os.cpu_count()} CPUs")
    print(_table(rows, args.interval))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
