"""Conformal 90 % intervals of the night metrics (core.nights.intervals)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from core.nights.intervals import conformal_halfwidth, loo_coverage, metric_intervals, night_intervals
from core.nights.stages import SleepStage


def test_the_halfwidth_is_the_conformal_order_statistic() -> None:
    errors = np.arange(1.0, 20.0)  # 19 subjects: the ceil(20 * 0.9) = 18th smallest
    assert conformal_halfwidth(errors) == 18.0
    assert conformal_halfwidth([3.0, 1.0, 2.0, 5.0, 4.0]) == math.inf  # 5 subjects cannot promise 90 %
    assert conformal_halfwidth([1.0, np.nan, *range(2, 20)]) == 18.0  # a metric a night lacks is skipped


def test_leave_one_out_coverage_is_near_the_level_for_exchangeable_errors() -> None:
    rng = np.random.default_rng(7)
    coverage = [loo_coverage(np.abs(rng.normal(0, 20, 30))) for _ in range(200)]
    assert 0.86 <= float(np.mean(coverage)) <= 0.96
    # each left out against the 18th smallest of the other 19: the two largest fall outside
    assert loo_coverage(np.arange(1.0, 21.0)) == pytest.approx(18 / 20)


def test_metric_intervals_from_known_errors() -> None:
    wake, light = int(SleepStage.WAKE), int(SleepStage.LIGHT)
    truth, pred = [], []
    for k in range(20):  # subject k's prediction calls k + 1 wake epochs light: TST off by (k + 1) / 2 min
        t = np.array([wake] * 40 + [light] * 800 + [-1] * 5)
        p = t.copy()
        p[: k + 1] = light
        p[-5:] = wake  # unscored in the truth: not counted
        truth.append(t)
        pred.append(p)
    tst = metric_intervals(truth, pred)["total_sleep_time_min"]
    assert tst["subjects"] == 20 and tst["halfwidth"] == 9.5  # the 19th smallest of 0.5 .. 10
    assert tst["coverage"] == pytest.approx(0.9)


def test_a_nights_intervals_are_clipped_to_what_is_possible() -> None:
    card = {"sleep_efficiency_pct": {"halfwidth": 5.0}, "waso_min": {"halfwidth": 30.0}}
    got = night_intervals({"sleep_efficiency_pct": 98.0, "waso_min": 12.0, "deep_min": 50.0}, card)
    assert got == {"sleep_efficiency_pct": (93.0, 100.0), "waso_min": (0.0, 42.0)}
    assert night_intervals({"waso_min": None}, card) == {}
