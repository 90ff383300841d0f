"""The benchmark's estimate of the checkpoint's cost (pure: no Prefect, no Hub)."""

from __future__ import annotations

import math
import statistics

from bench.measure import paired_slowdown
from bench.report import checkpoint_cost_cell, derive, flatten, targets


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
