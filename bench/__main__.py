"""``python -m bench [--quick] [--out results.json]``: this project measured side by side with the tools users
would pick instead (one ``upload_folder``, Data Designer 0.9.6, ``datasets``), on one machine, in one run.

Scenarios (``--only`` picks some): ``push`` (1: first push, 2: identical re-push), ``link`` (1b: the first push
with latency injected at the Hub), ``uplink`` (1c: push and re-push over that link with a 2 Mbit/s uplink),
``retry`` (3), ``card`` (4), ``generation`` (5), ``floor`` (6). What it sets up:

- a work dir in the system temp dir (removed at the end unless ``--keep``);
- the embedded Hub (``python -m localhub``) and one ``prefect server start`` for our push, as child processes;
- the Data Designer venv (``.bench-cache/dd-venv-0.9.6``, built on first use, see ``bench.dd_venv``);
- the 100,000-record folder of the no-LLM example made by our generation flow (40 batches of 2,500),
  cached in ``.bench-cache/`` (``--quick``: 10,000 records in 40 batches of 250).

Every measured tool runs in its own process (fresh ``HF_HOME``, ``HF_ENDPOINT`` on the embedded Hub,
``HF_HUB_DISABLE_XET=1``, ``HF_TOKEN``); tools are interleaved round by round (A B C D, A B C D, ...). The
Markdown report goes to stdout; progress to stderr; ``--out`` writes every figure as JSON.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SCENARIOS = ("push", "link", "uplink", "images", "retry", "card", "generation", "floor")


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="The staged push, card statistics and generation measured side by side with one upload_folder, "
        "Data Designer 0.9.6 and datasets, on one machine, in one run.",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, 2 rounds: a smoke run of a few minutes")
    parser.add_argument("--out", type=Path, help="write every figure as JSON to this file")
    parser.add_argument("--repeats", type=int, help="rounds per scenario (default 3, --quick 2)")
    parser.add_argument("--only", help=f"comma-separated subset of {','.join(SCENARIOS)}")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs, Hub data) and print it")
    parser.add_argument("--render", type=Path, metavar="JSON", help="print the report of an earlier --out file")
    args = parser.parse_args(argv)
    if args.render:
        from bench.report import build

        print(build(json.loads(args.render.read_text())["raw"])[0])
        return 0
    only = [s.strip() for s in args.only.split(",")] if args.only else list(SCENARIOS)
    unknown = [s for s in only if s not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenarios {unknown}; choose among {', '.join(SCENARIOS)}")

    from bench.dd_venv import DD_VERSION, dd_versions, ensure_dd_venv
    from bench.report import build
    from bench.scenarios.context import Context

    quick = args.quick
    repeats = args.repeats or (2 if quick else 3)
    records, batch = (10_000, 250) if quick else (100_000, 2_500)
    card_rows = [100_000, 400_000] if quick else [1_000_000, 4_000_000]
    gen_sizes = [2_000] if quick else [10_000, 100_000]
    # Data Designer makes a few hundred records/s: 100,000 records take minutes per round, so two rounds there.
    gen_repeats = {n: (repeats if n <= 10_000 else min(repeats, 2)) for n in gen_sizes}

    work = Path(tempfile.mkdtemp(prefix="hfds-bench-"))
    (work / "logs").mkdir()
    ctx = Context(work=work, quick=quick, repeats=repeats, log=_log)
    command = (
        "python -m bench" + (" --quick" if quick else "") + (f" --repeats {args.repeats}" if args.repeats else "")
    )
    command += f" --only {args.only}" if args.only else ""
    raw: dict[str, Any] = {
        "meta": {
            "command": command,
            "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "repeats": repeats,
            "quick": quick,
            "data_designer_requested": DD_VERSION,
        }
    }
    started = time.perf_counter()
    try:
        if {"push", "link", "uplink", "generation"} & set(only):
            ensure_dd_venv(log=_log)
            raw["meta"]["data_designer_venv"] = dd_versions()
        _log(f"work dir {work}; starting the embedded Hub and a Prefect server ...")
        ctx.start_hub()
        raw["meta"]["prefect_server_start_s"] = ctx.start_prefect()
        from bench.scenarios import push as push_scenarios

        # the push-side scenarios share one folder, made (or cached) once
        if {"push", "link", "uplink", "images", "retry", "floor"} & set(only):
            folder, info = push_scenarios.ensure_folder(ctx, records, batch)
            raw["folder"] = info
            if "push" in only:
                _log("scenarios 1-2: push and identical re-push ...")
                raw["push"] = push_scenarios.push_scenarios(ctx, folder)
            if "link" in only:
                _log("scenario 1b: push over a simulated link ...")
                raw["link"] = push_scenarios.link_scenario(ctx, folder)
                raw["meta"]["link"] = push_scenarios.LINK
            if "uplink" in only:
                _log("scenario 1c: push and re-push over a slow uplink ...")
                raw["uplink"] = push_scenarios.uplink_scenario(ctx, folder)
                raw["meta"]["uplink"] = {
                    **push_scenarios.LINK,
                    "upload_bytes_per_s": push_scenarios.UPLINK_BYTES_PER_S,
                }
            if "images" in only:
                images = 1_000 if quick else 10_000
                _log(f"scenario 1d: push and re-push with {images:,} image files ...")
                image_folder, raw["meta"]["images"] = push_scenarios.ensure_image_folder(ctx, folder, images)
                raw["images"] = push_scenarios.images_scenario(ctx, image_folder)
            if "retry" in only:
                _log("scenario 3: retry after a failure at the processors stage ...")
                raw["retry"] = push_scenarios.retry_scenario(ctx, folder, info)
            if "floor" in only:
                _log("scenario 6: the floor (copy, sha256) ...")
                raw["floor"] = push_scenarios.floor_scenario(ctx, folder)
        raw["meta"]["prefect_server_peak_rss_mib"] = ctx.process_peak_rss("prefect")
        raw["meta"]["hub_peak_rss_mib"] = ctx.process_peak_rss("hub")
        if "card" in only:
            from bench.scenarios.card import card_scenario

            _log("scenario 4: card statistics ...")
            raw["card"] = card_scenario(ctx, card_rows, 100_000)
        if "generation" in only:
            from bench.scenarios.generation import INNER_REPEATS, generation_scenario

            _log("scenario 5: generation ...")
            raw["generation"] = generation_scenario(ctx, gen_sizes, gen_repeats)
            raw["meta"]["generation_inner_repeats"] = INNER_REPEATS
    except BaseException:
        args.keep = True  # the logs of the failed child are there
        raise
    finally:
        ctx.stop()
        raw["meta"]["total_s"] = time.perf_counter() - started
        if args.keep:
            _log(f"kept the work dir {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    text, doc = build(raw)
    print(text)
    if args.out:
        args.out.write_text(json.dumps(doc, indent=2, default=str))
        _log(f"wrote {args.out}")
    _log(f"done in {raw['meta']['total_s']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
