"""The benchmark's estimate of the checkpoint's cost (pure: no Prefect, no Hub)."""

from __future__ import annotations

import math
import statistics

from bench.measure import paired_slowdown
from bench.report import build, checkpoint_cost_cell, derive, flatten, targets, tool_table


def test_slowdown_is_the_ratio_of_medians_and_its_interval_holds_it() -> None:
    plain = [2.4, 2.8, 2.4, 2.8, 2.6, 3.1, 2.2, 2.9, 2.5]
    checkpointed = [2.5, 3.0, 2.7, 3.0, 3.3, 3.1, 2.4, 3.4, 2.6]
    cost = paired_slowdown(plain, checkpointed)
    assert math.isclose(cost.pct, 100 * (statistics.median(checkpointed) / statistics.median(plain) - 1))
    assert cost.low_pct <= cost.pct <= cost.high_pct
    assert cost.low_pct < cost.high_pct  # the runs vary, so the interval has a width
    assert cost.pairs == 9
    assert paired_slowdown(plain, checkpointed) == cost  # fixed seed: the same runs, the same interval


def test_constant_runs_give_an_interval_of_zero_width() -> None:
    cost = paired_slowdown([2.0] * 5, [2.2] * 5)
    assert math.isclose(cost.pct, 10) and math.isclose(cost.low_pct, 10) and math.isclose(cost.high_pct, 10)


def test_pairs_stay_together_when_resampled() -> None:
    # The machine slows down by half in the second half; each checkpointed run is 5 % slower than its plain
    # neighbour. Resampling pairs whole keeps every draw at 5 %; resampling each side alone would not.
    plain = [1.0] * 5 + [1.5] * 5
    cost = paired_slowdown(plain, [x * 1.05 for x in plain])
    assert math.isclose(cost.low_pct, 5) and math.isclose(cost.high_pct, 5)


def test_no_runs_give_nan() -> None:
    assert math.isnan(paired_slowdown([], []).pct)


def _raw(rounds: list[dict[str, object]]) -> dict[str, object]:
    return {"generation": {"100000": {"ours": rounds, "data_designer": [{"records_per_s": 1.0}] * len(rounds)}}}


def test_report_pools_the_runs_of_every_round() -> None:
    rounds: list[dict[str, object]] = [
        {
            "records_per_s": 1.0,
            "checkpoint_slowdown_pct": 50.0,
            "plain_runs": [2.0, 2.0],
            "checkpoint_runs": [2.1, 2.1],
        },
        {
            "records_per_s": 1.0,
            "checkpoint_slowdown_pct": 50.0,
            "plain_runs": [3.0, 3.0],
            "checkpoint_runs": [3.3, 3.3],
        },
    ]
    raw = _raw(rounds)
    derived = derive(flatten(raw), raw)
    pooled = 100 * (statistics.median([2.1, 2.1, 3.3, 3.3]) / statistics.median([2.0, 2.0, 3.0, 3.0]) - 1)
    assert math.isclose(derived["generation.100000.checkpoint_slowdown_pct"], pooled)  # not the rounds' 50 %
    assert derived["generation.100000.checkpoint_slowdown_pairs"] == 4
    assert checkpoint_cost_cell(derived, 100000).startswith(f"{pooled:.1f} (90 % interval ")


def test_report_of_results_without_runs_keeps_the_rounds_median() -> None:
    raw = _raw([{"records_per_s": 1.0, "checkpoint_slowdown_pct": p} for p in (7.0, 12.0, 30.0)])
    derived = derive(flatten(raw), raw)
    assert derived["generation.100000.checkpoint_slowdown_pct"] == 12.0
    assert checkpoint_cost_cell(derived, 100000) == "12.0"


def test_report_gives_the_background_hub_cost_its_own_figures_and_target() -> None:
    rounds: list[dict[str, object]] = [
        {
            "records_per_s": 1.0,
            "plain_runs": [2.0, 2.0, 2.0],
            "checkpoint_runs": [2.4, 2.4, 2.4],
            "checkpoint_bg_hub_runs": [2.1, 2.1, 2.1],
        }
    ]
    raw = _raw(rounds)
    figures = flatten(raw)
    derived = derive(figures, raw)
    assert math.isclose(derived["generation.100000.checkpoint_slowdown_pct"], 20.0)
    assert math.isclose(derived["generation.100000.checkpoint_bg_hub_slowdown_pct"], 5.0)
    assert checkpoint_cost_cell(derived, 100000, "checkpoint_bg_hub").startswith("5.0 (90 % interval ")
    met = {t["name"]: t["met"] for t in targets(figures, derived, raw)}
    assert met["generation.100000.checkpoint"] is False
    assert met["generation.100000.checkpoint_bg_hub"] is True


def test_results_from_before_the_background_hub_have_no_such_target() -> None:
    raw = _raw([{"records_per_s": 1.0, "plain_runs": [2.0], "checkpoint_runs": [2.1]}])
    figures = flatten(raw)
    derived = derive(figures, raw)
    assert "generation.100000.checkpoint_bg_hub_slowdown_pct" not in derived
    assert checkpoint_cost_cell(derived, 100000, "checkpoint_bg_hub") == "n/a"
    assert "generation.100000.checkpoint_bg_hub" not in {t["name"] for t in targets(figures, derived, raw)}


def test_report_of_the_image_folder_gives_its_ratio_table_and_target() -> None:
    def push(wall: float, commits: int) -> dict[str, object]:
        return {"first.wall_s": wall, "first.op_s": wall - 1, "first.peak_rss_mib": 100.0, "first.commits": commits,
                "first.requests": 10_000, "repush.wall_s": 5.0, "repush.commits": 0, "repush.lfs_bytes": 0}  # fmt: skip

    raw: dict[str, object] = {
        "meta": {"images": {"images": 10_000, "image_bytes": 4096, "files": 10_090, "bytes": 41_000_000}},
        "images": {"staged": [push(90.0, 105), push(110.0, 105)], "upload_folder": [push(60.0, 1), push(70.0, 1)]},
    }
    figures = flatten(raw)
    derived = derive(figures, raw)
    assert math.isclose(derived["images.staged_vs_upload_folder"], 100.0 / 65.0)  # medians of the rounds
    (target,) = [t for t in targets(figures, derived, raw) if t["name"] == "images.vs_upload_folder"]
    assert target["met"] is False
    text, _ = build(raw)
    assert "**1d. Push and identical re-push of the folder with 10,000 image files**" in text
    assert "| one `HfApi.upload_folder` | 65.00 (60.00–70.00) |" in text


def test_a_tool_table_has_a_row_per_tool_with_its_figures_by_name() -> None:
    raw = {
        "uplink": {
            "staged": [{"first.wall_s": 2.0, "first.commits": 5}, {"first.wall_s": 4.0, "first.commits": 5}],
            "upload_folder": [{"first.wall_s": 1.5, "first.commits": 1}],
        }
    }
    rows = tool_table(flatten(raw), "uplink", ["staged", "upload_folder"],
                      [("wall s", "first.wall_s", 2), ("commits", "first.commits", 0), ("absent", "first.nope", 1)])  # fmt: skip
    assert rows == [
        "| tool | wall s | commits | absent |",
        "|---|---:|---:|---:|",
        "| staged push (ours, `flows.push`) | 3.00 (2.00–4.00) | 5 | n/a |",
        "| one `HfApi.upload_folder` | 1.50 | 1 | n/a |",
    ]
