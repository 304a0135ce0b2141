"""The Spark nightly job on a hand-built raw lake: bad nights, reruns, late data."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batch_layer.lake_schema import RAW_SCHEMA
from batch_layer.nightly_job import run_nightly
from batch_layer.raw_landing import partition_keys
from core.contract import Record, to_row
from local.spark import local_spark
from simulator.nights import SimConfig, night_records, simulate_night
from tests.conftest import T0_MS

pytestmark = [pytest.mark.spark, pytest.mark.slow]
NIGHT = "2026-01-05"
HOUR_MS = 3_600_000


def _write(lake: Path, records: list[Record], name: str, ingest_shift_ms: int = 0) -> None:
    by_dt: dict[str, list[dict[str, object]]] = {}
    for r in records:
        row = to_row(r)
        row["ingest_time_ms"] = int(row["ingest_time_ms"]) + ingest_shift_ms  # type: ignore[call-overload]
        by_dt.setdefault(partition_keys(r)["dt"], []).append(row)
    for dt, rows in by_dt.items():
        d = lake / "raw" / f"dt={dt}"
        d.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(rows, schema=RAW_SCHEMA), d / f"{name}.parquet")


def _records(subject: str, seed: int, *, strap: bool = True, bed: bool = True) -> list[Record]:
    night = simulate_night(SimConfig(subject, T0_MS, seed=seed))
    return night_records(
        night, strap_device=f"strap-{subject}" if strap else None, bed_device=f"bed-{subject}" if bed else None
    )


def _table(path: Path) -> pd.DataFrame:
    df = pd.read_parquet(path)
    df["night"] = df["night"].astype(str)
    keys = ["subject_id", "night"] + (["epoch_start_ms"] if "epoch_start_ms" in df else [])
    return df.sort_values(keys).reset_index(drop=True)


def test_bad_nights_get_defined_outcomes_reruns_are_identical_and_late_data_restages(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    good = _records("s-good", 1)
    short = _records("s-short", 2)
    gappy = [r for r in _records("s-gappy", 3, bed=False) if not (2 * HOUR_MS < r.event_time_ms - T0_MS < 4 * HOUR_MS)]
    _write(lake, good + good[: len(good) // 3], "good-with-duplicates")  # a third of the records twice
    _write(lake, [r for r in short if r.event_time_ms - T0_MS < 40 * 60_000], "short")
    _write(lake, gappy, "gappy")
    spark = local_spark()
    res = run_nightly(spark, str(lake / "raw"), str(lake / "curated"), [NIGHT])
    assert res.subject_nights == 3 and res.reprocessed == []

    nights = _table(lake / "curated" / "nights").set_index("subject_id")
    assert nights.loc["s-good", "status"] == "staged" and nights.loc["s-good", "coverage_pct"] > 95
    assert nights.loc["s-good", "pauses_per_hour"] >= 0 and 0 <= nights.loc["s-good", "sleep_score"] <= 100
    assert nights.loc["s-short", "status"] == "insufficient"
    assert nights.loc["s-short", "status_reason"].startswith("under 4 h in bed")
    assert nights.loc["s-gappy", "status"] == "staged" and pd.isna(nights.loc["s-gappy", "pauses_per_hour"])
    epochs = _table(lake / "curated" / "epochs")
    gappy_epochs = epochs[epochs["subject_id"] == "s-gappy"]
    unscored = gappy_epochs["stage_label"] == "unscored"
    assert 230 < unscored.sum() <= 240 and gappy_epochs.loc[unscored, "stage"].isna().all()  # the 2-h hole
    good_epochs = epochs[epochs["subject_id"] == "s-good"]
    assert good_epochs["epoch_start_ms"].is_unique  # duplicates dropped

    before = {t: _table(lake / "curated" / t) for t in ("epochs", "nights")}
    run_nightly(spark, str(lake / "raw"), str(lake / "curated"), [NIGHT])
    for t, df in before.items():
        pd.testing.assert_frame_equal(_table(lake / "curated" / t), df)

    # the short night's collector uploads the rest of its spool three days later
    _write(lake, [r for r in short if r.event_time_ms - T0_MS >= 40 * 60_000], "short-late", 72 * HOUR_MS)
    res = run_nightly(spark, str(lake / "raw"), str(lake / "curated"), ["2026-01-08"])
    assert res.reprocessed == [NIGHT] and res.nights == [NIGHT, "2026-01-08"]
    nights = _table(lake / "curated" / "nights").set_index("subject_id")
    assert nights.loc["s-short", "status"] == "staged"
    res = run_nightly(spark, str(lake / "raw"), str(lake / "curated"), ["2026-01-09"])
    assert res.reprocessed == []  # staged once, the mark is cleared


def test_each_subjects_nights_are_cut_in_their_own_time_zone(tmp_path: Path) -> None:
    """22:00 UTC is noon on Kiritimati (UTC+14): that subject's night is the next day's evening."""
    lake = tmp_path / "lake"
    here = [r for r in _records("s-utc", 1) if r.event_time_ms - T0_MS < 5 * HOUR_MS]
    away = [r for r in _records("s-kiritimati", 2) if 60_000 <= r.event_time_ms - T0_MS < 5 * HOUR_MS]
    _write(lake, here + away, "two-zones")
    zones = {"s-kiritimati": "Pacific/Kiritimati"}
    res = run_nightly(
        local_spark(), str(lake / "raw"), str(lake / "curated"), [NIGHT, "2026-01-06"], "UTC", subject_tz=zones
    )
    assert res.subject_nights == 2
    nights = _table(lake / "curated" / "nights")
    assert dict(zip(nights["subject_id"], nights["night"], strict=True)) == {
        "s-utc": NIGHT,  # noon to noon in UTC: the evening of the 5th
        "s-kiritimati": "2026-01-06",  # noon to noon in its own zone: the evening of the 6th
    }
