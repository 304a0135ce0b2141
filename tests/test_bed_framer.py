"""Notifications -> contract records: strap samples and bed re-framing with gap reporting."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.ble.bed_profile import BedNotification
from core.ble.device_records import BedFramer, strap_sample
from core.ble.hrm import HeartRateMeasurement
from core.contract import BedFrame, validate
from core.contract.epochs import EPOCH_MS
from core.errors import DecodeError
from simulator.nights import bed_notifications, night_records
from tests.conftest import T0_MS, sim_night


def _notes(n_samples: int, per: int, fs: int = 100, t0: int = T0_MS, seq0: int = 0) -> list[BedNotification]:
    x = (np.arange(n_samples) % 1000).astype(np.int16)
    return [
        BedNotification((seq0 + k) % 65536, t0 + round(i * 1000 / fs), fs, x[i : i + per])
        for k, i in enumerate(range(0, n_samples, per))
    ]


def _feed(
    framer: BedFramer, notes: list[BedNotification], device: str = "bed-1", *, flush: bool = True
) -> list[BedFrame]:
    out: list[BedFrame] = []
    for n in notes:
        out += framer.feed(device, "s001", n, int(n.end_time_ms) + 50)
    return out + (framer.flush(device) if flush else [])


def test_simulated_night_reframes_to_the_direct_records() -> None:
    night = sim_night()
    framer = BedFramer()
    frames = _feed(framer, [n for _, n in bed_notifications(night, 50)])
    direct = [r for r in night_records(night, strap_device=None, bed_device="bed-1") if isinstance(r, BedFrame)]
    by_id = {f.record_id: f for f in frames}
    assert all(by_id[d.record_id].samples == d.samples for d in direct)
    assert framer.counts.gaps == 0
    assert framer.counts.duplicates == 0
    for f in frames:
        validate(f)


@pytest.mark.parametrize("per", [1, 37, 50, 128, 255])
def test_frames_are_cut_on_the_epoch_grid_whatever_the_notification_size(per: int) -> None:
    start = T0_MS + 12_340  # mid-epoch
    notes = _notes(100 * 95, per, t0=start)
    frames = _feed(BedFramer(), notes)
    assert np.concatenate([f.samples for f in frames]).tolist() == np.concatenate([n.samples for n in notes]).tolist()
    for f in frames:
        assert f.device_time_ms // EPOCH_MS == (f.device_time_ms + f.duration_ms - 1) // EPOCH_MS
    full = [f for f in frames if len(f.samples) == 3000]
    assert full
    assert all(f.device_time_ms % EPOCH_MS == 0 for f in full)


def test_a_sequence_gap_closes_the_frame_and_is_reported_downstream() -> None:
    notes = _notes(100 * 90, 50)
    lost = notes[70:75]  # 250 samples lost mid-epoch
    framer = BedFramer()
    frames = _feed(framer, notes[:70] + notes[75:])
    after = [f for f in frames if f.gap_samples]
    assert len(after) == 1
    assert after[0].gap_samples == sum(len(n.samples) for n in lost)
    assert after[0].device_time_ms == notes[75].device_time_ms
    assert framer.counts.gaps == 1
    assert framer.counts.gap_samples == 250
    total = sum(len(f.samples) for f in frames) + framer.counts.gap_samples
    assert total == 100 * 90


def test_a_frame_closed_by_a_long_gap_is_stamped_with_its_last_notification() -> None:
    """The notification after an 8-h gap closes the frame; the frame keeps its own ingest time."""
    notes = _notes(100 * 10, 50, t0=T0_MS + 5_000)  # 10 s into an epoch: stays open
    later = _notes(100 * 2, 50, t0=T0_MS + 8 * 3_600_000, seq0=len(notes) + 7)
    framer = BedFramer()
    frames = _feed(framer, notes + later, flush=False)
    assert len(frames) == 1
    assert frames[0].ingest_time_ms == int(notes[-1].end_time_ms) + 50
    validate(frames[0])  # within the contract's 1-h past skew
    (tail,) = framer.flush("bed-1")
    assert tail.ingest_time_ms == int(later[-1].end_time_ms) + 50


def test_duplicates_restarts_and_wraps() -> None:
    notes = _notes(100 * 40, 50, seq0=65500)  # wraps through 65535 -> 0 without a gap
    framer = BedFramer()
    frames = _feed(framer, [*notes[:10], notes[9], *notes[10:]], flush=False)
    assert framer.counts.duplicates == 1
    assert framer.counts.gaps == 0
    assert framer.counts.discontinuities == 0
    assert sum(len(f.samples) for f in frames) == 100 * 30  # the last epoch is still open

    restart = _notes(500, 50, t0=notes[-1].device_time_ms + 3_600_000, seq0=0)
    frames2 = _feed(framer, restart)
    assert framer.counts.discontinuities == 1
    assert framer.counts.gaps == 0
    assert len(frames2[0].samples) == 1000  # the open epoch, closed by the restart
    assert all(f.gap_samples == 0 for f in frames2)


def test_clock_not_set_is_rejected() -> None:
    note = BedNotification(0, 1000, 100, np.ones(5, dtype=np.int16), clock_set=False)
    with pytest.raises(DecodeError, match="clock"):
        BedFramer().feed("bed-1", "s001", note, T0_MS)


@settings(max_examples=60, deadline=None)
@given(
    per=st.integers(1, 255),
    drops=st.lists(st.integers(0, 200), max_size=6, unique=True),
    offset_ms=st.integers(0, 29_990).map(lambda v: v - v % 10),
)
def test_every_sample_is_framed_or_counted_as_gap(per: int, drops: list[int], offset_ms: int) -> None:
    notes = _notes(100 * 100, per, t0=T0_MS + offset_ms)
    dropped = {k for k in drops if 0 < k < len(notes)}
    kept = [k for k in range(len(notes)) if k not in dropped]
    framer = BedFramer()
    frames = _feed(framer, [notes[k] for k in kept])
    assert sum(len(f.samples) for f in frames) == sum(len(notes[k].samples) for k in kept)
    # samples lost before the last kept notification are reported; later ones cannot be known
    assert framer.counts.gap_samples == sum(len(notes[k].samples) for k in dropped if k < kept[-1])
    for f in frames:
        assert f.device_time_ms // EPOCH_MS == (f.device_time_ms + f.duration_ms - 1) // EPOCH_MS


# ------------------------------------------------------------------ straps


def test_strap_sample_drops_zero_rr_and_counts_it() -> None:
    m = HeartRateMeasurement(hr_bpm=61, rr_ms=(0.0, 990.234375), sensor_contact=True)
    rec, dropped = strap_sample(m, device_id="strap-1", subject_id="s001", receive_ms=T0_MS)
    assert dropped == 1
    assert rec.rr_ms == (990.234375,)
    assert rec.device_time_ms == rec.event_time_ms == T0_MS
    validate(rec)


def test_heart_rate_zero_is_valid_only_without_contact() -> None:
    no_contact = HeartRateMeasurement(hr_bpm=0, sensor_contact=False)
    rec, _ = strap_sample(no_contact, device_id="strap-1", subject_id="s001", receive_ms=T0_MS)
    validate(rec)
    for contact in (True, None):
        with pytest.raises(DecodeError, match="heart rate 0"):
            strap_sample(
                HeartRateMeasurement(hr_bpm=0, sensor_contact=contact),
                device_id="strap-1",
                subject_id="s001",
                receive_ms=T0_MS,
            )
