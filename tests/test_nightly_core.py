"""The per-subject-night function the Spark job applies, called directly on raw rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from batch_layer.stage_models import bundled
from core.contract import BedFrame, from_wire, to_row, to_wire
from core.contract.epochs import night_of
from core.nights.classifier import DEFAULT_MODEL, RR_MODEL
from core.nights.nightly import EPOCH_COLUMNS, NIGHT_COLUMNS, stage_subject_night, summarize_night
from core.nights.stages import SleepStage
from core.signals.vitals import bed_epoch_vitals
from simulator.nights import night_records
from tests.conftest import sim_night


def _raw(hours: float | None = None, strap: bool = True) -> pd.DataFrame:
    night = sim_night()
    recs = night_records(night, strap_device="strap-1" if strap else None, bed_device="bed-1")
    if hours is not None:
        recs = [r for r in recs if r.event_time_ms < night.t0_ms + hours * 3_600_000]
    df = pd.DataFrame([to_row(r) for r in recs])
    df["night"] = night_of(night.t0_ms)
    return df


def test_batch_agrees_with_speed_layer_epoch_for_epoch() -> None:
    raw = _raw(hours=1.5)
    epochs = stage_subject_night(raw, models=bundled()).set_index("epoch_start_ms")
    bed_rows = raw[raw["kind"] == "bed"]
    from core.contract import from_row

    for row in bed_rows.head(60).to_dict("records"):
        rec = from_wire(to_wire(from_row(row)))  # what the speed layer decodes
        assert isinstance(rec, BedFrame)
        (doc,) = bed_epoch_vitals(
            rec.samples, rec.fs_hz, rec.event_time_ms, subject_id=rec.subject_id, device_id=rec.device_id
        )
        batch = epochs.loc[doc["epoch_start_ms"]]
        assert bool(batch["presence"]) == doc["presence"]
        assert np.isclose(batch["movement"], doc["movement"])
        for field in ("br_per_min",):
            assert (doc[field] is None and np.isnan(batch[field])) or np.isclose(batch[field], doc[field])
        if doc["hr_bpm"] is not None:
            assert np.isclose(batch["hr_bpm"], doc["hr_bpm"])


def test_duplicates_do_not_change_the_result() -> None:
    raw = _raw(hours=2)
    once = stage_subject_night(raw, models=bundled())
    twice = stage_subject_night(
        pd.concat([raw, raw.sample(frac=0.3, random_state=1)]).sample(frac=1, random_state=2), models=bundled()
    )
    pd.testing.assert_frame_equal(once.reset_index(drop=True), twice.reset_index(drop=True))
    assert list(once.columns) == [c for c, _ in EPOCH_COLUMNS]


def test_each_staged_epoch_carries_its_stage_probabilities() -> None:
    epochs = stage_subject_night(_raw(hours=2), models=bundled())
    p = epochs[[f"p_{s.label}" for s in SleepStage]].to_numpy(dtype=float)
    scored = epochs["stage"].notna().to_numpy()
    assert scored.any() and np.allclose(p[scored].sum(axis=1), 1.0) and np.isnan(p[~scored]).all()
    stage = epochs["stage"].to_numpy(dtype=float, na_value=np.nan)
    conf = epochs["stage_confidence"].to_numpy(dtype=float)
    np.testing.assert_allclose(conf[scored], p[scored, stage[scored].astype(int)])
    out_of_bed = scored & ~epochs["presence"].to_numpy(dtype=bool)
    assert (p[out_of_bed, SleepStage.WAKE] == 1.0).all()


@pytest.mark.parametrize("strap", [False, True])
def test_full_night_summary_and_agreement(strap: bool) -> None:
    night = sim_night()
    epochs = stage_subject_night(_raw(strap=strap), models=bundled())
    summary = summarize_night(epochs)
    assert list(summary.columns) == [c for c, _ in NIGHT_COLUMNS]
    row = summary.iloc[0]
    assert row["status"] == "staged" and row["coverage_pct"] > 90
    # staged from heart rate by default; the strap's RR gives HRV coverage and the apnoea screen
    assert row["method"] == DEFAULT_MODEL and (row["rr_coverage_pct"] > 90) == strap
    assert pd.isna(row["cvhr_per_hour"]) != strap
    truth_tst = (night.epochs.stage != 0).sum() / 2
    assert abs(row["total_sleep_time_min"] - truth_tst) < 60
    truth = pd.Series(night.epochs.stage, index=night.t0_ms + (night.epochs.t_s * 1000).astype(np.int64))
    staged = epochs.set_index("epoch_start_ms")["stage"]
    # 4-class accuracy is validated on real PSG (test_staging_model, test_slpdb_eval); simulated
    # physiology is not real enough for that, but sleep and wake must come out right
    assert ((staged == 0) == (truth == 0)).mean() > 0.8


def test_rr_staging_is_opt_in() -> None:
    epochs = stage_subject_night(_raw(hours=4.5), models=bundled(), rr_staging=True)
    row = summarize_night(epochs).iloc[0]
    assert row["method"] == RR_MODEL and set(epochs["method"]) == {RR_MODEL} and row["status"] == "staged"
    # on the simulator's heart it calls more wake than the heart-rate model (README: staging from RR)


def test_short_or_empty_nights_have_a_defined_outcome() -> None:
    summary = summarize_night(stage_subject_night(_raw(hours=0.5), models=bundled()))
    assert summary.iloc[0]["status"] == "insufficient" and pd.isna(summary.iloc[0]["total_sleep_time_min"])
    # an hour in bed is staged but not scored: a nap must not outscore a full night
    nap = summarize_night(stage_subject_night(_raw(hours=1.2), models=bundled())).iloc[0]
    assert nap["status"] == "insufficient" and nap["status_reason"].startswith("under 4 h in bed")
    assert pd.isna(nap["sleep_score"]) and pd.isna(nap["total_sleep_time_min"])
    assert stage_subject_night(_raw().iloc[0:0], models=bundled()).empty


def test_strap_only_night_is_staged_from_heart_rate_alone() -> None:
    raw = _raw(hours=3)
    epochs = stage_subject_night(raw[raw["kind"] == "strap"], models=bundled())
    assert (epochs["hr_source"] == "strap").mean() > 0.9
    assert set(np.unique(epochs["stage"])) <= {0, 1, 2, 3}


def test_two_contents_under_one_id_keep_the_most_complete_whatever_the_order() -> None:
    import pandas as pd

    from core.contract.conflicts import drop_duplicate_records

    whole = {"record_id": "a" * 32, "kind": "bed", "samples": [1] * 3000, "ingest_time_ms": 20}
    cut = {"record_id": "a" * 32, "kind": "bed", "samples": [1] * 2550, "ingest_time_ms": 10}
    other = {"record_id": "b" * 32, "kind": "bed", "samples": [2] * 10, "ingest_time_ms": 5}
    for rows in ([whole, cut, other, cut], [cut, other, whole], [other, cut, whole, whole]):
        kept, conflicts = drop_duplicate_records(pd.DataFrame(rows))
        assert conflicts == 1
        assert sorted((r["record_id"][0], len(r["samples"])) for r in kept.to_dict("records")) == [
            ("a", 3000),
            ("b", 10),
        ]
    same, conflicts = drop_duplicate_records(pd.DataFrame([other, other]))
    assert conflicts == 0 and len(same) == 1


def _without(raw: pd.DataFrame, kinds: tuple[str, ...], start_h: float, minutes: float) -> pd.DataFrame:
    """``raw`` less the records of ``kinds`` that start in [t0 + start_h, + minutes)."""
    t0 = sim_night().t0_ms
    a, b = t0 + start_h * 3_600_000, t0 + start_h * 3_600_000 + minutes * 60_000
    cut = raw["kind"].isin(kinds) & (raw["event_time_ms"] >= a) & (raw["event_time_ms"] < b)
    return raw[~cut].reset_index(drop=True)


def test_completeness_counts_the_hours_and_gaps_that_were_taken_away() -> None:
    full = summarize_night(stage_subject_night(_raw(), models=bundled())).iloc[0]
    assert full["completeness"] == "complete" and full["gaps"] == 0 and full["completeness_reason"] is None
    assert full["strap_hours"] == pytest.approx(full["recorded_hours"], abs=1 / 120)

    # the strap slipped off for 45 min while the bed sensor kept recording: still complete
    slipped = summarize_night(stage_subject_night(_without(_raw(), ("strap",), 3.0, 45), models=bundled())).iloc[0]
    assert slipped["strap_hours"] == pytest.approx(full["strap_hours"] - 0.75, abs=2 / 120)
    assert slipped["bed_hours"] == pytest.approx(full["bed_hours"], abs=1 / 120)
    assert slipped["gaps"] == 0 and slipped["completeness"] == "complete"

    # both devices silent for 40 min: one gap of 40 min (within a frame), a partial night saying why
    silent = summarize_night(stage_subject_night(_without(_raw(), ("strap", "bed"), 3.0, 40), models=bundled())).iloc[0]
    assert silent["gaps"] == 1 and 38.0 <= silent["longest_gap_min"] <= 41.0
    assert silent["completeness"] == "partial" and "-min gap without data" in silent["completeness_reason"]
    assert silent["bed_hours"] == pytest.approx(full["bed_hours"] - 40 / 60, abs=2 / 60)

    short = summarize_night(stage_subject_night(_raw(hours=2.0), models=bundled())).iloc[0]
    assert short["completeness"] == "insufficient" and short["completeness_reason"] == short["status_reason"]
