"""Push scenarios: the same folder pushed by each tool (1), the same over a simulated link to a distant Hub
(1b) and over a slow uplink (1c), the folder with many image files added (1d), pushed again unchanged (2), a retried push after a failure at the processors stage (3), and the machine's
floor for the same bytes (6).

Each push is a child process (``bench.push`` for ours, ``bench.peers`` for the others) against the embedded
Hub; the Hub's request log, cleared before each push, gives the commits created and the bytes received.
"""

from __future__ import annotations

import hashlib
import math
import random
import shutil
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from bench.measure import ROOT, interleave, python_child, run_child
from bench.scenarios.context import CACHE, Context

EXAMPLE = ROOT / "examples" / "multilingual_greetings.yaml"
TOOLS = ("staged", "upload_folder", "upload_folder_flow", "dd_push", "datasets")
EARLIER_STAGE_TITLES = ("Upload dataset card", "Upload main dataset files", "Upload images")


# --- the dataset folder -----------------------------------------------------------------------------------------


def _generator_fingerprint() -> str:
    """Digest of the generator's code and the example config: what the cached folder's bytes depend on."""
    sources = [
        EXAMPLE,
        *sorted((ROOT / "tasks" / "generation").rglob("*.py")),
        ROOT / "tasks" / "card" / "statistics.py",  # metadata.json's distinct counts
        ROOT / "flows" / "generate.py",
    ]
    digest = hashlib.sha256()
    for path in sources:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:10]


def ensure_folder(ctx: Context, records: int, batch_size: int) -> tuple[Path, dict[str, Any]]:
    """The Data Designer-shaped folder of the no-LLM example, made by our generation flow and cached in
    ``.bench-cache/`` (it is deterministic: seed 0) under a name that changes with the generator's code."""
    name = f"greetings-{records}-b{batch_size}"
    folder = CACHE / f"{name}-{_generator_fingerprint()}"
    ready = folder.with_name(folder.name + ".ready")
    if not ready.exists():
        for stale in [CACHE / name, *CACHE.glob(f"{name}-*"), *CACHE.glob(f"{name}.*")]:  # of earlier generators
            if stale.is_dir():
                shutil.rmtree(stale)
            elif stale.exists():
                stale.unlink()
        ctx.log(f"generating the {records:,}-record folder into {folder} (cached for later runs) ...")
        env = ctx.hub_env(ctx.fresh_dir("generate-folder"), prefect=True)
        run = run_child(
            python_child(
                "flows.generate", str(EXAMPLE), "--num-records", str(records), "--batch-size", str(batch_size),
                "--output", str(folder), "--no-resume",
            ),
            env=env, log=ctx.work / "logs" / "generate-folder.log",
        )  # fmt: skip
        ready.write_text(f"{run.wall_s:.1f}\n")
    files = _published_files(folder)
    data = sorted((folder / "parquet-files").glob("*.parquet"))
    processors = sorted(p for p in (folder / "processors-files").iterdir()) if (folder / "processors-files").exists() else []
    info = {
        "records": records,
        "batch_size": batch_size,
        "files": len(files),
        "data_files": len(data),
        "processor_outputs": [p.name.removesuffix(".parquet") for p in processors],
        "bytes": sum(p.stat().st_size for p in files),
        "images": sum(1 for _ in (folder / "images").rglob("*")) if (folder / "images").exists() else 0,
    }
    return folder, info


