"""From the raw rounds of every scenario to: stable-named figures (JSON), ratios, targets, Markdown tables.

Figure names are dotted paths, stable across runs (``push.first.staged.wall_s``, ``card.4000000.stats.peak_rss_mib``,
``generation.100000.ours.records_per_s``, ...); each holds ``median``, ``min``, ``max`` and ``runs``. Ratios
and targets are computed from medians of the same run only (timings on 2 shared cores are noisy across runs).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from bench.measure import Summary, paired_slowdown, summarize, summarize_runs

TOOL_LABELS = {
    "staged": "staged push (ours, `flows.push`)",
    "upload_folder": "one `HfApi.upload_folder`",
    "upload_folder_flow": "one `HfApi.upload_folder` as a Prefect task in a flow",
    "dd_push": "Data Designer `push_to_hub_from_folder`",
    "datasets": "`datasets` `Dataset.from_parquet(...).push_to_hub`",
}


PEERS = ("upload_folder", "upload_folder_flow", "dd_push", "datasets")
TOOLS = ("staged", *PEERS)


def flatten(raw: Mapping[str, Any]) -> dict[str, Summary]:
    """Raw results → figure name → summary."""
    figures: dict[str, Summary] = {}
    for tool, rounds in raw.get("push", {}).items():
        for key, summary in summarize_runs(rounds).items():
            if "." in key:  # first.wall_s, repush.commits, ...
                phase, metric = key.split(".", 1)
                figures[f"push.{phase}.{tool}.{metric}"] = summary
            else:
                figures[f"push.fixed.{tool}.{key}"] = summary
    for scenario in ("link", "uplink", "images"):
        for tool, rounds in raw.get(scenario, {}).items():
            for key, summary in summarize_runs(rounds).items():
                figures[f"{scenario}.{tool}.{key}"] = summary
    for rounds in raw.get("retry", {}).values():
        for key, summary in summarize_runs(rounds).items():
            figures[f"retry.staged.{key}"] = summary
    for tool, rounds in raw.get("floor", {}).items():
        for key, summary in summarize_runs(rounds).items():
            figures[f"floor.{tool}.{key}"] = summary
    for rows, block in raw.get("card", {}).items():
        for tool, rounds in block["runs"].items():
            for key, summary in summarize_runs(rounds).items():
                figures[f"card.{rows}.{tool}.{key}"] = summary
    for n, block in raw.get("generation", {}).items():
        for tool, rounds in block.items():
            for key, summary in summarize_runs(rounds).items():
                figures[f"generation.{n}.{tool}.{key}"] = summary
    return figures


def _med(figures: Mapping[str, Summary], name: str) -> float:
    s = figures.get(name)
    return s.median if s is not None else math.nan


def _ratio(a: float, b: float) -> float:
    return a / b if b and not math.isnan(a) and not math.isnan(b) else math.nan


def derive(figures: Mapping[str, Summary], raw: Mapping[str, Any]) -> dict[str, float]:
    """Ratios and derived figures, from medians."""
    m = lambda name: _med(figures, name)  # noqa: E731
    d: dict[str, float] = {}
    # Prefect's fixed cost of one run: an empty flow run (with our push's imports) minus a bare import of
    # huggingface_hub, both whole processes.
    d["prefect_fixed_s"] = m("push.fixed.prefect_empty_flow.wall_s") - m("push.fixed.python_hf_import.wall_s")
    d["prefect_fixed_in_process_s"] = m("push.fixed.prefect_empty_flow.op_s")
    d["staged_wall_excl_prefect_s"] = m("push.first.staged.wall_s") - d["prefect_fixed_s"]
    # The floor of any Prefect flow as a process: importing prefect, against the whole upload_folder process.
    d["prefect_import_vs_upload_folder"] = _ratio(m("push.fixed.python_prefect_import.wall_s"), m("push.first.upload_folder.wall_s"))
    staged = m("push.first.staged.wall_s")
    for peer in PEERS:
        d[f"push.staged_vs_{peer}"] = _ratio(staged, m(f"push.first.{peer}.wall_s"))
        d[f"push.staged_excl_prefect_vs_{peer}"] = _ratio(d["staged_wall_excl_prefect_s"], m(f"push.first.{peer}.wall_s"))
        d[f"push.staged_in_call_vs_{peer}"] = _ratio(m("push.first.staged.op_s"), m(f"push.first.{peer}.op_s"))
    for peer in PEERS:
        d[f"push.staged_hub_work_vs_{peer}"] = _ratio(m("push.first.staged.stage_s"), m(f"push.first.{peer}.op_s"))
    for peer in ("upload_folder", "dd_push"):
        d[f"link.staged_vs_{peer}"] = _ratio(m("link.staged.wall_s"), m(f"link.{peer}.wall_s"))
        d[f"link.staged_in_call_vs_{peer}"] = _ratio(m("link.staged.op_s"), m(f"link.{peer}.op_s"))
        d[f"uplink.staged_vs_{peer}"] = _ratio(m("uplink.staged.first.wall_s"), m(f"uplink.{peer}.first.wall_s"))
    d["images.staged_vs_upload_folder"] = _ratio(m("images.staged.first.wall_s"), m("images.upload_folder.first.wall_s"))
    d["repush.staged_hub_work_ratio"] = _ratio(m("push.repush.staged.stage_s"), m("push.first.staged.stage_s"))
    d["repush.staged_in_call_ratio"] = _ratio(m("push.repush.staged.op_s"), m("push.first.staged.op_s"))
    d["retry.wall_vs_full_push"] = _ratio(m("retry.staged.wall_s"), staged)
    floor = m("floor.copy.op_s") + m("floor.sha256.op_s")
    d["floor.copy_plus_hash_s"] = floor
    d["floor.staged_in_call_vs_floor"] = _ratio(m("push.first.staged.op_s"), floor)
    d["floor.upload_folder_in_call_vs_floor"] = _ratio(m("push.first.upload_folder.op_s"), floor)
    sizes = sorted(int(k) for k in raw.get("card", {}))
    for rows in sizes:
        d[f"card.{rows}.speedup_vs_pandas"] = _ratio(m(f"card.{rows}.pandas.wall_s"), m(f"card.{rows}.stats.wall_s"))
        d[f"card.{rows}.memory_vs_pandas"] = _ratio(m(f"card.{rows}.stats.peak_rss_mib"), m(f"card.{rows}.pandas.peak_rss_mib"))
    if len(sizes) >= 2:
        d["card.peak_rss_growth"] = _ratio(
            m(f"card.{sizes[-1]}.stats.peak_rss_mib"), m(f"card.{sizes[0]}.stats.peak_rss_mib")
        )
    for n in sorted(int(k) for k in raw.get("generation", {})):
        d[f"generation.{n}.ours_vs_data_designer"] = _ratio(
            m(f"generation.{n}.ours.records_per_s"), m(f"generation.{n}.data_designer.records_per_s")
        )
        for kind in CHECKPOINT_KINDS:
            d.update(_checkpoint_cost(n, kind, raw["generation"][str(n)].get("ours", []), m))
    return d


# The checkpointed runs of scenario 5: with the Hub at normal priority on the measured cores, and with the Hub
# in the background (niceness +10; its work then takes only the CPU the run leaves, as huggingface.co's does).
CHECKPOINT_KINDS = ("checkpoint", "checkpoint_bg_hub")


def _checkpoint_cost(n: int, kind: str, rounds: list[dict[str, Any]], m: Callable[[str], float]) -> dict[str, float]:
    """The checkpoint's cost at ``n`` records (``kind``: one of ``CHECKPOINT_KINDS``) from every plain and
    checkpointed run of every round, pooled (one round's few runs leave it too noisy), with a 90 % bootstrap
    interval. Results written before the runs were kept give the median of the rounds' own figures, without an
    interval; results without runs of ``kind`` give nothing."""
    key = f"generation.{n}.{kind}_slowdown"
    plain = [x for r in rounds for x in r.get("plain_runs", [])]
    checkpointed = [x for r in rounds for x in r.get(f"{kind}_runs", [])]
    if not plain or len(plain) != len(checkpointed):
        rounds_median = m(f"generation.{n}.ours.{kind}_slowdown_pct")
        return {} if math.isnan(rounds_median) else {f"{key}_pct": rounds_median}
    cost = paired_slowdown(plain, checkpointed)
    return {f"{key}_pct": cost.pct, f"{key}_low_pct": cost.low_pct, f"{key}_high_pct": cost.high_pct,
            f"{key}_pairs": cost.pairs}  # fmt: skip


def checkpoint_cost_cell(derived: Mapping[str, float], n: int | str, kind: str = "checkpoint") -> str:
    """``8.5 (90 % interval −2.5 to 15.9, 18 pairs)``, or the bare figure when there is no interval."""
    key = f"generation.{n}.{kind}_slowdown"
    value = _fmt(derived.get(f"{key}_pct", math.nan), 1)
    if f"{key}_low_pct" not in derived:
        return value
    low, high = _fmt(derived[f"{key}_low_pct"], 1), _fmt(derived[f"{key}_high_pct"], 1)
    return f"{value} (90 % interval {low} to {high}, {int(derived[f'{key}_pairs'])} pairs)"


# The push targets of the issue: (peer, the staged push's bound as a multiple of the peer's time, peer's label).
PUSH_BOUNDS = (("upload_folder", 1.15, "one upload_folder"), ("dd_push", 0.8, "Data Designer's push"))


def targets(figures: Mapping[str, Summary], derived: Mapping[str, float], raw: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets, each with its measured value and whether it is met."""
    m = lambda name: _med(figures, name)  # noqa: E731
    out: list[dict[str, Any]] = []

    def add(name: str, target: str, value: float, met: bool, unit: str = "") -> None:
        out.append({"name": name, "target": target, "value": value, "unit": unit,
                    "met": bool(met) if not math.isnan(value) else False})  # fmt: skip

    def push_bounds(scenario: str, prefix: str) -> None:
        for peer, bound, label in PUSH_BOUNDS:
            value = derived[f"{scenario}.staged_vs_{peer}"]
            add(f"{scenario}.vs_{peer}", f"{prefix}staged push ≤ {bound} × {label}", value, value <= bound, "×")

    if "push" in raw:  # only the scenarios that ran
        push_bounds("push", "")
        flow_peer = derived.get("push.staged_vs_upload_folder_flow", math.nan)
        add("push.vs_upload_folder_flow", "(extra) staged push ≤ 1.15 × one upload_folder run as a Prefect flow",
            flow_peer, flow_peer <= 1.15, "×")  # fmt: skip
        add("repush.commits", "identical re-push: 0 new commits", m("push.repush.staged.commits"),
            m("push.repush.staged.commits") == 0)  # fmt: skip
        add("repush.lfs_bytes", "identical re-push: 0 LFS bytes", m("push.repush.staged.lfs_bytes"),
            m("push.repush.staged.lfs_bytes") == 0, "B")  # fmt: skip
        add("repush.time", "identical re-push ≤ 0.1 × first-push time", m("push.repush.staged.time_ratio"),
            m("push.repush.staged.time_ratio") <= 0.1, "×")  # fmt: skip
    if "link" in raw:
        push_bounds("link", "(extra, simulated link) ")
    if "uplink" in raw:
        push_bounds("uplink", "(extra, slow uplink) ")
        ratio = m("uplink.staged.repush.time_ratio")
        add("uplink.repush_time", "(extra, slow uplink) identical re-push ≤ 0.1 × first-push time", ratio, ratio <= 0.1, "×")
    if "images" in raw:
        ratio = derived["images.staged_vs_upload_folder"]
        add("images.vs_upload_folder", "(extra, many image files) staged push ≤ 1.15 × one upload_folder", ratio,
            ratio <= 1.15, "×")  # fmt: skip
    if "retry" in raw:
        retry_bytes = figures.get("retry.staged.earlier_stage_bytes")
        # NaN, not 0, when the figure is missing (the target then reads as not met, as before)
        earlier = retry_bytes.max if retry_bytes is not None else math.nan
        add("retry.earlier_bytes", "retry after a processors failure: 0 bytes re-sent for card, data, images",
            earlier, earlier == 0, "B")  # fmt: skip
    sizes = sorted(int(k) for k in raw.get("card", {}))
    if len(sizes) >= 2:
        growth = derived.get("card.peak_rss_growth", math.nan)
        add("card.memory_flat", f"card statistics peak RSS flat from {sizes[0]:,} to {sizes[-1]:,} rows (≤ 1.25×)",
            growth, growth <= 1.25, "×")  # fmt: skip
    for rows in sizes:
        speed = derived.get(f"card.{rows}.speedup_vs_pandas", math.nan)
        add(f"card.{rows}.faster", f"card statistics faster than pandas at {rows:,} rows", speed, speed > 1, "×")
    for n in sorted(int(k) for k in raw.get("generation", {})):
        ratio = derived.get(f"generation.{n}.ours_vs_data_designer", math.nan)
        add(f"generation.{n}.speed", f"generation ≥ 10 × Data Designer records/s at {n:,}", ratio, ratio >= 10, "×")
        slow = derived[f"generation.{n}.checkpoint_slowdown_pct"]
        add(f"generation.{n}.checkpoint", f"checkpointing costs ≤ 10 % at {n:,}, the Hub at normal priority on the "
            "measured cores (all runs pooled)", slow, slow <= 10, "%")  # fmt: skip
        if f"generation.{n}.checkpoint_bg_hub_slowdown_pct" in derived:  # results from before it was measured lack it
            slow = derived[f"generation.{n}.checkpoint_bg_hub_slowdown_pct"]
            add(f"generation.{n}.checkpoint_bg_hub", f"checkpointing costs ≤ 10 % at {n:,}, the Hub in the "
                "background (all runs pooled)", slow, slow <= 10, "%")  # fmt: skip
    return out


# --- Markdown ---------------------------------------------------------------------------------------------------


def _fmt(value: float, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def cell(figures: Mapping[str, Summary], name: str, digits: int = 2, scale: float = 1.0) -> str:
    s = figures.get(name)
    if s is None or not s.runs:
        return "n/a"
    med, lo, hi = s.median * scale, s.min * scale, s.max * scale
    if len(s.runs) == 1 or lo == hi:
        return _fmt(med, digits)
    return f"{_fmt(med, digits)} ({_fmt(lo, digits)}–{_fmt(hi, digits)})"


def tool_table(figures: Mapping[str, Summary], prefix: str, tools: Iterable[str],
               columns: list[tuple[str, str, int]]) -> list[str]:  # fmt: skip
    """A Markdown table with a row per tool: ``(header, figure name after prefix.tool., digits)`` per column."""
    rows = ["| tool | " + " | ".join(h for h, _, _ in columns) + " |", "|---|" + "---:|" * len(columns)]
    for tool in tools:
        cells = (cell(figures, f"{prefix}.{tool}.{name}", digits) for _, name, digits in columns)
        rows.append(f"| {TOOL_LABELS[tool]} | " + " | ".join(cells) + " |")
    return rows


def markdown(raw: Mapping[str, Any], figures: Mapping[str, Summary], derived: Mapping[str, float],
             goals: list[dict[str, Any]]) -> str:  # fmt: skip
    c = lambda name, digits=2, scale=1.0: cell(figures, name, digits, scale)  # noqa: E731
    meta = raw.get("meta", {})
    folder = raw.get("folder", {})
    lines: list[str] = []
    add = lines.append
    add(f"Medians of {meta.get('repeats')} interleaved rounds (min–max); {meta.get('cpus')} CPUs; "
        f"`{meta.get('command')}`; {meta.get('date')}.")  # fmt: skip
    add("")
    if "push" in raw:
        add(f"**1. Push of the same folder** — {folder.get('records', 0):,} records, {folder.get('files')} files "
            f"({folder.get('data_files')} data batches, processor outputs {', '.join(folder.get('processor_outputs', []))}), "
            f"{folder.get('bytes', 0) / 2**20:.1f} MiB. Every tool in its own process against the embedded Hub; "
            "wall = the whole process (interpreter, imports, the push); in-call = the push call alone.")  # fmt: skip
        add("")
        lines += tool_table(figures, "push.first", TOOLS, [
            ("wall s", "wall_s", 2), ("in-call s", "op_s", 2), ("peak RSS MiB", "peak_rss_mib", 0),
            ("commits", "commits", 0), ("bytes sent", "bytes_sent", 0), ("LFS bytes", "lfs_bytes", 0),
            ("requests", "requests", 0),
        ])  # fmt: skip
        add("")
        add(f"Prefect's fixed cost per run: an empty flow run (same imports as the push) takes "
            f"{c('push.fixed.prefect_empty_flow.wall_s')} s as a process vs {c('push.fixed.python_hf_import.wall_s')} s "
            f"for `python -c 'import huggingface_hub'`, so **{_fmt(derived['prefect_fixed_s'])} s** per run "
            f"({_fmt(derived['prefect_fixed_in_process_s'])} s of it the flow run itself). Staged push excluding it: "
            f"{_fmt(derived['staged_wall_excl_prefect_s'])} s. Prefect API: one `prefect server start` for the whole "
            f"benchmark (not ephemeral mode; its own peak RSS {_fmt(meta.get('prefect_server_peak_rss_mib', math.nan), 0)} MiB "
            "is not in the push's figure). "
            f"`python -c 'import prefect'` alone takes {c('push.fixed.python_prefect_import.wall_s')} s, "
            f"{_fmt(derived['prefect_import_vs_upload_folder'])} × the whole `upload_folder` process: the floor of any "
            "Prefect flow run as a process.")  # fmt: skip
        add("")
        add("| ratio (medians) | whole process | excl. Prefect fixed cost | in-call | our Hub work only ÷ peer in-call |")
        add("|---|---:|---:|---:|---:|")
        for peer in PEERS:
            add(f"| staged ÷ {TOOL_LABELS[peer]} | {_fmt(derived[f'push.staged_vs_{peer}'])} "
                f"| {_fmt(derived[f'push.staged_excl_prefect_vs_{peer}'])} | {_fmt(derived[f'push.staged_in_call_vs_{peer}'])} "
                f"| {_fmt(derived[f'push.staged_hub_work_vs_{peer}'])} |")  # fmt: skip
        add("")
        add(f"Our Hub work = the time inside the six stages' commit code and the uploads made ahead of them (comparing, "
            f"uploading, committing: {c('push.first.staged.stage_s')} s; the uploads ahead overlap the card), without "
            "Prefect, card rendering and content keys.")  # fmt: skip
        add("")
        add("**2. Identical re-push** (same folder, same repo, right after the first push)")
        add("")
        lines += tool_table(figures, "push.repush", TOOLS, [
            ("new commits", "commits", 0), ("LFS bytes", "lfs_bytes", 0), ("bytes sent", "bytes_sent", 0),
            ("requests", "requests", 0), ("wall s", "wall_s", 2), ("÷ first push", "time_ratio", 2),
        ])  # fmt: skip
        add("")
        add(f"Staged re-push ÷ first push: in-call {_fmt(derived['repush.staged_in_call_ratio'])}, our Hub work only "
            f"{_fmt(derived['repush.staged_hub_work_ratio'])} ({c('push.repush.staged.stage_s', 3)} s vs "
            f"{c('push.first.staged.stage_s', 3)} s).")  # fmt: skip
        add("")
    if "link" in raw:
        link = meta.get("link", {})
        add(f"**1b. The same push over a simulated link** — the embedded Hub waits {link.get('request_s', 0) * 1000:.0f} ms "
            f"more on every request and {link.get('commit_s', 0):.1f} s more on every commit (a distant Hub: round trips "
            "and the Hub's commit work). Fresh repo per push.")  # fmt: skip
        add("")
        lines += tool_table(figures, "link", raw["link"], [
            ("wall s", "wall_s", 2), ("in-call s", "op_s", 2), ("commits", "commits", 0), ("requests", "requests", 0),
        ])  # fmt: skip
        add("")
        add(f"Staged ÷ one `upload_folder`: {_fmt(derived['link.staged_vs_upload_folder'])} whole process, "
            f"{_fmt(derived['link.staged_in_call_vs_upload_folder'])} in the call. Staged ÷ Data Designer: "
            f"{_fmt(derived['link.staged_vs_dd_push'])} whole process, {_fmt(derived['link.staged_in_call_vs_dd_push'])} "
            "in the call.")  # fmt: skip
        add("")
    if "uplink" in raw:
        up = meta.get("uplink", {})
        rate = up.get("upload_bytes_per_s", 0)
        add(f"**1c. Push and identical re-push over a slow uplink** — the link of 1b, and request bodies arrive at "
            f"{rate * 8 / 1e6:.0f} Mbit/s at most ({rate / 1000:.0f} kB/s, all connections together): sending the "
            f"{folder.get('bytes', 0) / 2**20:.1f} MiB takes longer than everything else, as a larger folder does on a "
            "faster link. Fresh repo per round.")  # fmt: skip
        add("")
        lines += tool_table(figures, "uplink", raw["uplink"], [
            ("first push wall s", "first.wall_s", 2), ("in-call s", "first.op_s", 2),
            ("commits", "first.commits", 0), ("re-push wall s", "repush.wall_s", 2),
            ("re-push ÷ first", "repush.time_ratio", 2), ("re-push commits", "repush.commits", 0),
            ("re-push LFS bytes", "repush.lfs_bytes", 0),
        ])  # fmt: skip
        add("")
        add(f"Staged ÷ one `upload_folder`: {_fmt(derived['uplink.staged_vs_upload_folder'])}; staged ÷ Data Designer: "
            f"{_fmt(derived['uplink.staged_vs_dd_push'])} (whole processes).")  # fmt: skip
        add("")
    if "images" in raw:
        im = meta.get("images", {})
        add(f"**1d. Push and identical re-push of the folder with {im.get('images', 0):,} image files** "
            f"({im.get('image_bytes', 0):,} bytes each, all in `images/portrait/`: {im.get('files', 0):,} files, "
            f"{im.get('bytes', 0) / 2**20:.1f} MiB) — where the number of files decides: one upload per file on "
            "both sides; ours commits the images in parts of 100 files (the Hub's advice per commit), one "
            "`upload_folder` makes one commit. Fresh repo per round.")  # fmt: skip
        add("")
        lines += tool_table(figures, "images", raw["images"], [
            ("first push wall s", "first.wall_s", 2), ("in-call s", "first.op_s", 2),
            ("peak RSS MiB", "first.peak_rss_mib", 0), ("commits", "first.commits", 0),
            ("requests", "first.requests", 0), ("re-push wall s", "repush.wall_s", 2),
            ("re-push commits", "repush.commits", 0), ("re-push LFS bytes", "repush.lfs_bytes", 0),
        ])  # fmt: skip
        add("")
        add(f"Staged ÷ one `upload_folder`: {_fmt(derived['images.staged_vs_upload_folder'])} (whole processes).")
        add("")
    if "retry" in raw:
        add("**3. Retry after a failure at the processors stage** (503 on every commit after the card's and the "
            "data's; the failed flow run then retried as the Prefect UI does: AwaitingRetry + the same run again)")
        add("")
        add("| figure | value |")
        add("|---|---:|")
        add(f"| bytes re-sent for card, data, images (LFS + their commits) | {c('retry.staged.earlier_stage_bytes', 0)} |")
        add(f"| commits re-made for card, data, images | {c('retry.staged.earlier_stage_commits', 0)} |")
        add(f"| stages taken from Prefect's cache | {c('retry.staged.cached_stages', 0)} |")
        add(f"| retried run: commits / bytes sent / LFS bytes | {c('retry.staged.commits', 0)} / "
            f"{c('retry.staged.bytes_sent', 0)} / {c('retry.staged.lfs_bytes', 0)} |")  # fmt: skip
        add(f"| retried run wall s (in-call s) | {c('retry.staged.wall_s')} ({c('retry.staged.op_s')}) |")
        add(f"| retried run ÷ full push (wall) | {_fmt(derived['retry.wall_vs_full_push'])} |")
        add("")
    if "card" in raw:
        first = next(iter(raw["card"].values()))
        add(f"**4. Card statistics** (10 columns, row groups of {first['dataset']['row_group']:,} rows, record batches "
            f"of {first.get('batch_rows', 0):,}) vs pandas (`read_parquet` of everything, same numbers); fresh process each")  # fmt: skip
        add("")
        add("| rows | parquet MiB | card stats wall s (compute) | card stats peak RSS MiB | pandas wall s (compute) "
            "| pandas peak RSS MiB | imports-only RSS MiB | speed-up | same numbers |")  # fmt: skip
        add("|---:|---:|---:|---:|---:|---:|---:|---:|---|")
        for rows, block in raw["card"].items():
            p = f"card.{rows}"
            add(f"| {int(rows):,} | {block['dataset']['bytes'] / 2**20:,.0f} | {c(p + '.stats.wall_s')} ({c(p + '.stats.compute_s')}) "
                f"| {c(p + '.stats.peak_rss_mib', 0)} | {c(p + '.pandas.wall_s')} ({c(p + '.pandas.compute_s')}) "
                f"| {c(p + '.pandas.peak_rss_mib', 0)} | {c(p + '.baseline.peak_rss_mib', 0)} "
                f"| {_fmt(derived.get(p + '.speedup_vs_pandas', math.nan), 1)}× | {'yes' if block['agree_with_pandas'] else 'NO'} |")  # fmt: skip
        add("")
    if "generation" in raw:
        add("**5. Generation of the no-LLM example** (`examples/multilingual_greetings.yaml`: samplers, expressions, a "
            "`schema_transform` and a `drop_columns` processor; batches of 1,000). Ours: whole flow runs on a warmed-up "
            "ephemeral Prefect API (`bench/generation.py`; per round, the median of "
            f"{meta.get('generation_inner_repeats', 1)} alternating plain and checkpointed runs; the checkpoint's "
            "cost pools the runs of every round, with a 90 % paired-bootstrap interval; the checkpoints go to an "
            "embedded Hub at normal priority on the same two cores, and to one in the background, niceness +10, "
            "whose work takes only the CPU the run leaves, as huggingface.co's is not on the user's cores); "
            "Data Designer 0.9.6: "
            "the `DataDesigner.create` call (its profiling included)")  # fmt: skip
        add("")
        add("| records | ours rec/s | ours engine-only rec/s | Data Designer rec/s | ours ÷ DD | checkpoint every 1 s: "
            "slowdown % | the same, Hub in the background: slowdown % | + final flush: slowdown % "
            "| checkpoint commits |")  # fmt: skip
        add("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for n in raw["generation"]:
            p = f"generation.{n}"
            add(f"| {int(n):,} | {c(p + '.ours.records_per_s', 0)} | {c(p + '.ours.engine_records_per_s', 0)} "
                f"| {c(p + '.data_designer.records_per_s', 0)} | {_fmt(derived.get(p + '.ours_vs_data_designer', math.nan), 1)}× "
                f"| {checkpoint_cost_cell(derived, n)} | {checkpoint_cost_cell(derived, n, 'checkpoint_bg_hub')} "
                f"| {c(p + '.ours.flush_slowdown_pct', 1)} "
                f"| {c(p + '.ours.checkpoint_commits', 0)} |")  # fmt: skip
        add("")
    if "floor" in raw:
        size = folder.get("bytes", 0)
        add(f"**6. The floor** for the same {size / 2**20:.1f} MiB ({folder.get('files')} files; page cache warm, as for the pushes)")
        add("")
        add("| operation | in-call s | wall s |")
        add("|---|---:|---:|")
        add(f"| copy the folder (`shutil.copytree`) | {c('floor.copy.op_s', 4)} | {c('floor.copy.wall_s')} |")
        add(f"| sha256 of every file | {c('floor.sha256.op_s', 4)} | {c('floor.sha256.wall_s')} |")
        add(f"| staged push (in-call) ÷ (copy + hash) | {_fmt(derived['floor.staged_in_call_vs_floor'], 0)}× | |")
        add(f"| one upload_folder (in-call) ÷ (copy + hash) | {_fmt(derived['floor.upload_folder_in_call_vs_floor'], 0)}× | |")
        add("")
    if goals:
        add("**Targets** (ratios of medians from this run)")
        add("")
        add("| target | measured | met |")
        add("|---|---:|---|")
        for g in goals:
            add(f"| {g['target']} | {_fmt(g['value'])}{(' ' + g['unit']) if g['unit'] else ''} | {'yes' if g['met'] else '**no**'} |")
        add("")
    return "\n".join(lines)


def build(raw: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """The Markdown report and the JSON document (figures with stable names, ratios, targets, raw rounds)."""
    figures = flatten(raw)
    derived = derive(figures, raw)
    goals = targets(figures, derived, raw)
    doc = {
        "meta": raw.get("meta", {}),
        "folder": raw.get("folder", {}),
        "figures": {name: s.as_dict() for name, s in sorted(figures.items())},
        "derived": derived,
        "targets": goals,
        "raw": raw,
    }
    return markdown(raw, figures, derived, goals), doc


__all__ = ["build", "cell", "flatten", "summarize"]
