"""One respiratory-event list from the bed's pauses and the strap's heart-rate cycles
(core.nights.respiratory_events), checked on constructed beats and on simulated nights whose
apnoeas are known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from batch_layer.stage_models import bundled
from core.contract import to_row
from core.contract.epochs import night_of
from core.nights.nightly import stage_subject_night
from core.nights.respiratory_events import SURGE_MIN_BPM, epoch_events, hr_surge_bpm
from simulator.nights import FIRST_NIGHT_T0_MS, SimConfig, night_records, simulate_night

GRID = np.arange(0, 10 * 30_000, 30_000)


def _beats(hr_at: object, seconds: float = 300.0) -> tuple[np.ndarray, np.ndarray]:
    """Beats (s, ms) of a heart rate ``hr_at(t)`` beats/min."""
    t, out = 0.0, []
    while t < seconds:
        rr = 60_000.0 / hr_at(t)  # type: ignore[operator]
        t += rr / 1000.0
        out.append((t, rr))
    arr = np.array(out)
    return arr[:, 0], arr[:, 1]


def test_a_pause_with_a_surge_a_pause_without_and_a_strap_only_cycle() -> None:
    flat_t, flat_rr = _beats(lambda t: 60.0)
    surge_t, surge_rr = _beats(lambda t: 60.0 + (15.0 if 100.0 <= t < 110.0 else 0.0))
    assert hr_surge_bpm(flat_t, flat_rr, 95.0) == pytest.approx(0.0, abs=0.1)
    assert hr_surge_bpm(surge_t, surge_rr, 95.0) == pytest.approx(15.0, abs=1.0)
    pauses = [(75_000, 95_000)]  # 20 s, starting in epoch 2, ending 5 s before the surge
    bed = np.ones(10, dtype=bool)
    bed[7:] = False  # the bed sensor gave no epoch from 210 s
    cycles = np.zeros(10)
    cycles[[4, 8]] = 1  # a heart-rate cycle where the bed saw breathing, and one where it saw nothing
    calm = epoch_events(GRID, pauses, bed, flat_t, flat_rr, cycles)
    assert calm.kind == [None, None, "pause", None, None, None, None, None, "cvhr", None]
    assert calm.pause_s[2] == 20.0 and calm.hr_surge_bpm[2] < SURGE_MIN_BPM
    seen = epoch_events(GRID, pauses, bed, surge_t, surge_rr, cycles)
    assert seen.kind[2] == "pause+cvhr" and seen.hr_surge_bpm[2] >= SURGE_MIN_BPM
    no_strap = epoch_events(GRID, pauses, bed, None, None, np.full(10, np.nan))
    assert no_strap.kind[2] == "pause" and np.isnan(no_strap.hr_surge_bpm[2])


def _events(rate: float, seed: int, bed: str | None) -> tuple[pd.DataFrame, list[int]]:
    sim = simulate_night(SimConfig("s1", FIRST_NIGHT_T0_MS, seed, apnea_per_hour=rate))
    raw = pd.DataFrame([to_row(r) for r in night_records(sim, strap_device="strap-1", bed_device=bed)])
    raw["night"] = night_of(sim.t0_ms)
    epochs = stage_subject_night(raw, models=bundled())
    truth = [sim.t0_ms + int(float(e["start_s"]) * 1000) for e in sim.events if e["kind"] == "apnea"]
    return epochs[epochs["resp_event"].notna()], truth


def _matched(starts: np.ndarray, truth: list[int]) -> tuple[float, float]:
    """Sensitivity (true apnoeas with an event starting within one epoch) and PPV."""
    sens = np.mean([np.any(np.abs(starts - t) <= 30_000) for t in truth]) if truth else float("nan")
    ppv = np.mean([np.any(np.abs(np.array(truth) - s) <= 30_000) for s in starts]) if len(starts) else float("nan")
    return float(sens), float(ppv)


@pytest.mark.parametrize("seed", [1, 2])
def test_on_simulated_nights_every_apnoea_is_one_event_with_both_devices_evidence(seed: int) -> None:
    events, truth = _events(30.0, seed, "bed-1")
    sens, ppv = _matched(events["epoch_start_ms"].to_numpy(), truth)
    assert len(truth) > 100 and sens >= 0.95 and ppv >= 0.95
    both = (events["resp_event"] == "pause+cvhr").mean()
    assert both >= 0.9 and events["pause_s"].min() >= 10.0 and events["hr_surge_bpm"].median() >= 10.0
    quiet, _ = _events(0.0, seed, "bed-1")
    assert quiet.empty


def test_without_a_bed_sensor_the_strap_alone_finds_fewer_but_right_ones() -> None:
    events, truth = _events(30.0, 1, None)
    sens, ppv = _matched(events["epoch_start_ms"].to_numpy(), truth)
    assert set(events["resp_event"]) == {"cvhr"} and events["pause_s"].isna().all()
    # measured PPV 0.97, sensitivity 0.97 on seed 1 (0.94 and 0.96 on seeds 2 and 3), against 1.0 with
    # the bed (the test above): a run's apnoeas leave heart-rate cycles, but not every one of them
    assert ppv >= 0.9 and 0.9 <= sens < 1.0