def _published_files(folder: Path) -> list[Path]:
    """What a push publishes: hidden files (the generation state, the folder's lock) are not part of the dataset."""
    return [p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")]


# --- scenario 1 and 2: first push and identical re-push ---------------------------------------------------------


def _tool_command(ctx: Context, tool: str, folder: Path, repo: str) -> list[str]:
    if tool == "staged":
        return python_child("bench.push", "run", str(folder), repo)
    if tool == "dd_push":
        from bench.dd_venv import ensure_dd_venv

        return python_child("bench.peers", "dd-push", str(folder), repo, python=ensure_dd_venv(log=ctx.log))
    commands = {"upload_folder": "upload-folder", "upload_folder_flow": "upload-folder-flow", "datasets": "datasets"}
    return python_child("bench.peers", commands[tool], str(folder), repo)


def _measured_push(ctx: Context, tool: str, folder: Path, repo: str, home: Path, label: str) -> dict[str, Any]:
    env = ctx.hub_env(home, prefect=tool in ("staged", "upload_folder_flow"))
    ctx.clear_requests()
    run = run_child(_tool_command(ctx, tool, folder, repo), env=env, log=ctx.work / "logs" / f"{label}.log")
    stats = ctx.hub_stats()
    extra = {"stage_s": float(run.result["stage_s"])} if "stage_s" in run.result else {}
    return {
        **extra,
        "wall_s": run.wall_s,
        "op_s": float(run.result.get("op_s", math.nan)),
        "import_s": float(run.result.get("import_s", math.nan)),
        "peak_rss_mib": run.peak_rss_mib,
        "commits": stats["commits"],
        "requests": stats["requests"],
        "bytes_sent": stats["bytes_in"],
        "lfs_bytes": stats["lfs_bytes_in"],
    }


def _push_and_repush(ctx: Context, tool: str, folder: Path, repo: str, home: Path, label: str) -> dict[str, Any]:
    """A first push of ``folder`` to ``repo``, then the identical re-push: ``first.*``, ``repush.*`` figures."""
    first = _measured_push(ctx, tool, folder, repo, home, f"{label}-first")
    again = _measured_push(ctx, tool, folder, repo, home, f"{label}-repush")
    return {**{f"first.{k}": v for k, v in first.items()}, **{f"repush.{k}": v for k, v in again.items()},
            "repush.time_ratio": again["wall_s"] / first["wall_s"]}  # fmt: skip


PushRun = Callable[[str, str, Path, str], dict[str, Any]]  # (tool, repo, home, label) -> figures


def _tool_rounds(ctx: Context, prefix: str, tools: Iterable[str], run: PushRun) -> dict[str, Callable[[int], Any]]:
    """Per tool, what one round does: ``run`` it with a fresh repo and home named ``<prefix><tool>``."""

    def tool_round(tool: str) -> Callable[[int], Any]:
        name = f"{prefix}{tool}"
        return lambda round_no: run(tool, ctx.repo(name.replace("_", "-")), ctx.fresh_dir(name), f"{name}-{round_no}")

    return {tool: tool_round(tool) for tool in tools}


def push_scenarios(ctx: Context, folder: Path) -> dict[str, Any]:
    """Scenarios 1 and 2, interleaved: per round, each tool pushes to a fresh repo, then pushes again."""

    def push(tool: str, repo: str, home: Path, label: str) -> dict[str, Any]:
        return _push_and_repush(ctx, tool, folder, repo, home, label)

    def fixed(command: str):
        def one(round_no: int) -> dict[str, Any]:
            home = ctx.fresh_dir(command)
            run = run_child(
                python_child("bench.push", command), env=ctx.hub_env(home, prefect=True),
                log=ctx.work / "logs" / f"{command}-{round_no}.log",
            )  # fmt: skip
            return {"wall_s": run.wall_s, "op_s": run.result["op_s"], "import_s": run.result["import_s"],
                    "peak_rss_mib": run.peak_rss_mib}  # fmt: skip

        return one

    tools = _tool_rounds(ctx, "", TOOLS, push)
    tools["prefect_empty_flow"] = fixed("empty")
    tools["python_hf_import"] = fixed("imports")
    tools["python_prefect_import"] = fixed("prefect-import")
    return interleave(tools, ctx.repeats, progress=ctx.log)


# --- scenario 1b: the same push over a simulated link -----------------------------------------------------------

# A distant Hub: every request waits REQUEST_S more (a round trip), a commit COMMIT_S more (the Hub's git work).
LINK = {"request_s": 0.04, "commit_s": 0.5}
LINK_TOOLS = ("staged", "upload_folder", "dd_push")


def _add_link_latency(ctx: Context) -> None:
    ctx.clear_faults()
    # The first rule that fires applies alone: a commit waits for both.
    ctx.add_fault(route="commit", latency=LINK["commit_s"] + LINK["request_s"], count=None)
    ctx.add_fault(route="*", latency=LINK["request_s"], count=None)


def link_scenario(ctx: Context, folder: Path) -> dict[str, Any]:
    """Scenario 1 for ours, ``upload_folder`` and Data Designer, with latency injected at the embedded Hub on
    every request (and more on commits): where round trips and commits, not the CPU, decide."""

    def push(tool: str, repo: str, home: Path, label: str) -> dict[str, Any]:
        _add_link_latency(ctx)
        try:
            return _measured_push(ctx, tool, folder, repo, home, label)
        finally:
            ctx.clear_faults()

    return interleave(_tool_rounds(ctx, "link-", LINK_TOOLS, push), ctx.repeats, progress=ctx.log)


# --- scenario 1c: the same link with a slow uplink, where the bytes decide ---------------------------------------

# 2 Mbit/s for all uploads together: the 6 MiB folder then takes about 25 s to send, as 600 MiB would at 200 Mbit/s.
UPLINK_BYTES_PER_S = 250_000


def uplink_scenario(ctx: Context, folder: Path) -> dict[str, Any]:
    """Scenarios 1 and 2 over the link of 1b with request bodies limited to ``UPLINK_BYTES_PER_S`` (all connections
    together): where sending the bytes takes longer than everything else, first push and identical re-push."""

    def push(tool: str, repo: str, home: Path, label: str) -> dict[str, Any]:
        _add_link_latency(ctx)
        ctx.hub_config(upload_bytes_per_s=UPLINK_BYTES_PER_S)
        try:
            return _push_and_repush(ctx, tool, folder, repo, home, label)
        finally:
            ctx.hub_config(upload_bytes_per_s=0)
            ctx.clear_faults()

    return interleave(_tool_rounds(ctx, "uplink-", LINK_TOOLS, push), ctx.repeats, progress=ctx.log)


# --- scenario 1d: a folder with many image files, where the number of files decides -------------------------------

IMAGE_TOOLS = ("staged", "upload_folder")
IMAGE_BYTES = 4096  # a thumbnail: per-file costs decide, not bytes


def ensure_image_folder(ctx: Context, folder: Path, images: int) -> tuple[Path, dict[str, Any]]:
    """A copy of ``folder`` with ``images`` files of random bytes in ``images/portrait/``, Data Designer's layout
    for an image column (all of a column's images in one folder), made once per run in the work dir."""
    out = ctx.work / f"images-{images}"
    if not out.exists():
        shutil.copytree(folder, out, ignore=shutil.ignore_patterns(".*"))
        column = out / "images" / "portrait"
        column.mkdir(parents=True)
        rng = random.Random(0)
        for i in range(images):
            (column / f"{i:06d}.png").write_bytes(rng.randbytes(IMAGE_BYTES))
    files = _published_files(out)
    return out, {"images": images, "image_bytes": IMAGE_BYTES, "files": len(files),
                 "bytes": sum(p.stat().st_size for p in files)}  # fmt: skip


def images_scenario(ctx: Context, folder: Path) -> dict[str, Any]:
    """Scenarios 1 and 2 for ours and one ``upload_folder`` on a folder with many image files: one upload per file
    on both sides, and ours commits the images in parts of 100 files (the Hub's advice per commit), one
    ``upload_folder`` in one commit. Fresh repo per round."""

    def push(tool: str, repo: str, home: Path, label: str) -> dict[str, Any]:
        return _push_and_repush(ctx, tool, folder, repo, home, label)

    return interleave(_tool_rounds(ctx, "images-", IMAGE_TOOLS, push), ctx.repeats, progress=ctx.log)


# --- scenario 3: retry after a failure at the processors stage --------------------------------------------------


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def retry_scenario(ctx: Context, folder: Path, info: dict[str, Any]) -> dict[str, Any]:
    """A push whose processors commit fails (503 on every commit after the card's and the data's), then the
    same flow run retried as from the Prefect UI. Figures: what the retry sends for the stages that had
    committed (card, data, images), and its time."""
    earlier_oids = {_sha256(p) for d in ("parquet-files", "images") if (folder / d).exists()
                    for p in (folder / d).rglob("*") if p.is_file()}  # fmt: skip
    commits_before_processors = 1 + math.ceil(info["data_files"] / 100) + math.ceil(info["images"] / 100)

    def one(round_no: int) -> dict[str, Any]:
        repo = ctx.repo("retry")
        home = ctx.fresh_dir("retry")
        env = ctx.hub_env(home, prefect=True)
        # The failing run gives up fast (1 retry, 0.1 s); the retry runs with the default policy.
        fail_env = {**env, "HFDS_STAGE_RETRIES": "1", "HFDS_STAGE_RETRY_DELAY": "0.1"}
        ctx.clear_faults()
        ctx.add_fault(route="commit", status=503, skip=commits_before_processors, count=None, repo=repo)
        failed = run_child(python_child("bench.push", "fail", str(folder), repo), env=fail_env,
                           log=ctx.work / "logs" / f"retry-{round_no}-fail.log")  # fmt: skip
        ctx.clear_faults()
        head_titles = [c.get("title", "") for c in ctx.commits(repo)]
        ctx.clear_requests()
        retried = run_child(
            python_child("bench.push", "retry", str(folder), repo, failed.result["flow_run_id"]),
            env=env, log=ctx.work / "logs" / f"retry-{round_no}-retry.log",
        )  # fmt: skip
        stats = ctx.hub_stats()
        records = ctx.hub_requests()
        after = ctx.commits(repo)
        new_commits = after[: max(0, len(after) - len(head_titles))]
        commit_requests = sorted((r for r in records if r["route"] == "commit" and r["status"] == 200),
                                 key=lambda r: r["time"])  # fmt: skip
        earlier_commit_bytes = 0
        earlier_commits = 0
        for request, commit in zip(commit_requests, reversed(new_commits), strict=False):
            if commit.get("title", "").startswith(EARLIER_STAGE_TITLES):
                earlier_commits += 1
                earlier_commit_bytes += request["bytes_in"]
        earlier_lfs = sum(r["bytes_in"] for r in records if r["route"] == "lfs-upload"
                          and any(oid in r["path"] for oid in earlier_oids))  # fmt: skip
        states = retried.result.get("task_states", {})
        return {
            "failed_run_wall_s": failed.wall_s,
            "wall_s": retried.wall_s,
            "op_s": retried.result["op_s"],
            "completed": int(bool(retried.result.get("completed"))),
            "earlier_stage_bytes": earlier_lfs + earlier_commit_bytes,
            "earlier_stage_lfs_bytes": earlier_lfs,
            "earlier_stage_commits": earlier_commits,
            "bytes_sent": stats["bytes_in"],
            "lfs_bytes": stats["lfs_bytes_in"],
            "commits": stats["commits"],
            "requests": stats["requests"],
            "cached_stages": sum(1 for name, s in states.items() if name.startswith("push-") and s == "Cached"),
            "task_states": states,
        }

    return interleave({"staged_retry": one}, ctx.repeats, progress=ctx.log)


# --- scenario 6: the floor ------------------------------------------------------------------------------------


def _floor_child(argv: list[str]) -> int:
    """``python -m bench.scenarios.push copy SRC DST`` | ``sha256 SRC``: the machine's floor for the folder."""
    import time

    from bench.measure import write_result

    command, src = argv[0], Path(argv[1])
    started = time.perf_counter()
    if command == "copy":
        shutil.copytree(src, Path(argv[2]))
        out: dict[str, Any] = {}
    else:
        digests = {str(p): _sha256(p) for p in sorted(src.rglob("*")) if p.is_file()}
        out = {"files": len(digests)}
    write_result({**out, "op_s": time.perf_counter() - started})
    return 0


def floor_scenario(ctx: Context, folder: Path) -> dict[str, Any]:
    def copy(round_no: int) -> dict[str, Any]:
        dst = ctx.fresh_dir("copy") / "copy"
        run = run_child([sys.executable, "-m", "bench.scenarios.push", "copy", str(folder), str(dst)],
                        log=ctx.work / "logs" / f"floor-copy-{round_no}.log")  # fmt: skip
        shutil.rmtree(dst, ignore_errors=True)
        return {"wall_s": run.wall_s, "op_s": run.result["op_s"]}

    def sha(round_no: int) -> dict[str, Any]:
        run = run_child([sys.executable, "-m", "bench.scenarios.push", "sha256", str(folder)],
                        log=ctx.work / "logs" / f"floor-sha256-{round_no}.log")  # fmt: skip
        return {"wall_s": run.wall_s, "op_s": run.result["op_s"]}

    return interleave({"copy": copy, "sha256": sha}, ctx.repeats, progress=ctx.log)


if __name__ == "__main__":
    raise SystemExit(_floor_child(sys.argv[1:]))
