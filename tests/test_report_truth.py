"""The truth audit of the night report (``sleepstack evaluate report``), in its fast form."""

from __future__ import annotations

import json

import pytest

from sleepstack.cli import main
from sleepstack.evaluation.report_truth import SCENARIOS, TOLERANCES, audit_report

pytestmark = pytest.mark.slow

#: Figures measured by vitals and the pause definition, held on every night; the staging
#: figures are reported with their tolerances (docs/evaluation.md), not asserted here.
HELD = ("pauses_per_hour", "bed_exits", "mean_hr_bpm", "mean_br_per_min", "coverage_pct")


def test_fast_audit_meets_the_pause_and_bed_exit_goals() -> None:
    by_name = {s.name: s for s in SCENARIOS}
    figures = audit_report(
        nights=3, seed=11, scenarios=[by_name["severe apnoea"], by_name["bed only"], by_name["strap only"]]
    )
    goals = figures["goals"]
    assert goals["apnoea_episodes_found"] >= 0.95 and goals["apnoea_episodes_found_goal_met"]
    assert goals["false_pauses_per_hour_worst"] <= 0.5 and goals["false_pauses_goal_met"]
    assert goals["bed_exits"] == goals["bed_exits_found"] == 2
    for metric in HELD:
        assert figures["metrics"][metric]["within_tolerance"], (metric, figures["metrics"][metric])
    severe, bed_only, strap_only = figures["per_night"]
    assert severe["metrics"]["pauses_per_hour"]["truth"] > 15  # a night the old count got 2.4x wrong
    assert abs(severe["metrics"]["pauses_per_hour"]["error"]) <= 1.0
    # a strap cannot see breathing: the report has no pause figure, and the audit does not score one
    assert strap_only["metrics"]["pauses_per_hour"]["report"] is None and strap_only["apnoeas"] is None
    assert bed_only["metrics"]["mean_hr_bpm"]["error"] is not None
    assert set(figures["metrics"]) == set(TOLERANCES)


def test_cli_prints_the_table_and_refuses_zero_nights(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", "report", "--nights", "1", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["nights"] == 1 and figures["per_night"][0]["scenario"] == SCENARIOS[0].name
    assert figures["per_night"][0]["metrics"]["breathing_pauses"]["report"] == 0  # no apnoea, no pause
    assert main(["evaluate", "report", "--nights", "0"]) == 2
    assert "--nights" in capsys.readouterr().err
