"""Speed/batch agreement: the same simulated nights through the Lambda handler and the nightly job's functions.

Every quantity both layers compute is compared, epoch by epoch and night by night:

====================  ============================================  =====================
quantity              speed layer                                   tolerance
====================  ============================================  =====================
heart rate            bed / strap epoch documents                   1e-6 bpm (same doc)
breathing rate        bed epoch documents                           1e-6 /min
movement, presence    bed epoch documents                           exact
pauses per epoch      pause alerts starting in the epoch            exact
pauses per night      pause alerts starting in staged sleep         exact
bed exits per night   bed-exit alerts starting in the in-bed span   exact
====================  ============================================  =====================
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pandas as pd
import pytest

from core.contract.epochs import EPOCH_MS
from core.nights.stages import SleepStage
from simulator.nights import SimConfig, simulate_night
from sleepstack.evaluation.layers import Drop, LayersOutput, collected_records, run_layers
from tests.conftest import T0_MS

pytestmark = pytest.mark.slow


@cache
def _layers(apnea_per_hour: float, seed: int) -> LayersOutput:
    night = simulate_night(SimConfig("s001", T0_MS, seed, apnea_per_hour=apnea_per_hour))
    drop_at = night.t0_ms + 2 * 3_600_000 + 4_321
    drops = [Drop("bed-1", drop_at, drop_at + 20_000), Drop("strap-1", drop_at + 600_000, drop_at + 620_000)]
    return run_layers(collected_records(night, strap_device="strap-1", bed_device="bed-1", drops=drops))


def _starts(alerts: list[dict], kind: str) -> pd.Series:
    starts = [a["start_ms"] - a["start_ms"] % EPOCH_MS for a in alerts if a["kind"] == kind]
    return pd.Series(starts, dtype="int64").value_counts()


@pytest.mark.parametrize(("apnea_per_hour", "seed"), [(15.0, 2), (30.0, 5)])
def test_every_shared_quantity_agrees_epoch_by_epoch(apnea_per_hour: float, seed: int) -> None:
    out = _layers(apnea_per_hour, seed)
    batch = out.epochs.set_index("epoch_start_ms")
    bed = pd.DataFrame([d for d in out.vitals if d["source"] == "bed"]).set_index("epoch_start_ms")
    strap = pd.DataFrame([d for d in out.vitals if d["source"] == "strap"]).set_index("epoch_start_ms")
    assert len(bed) > 600 and len(strap) > 600
    both = batch.join(bed[["hr_bpm", "br_per_min", "movement", "presence"]], rsuffix="_speed", how="inner")
    assert len(both) == len(bed)  # every epoch the speed layer published, the batch staged
    assert (both["presence"] == both["presence_speed"]).all()
    np.testing.assert_allclose(both["movement"], both["movement_speed"], atol=1e-6)
    br = both["br_per_min_speed"].astype(float)
    np.testing.assert_allclose(both["br_per_min"].astype(float), br, atol=1e-6, equal_nan=True)
    from_bed = both[both["hr_source"] == "bed"]
    np.testing.assert_allclose(from_bed["hr_bpm"], from_bed["hr_bpm_speed"].astype(float), atol=1e-6)
    from_strap = batch[batch["hr_source"] == "strap"].join(strap[["hr_bpm"]], rsuffix="_speed", how="inner")
    assert len(from_strap) > 0  # the bed's gap and the exit are bridged by the strap
    np.testing.assert_allclose(from_strap["hr_bpm"], from_strap["hr_bpm_speed"].astype(float), atol=1e-6)

    speed_pauses = _starts(out.alerts, "breathing_pause").reindex(bed.index, fill_value=0)
    batch_pauses = batch["breathing_pauses"].reindex(bed.index).astype(int)
    assert speed_pauses.sum() > 20
    pd.testing.assert_series_equal(batch_pauses, speed_pauses, check_names=False)


@pytest.mark.parametrize(("apnea_per_hour", "seed"), [(15.0, 2), (30.0, 5)])
def test_night_pauses_and_bed_exits_agree(apnea_per_hour: float, seed: int) -> None:
    out = _layers(apnea_per_hour, seed)
    night = out.nights.iloc[0]
    epochs = out.epochs.set_index("epoch_start_ms")
    in_bed = epochs.index[epochs["presence"]]
    span = epochs.loc[in_bed.min() : in_bed.max()]
    asleep = span.index[(span["stage"].notna()) & (span["stage"] != SleepStage.WAKE) & span["breathing_pauses"].notna()]
    pauses = _starts(out.alerts, "breathing_pause")
    assert night["breathing_pauses"] == int(pauses.reindex(asleep, fill_value=0).sum())
    hours = len(asleep) * EPOCH_MS / 3_600_000
    assert night["pauses_per_hour"] == pytest.approx(night["breathing_pauses"] / hours)
    exits = _starts(out.alerts, "bed_exit")
    assert night["bed_exits"] == int(exits.reindex(span.index, fill_value=0).sum()) == 1
