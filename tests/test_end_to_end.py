"""The whole path on the real local stack: kinesalite, poller + handler, delivery, Spark, DuckDB."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from batch_layer.nightly_job import run_nightly
from local.home import Home
from local.live_store import LocalLiveStore
from local.spark import local_spark
from simulator.nights import FIRST_NIGHT
from sleepstack.demo import BAD_RECORDS, DEMO_FAULTS, run_demo

pytestmark = [pytest.mark.slow, pytest.mark.spark, pytest.mark.integration]


def _read(path: Path) -> pd.DataFrame:
    return (
        pq.read_table(path)
        .to_pandas()
        .sort_values(
            [
                "subject_id",
                "night",
                *(
                    ["epoch_start_ms"]
                    if "epoch_start_ms" in pq.read_schema(next(path.rglob("*.parquet"))).names
                    else []
                ),
            ]
        )
        .reset_index(drop=True)
    )


def test_demo_cohort_reconciles_and_reruns_identically(tmp_path: Path) -> None:
    lines: list[str] = []
    result = run_demo(
        tmp_path / "demo", subjects=1, nights=2, seed=3, progress=False, first_night=FIRST_NIGHT, say=lines.append
    )
    assert lines[-1] == result.reconciliation_line()
    assert result.produced > 40_000
    assert result.produced == result.streamed == result.speed_layer == result.landed
    assert result.lost == 0 and result.duplicated == 0
    assert result.quarantined_speed == result.quarantined_delivery == len(BAD_RECORDS)
    assert list(result.nights["night"]) == ["2026-01-05", "2026-01-06"]
    # staging accuracy is measured on real PSG (test_staging_model); on simulated physiology
    # the plumbing must still separate sleep from wake
    assert (result.nights["sleep_wake_pct"] > 80).all()
    assert result.bed_vitals > 1500  # two nights of bed epochs: every bed frame yields its epoch
    # breathing pauses per hour: the simulator's apnoeas per hour of its sleep, within 1/h (issue 31)
    assert (result.nights["true_pauses_per_hour"] > 0).all()
    assert ((result.nights["pauses_per_hour"] - result.nights["true_pauses_per_hour"]).abs() <= 1.0).all()

    # the first night's device faults raise their technical alerts, each from a status at most a minute late
    truth = pq.read_table(Home(tmp_path / "demo").truth / "epochs.parquet").to_pandas()
    t0 = int(truth["epoch_start_ms"].min())
    night_end = int(truth["epoch_start_ms"][truth["night"] == truth["night"].min()].max())
    during = [a for a in result.technical if a["start_ms"] <= night_end]  # the first night's episodes
    first = {(a["kind"], a["device_id"]): a for a in during}
    assert set(first) == {
        ("battery_low", "strap-s001"),
        ("not_worn", "strap-s001"),
        ("contact_lost", "strap-s001"),
        ("device_silent", "bed-s001"),
    }
    # later: only silences of devices idle between and after the nights (they stay assigned by day)
    assert {a["kind"] for a in result.technical if a["start_ms"] > night_end} <= {"device_silent", "battery_low"}
    step = 65_000
    slip_a, slip_b = DEMO_FAULTS.slip_window(t0)
    assert slip_a <= first[("not_worn", "strap-s001")]["start_ms"] <= slip_a + step
    nw = first[("not_worn", "strap-s001")]
    assert nw["status"] == "closed" and slip_b <= nw["end_ms"] <= slip_b + step
    quiet_a, _ = DEMO_FAULTS.silence_window(t0)
    assert quiet_a - 2_000 <= first[("device_silent", "bed-s001")]["start_ms"] <= quiet_a
    low = DEMO_FAULTS.battery_low_from(t0)
    assert low - step <= first[("battery_low", "strap-s001")]["start_ms"] <= low + step

    # the notifier delivered every episode: clinical ones by e-mail and signed webhook, technical by e-mail
    episodes = LocalLiveStore(Home(tmp_path / "demo").live_db).alerts_changed_since(0)
    clinical = sum(1 for a in episodes if a["category"] == "clinical")
    technical = len(episodes) - clinical
    d = result.delivery
    assert d is not None and clinical > 0 and d.episodes == len(episodes)
    assert d.expected == 2 * clinical + technical and d.missing == 0, d.missing_keys[:3]
    assert d.emails == clinical + technical and d.webhooks == clinical
    assert d.line() in lines

    lake = tmp_path / "demo" / "lake"
    before = {t: _read(lake / "curated" / t) for t in ("epochs", "nights")}
    run_nightly(local_spark(), str(lake / "raw"), str(lake / "curated"), ["2026-01-06"])
    for t, df in before.items():
        pd.testing.assert_frame_equal(_read(lake / "curated" / t), df)
    assert len(list((lake / "curated" / "nights").glob("night=2026-01-06/*.parquet"))) == 1
