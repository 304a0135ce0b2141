"""The night's two apnoea screens: bands, validated ranges, and a disagreement said out loud."""

from __future__ import annotations

import math

import pytest

from core.nights.apnoea_screens import apnoea_screens, severity


@pytest.mark.parametrize(
    ("per_hour", "band"), [(0.0, "normal"), (4.99, "normal"), (5.0, "mild"), (15.0, "moderate"), (30.0, "severe")]
)
def test_aasm_severity_bands(per_hour: float, band: str) -> None:
    assert severity(per_hour) == band


def test_no_figure_no_band() -> None:
    assert severity(None) is None and severity(math.nan) is None
    assert apnoea_screens({"pauses_per_hour": None, "cvhr_per_hour": math.nan}) == {
        "screens": [],
        "disagree": False,
        "note": None,
    }


def test_two_screens_in_different_bands_are_shown_as_disagreeing_and_explained() -> None:
    out = apnoea_screens({"pauses_per_hour": 12.0, "cvhr_per_hour": 0.0})
    pauses, cvhr = out["screens"]
    assert (pauses["band"], cvhr["band"]) == ("mild", "normal")
    assert out["disagree"] and "bed sensor sees breathing stop" in out["note"]
    assert pauses["outside_validation"] is None
    # the heart-rate screen was validated on apnoea patients only: 0/h is outside that
    assert cvhr["outside_validation"] == "0.0/h is outside the 15-70/h it was validated on"


def test_agreeing_screens_carry_no_note_and_a_high_pause_rate_is_flagged() -> None:
    assert apnoea_screens({"pauses_per_hour": 20.0, "cvhr_per_hour": 22.0})["note"] is None
    (pauses,) = apnoea_screens({"pauses_per_hour": 45.0})["screens"]
    assert pauses["band"] == "severe" and "outside the 0-31/h" in pauses["outside_validation"]


def test_implausible_stage_shares_are_flagged() -> None:
    from core.nights.stage_norms import stage_share_flags

    assert stage_share_flags({"light_pct": 55.0, "deep_pct": 20.0, "rem_pct": 25.0}) == {}
    flags = stage_share_flags({"light_pct": 72.0, "deep_pct": 18.0, "rem_pct": 2.1})
    assert list(flags) == ["rem"] and "outside the 10-35 %" in flags["rem"]
    assert stage_share_flags({"light_pct": None, "deep_pct": math.nan}) == {}
