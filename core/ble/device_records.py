"""From Bluetooth notifications to contract records: straps 1:1, bed frames re-framed.

* :func:`strap_sample` turns one decoded Heart Rate Measurement into a
  :class:`~core.contract.StrapSample`, dropping (and reporting) RR values of 0.
* :class:`BedFramer` re-frames a bed sensor's notifications (e.g. 50 samples each) into
  :class:`~core.contract.BedFrame` records cut at the 30-s epoch grid, so that each frame
  covers at most one epoch and an uninterrupted epoch is exactly one frame. A sequence
  gap (lost notifications, a reconnect) or a clock discontinuity closes the open frame;
  the next frame starts at its own first sample and carries the number of samples lost in
  ``gap_samples``: gaps are reported downstream, never bridged. A sequence number that
  restarts at 0 (the sensor rebooted or was switched off between nights) or a clock
  that goes backwards also closes the frame, counted as a discontinuity, not a gap.

Framing is a pure function of the notification stream (payloads and receive times), so
the same stream gives the same frames, and each record id one content, whatever the
collector's flush sizes, shutdowns, kills and restarts. A frame closes only when (a) its
epoch's last sample arrives, (b) the next notification is not contiguous, (c) the next
notification, though contiguous, is received more than :data:`IDLE_CLOSE_MS` after the frame's last one,
(d) the clock (``now_ms``) is that far past the frame's last receive time
(:meth:`BedFramer.close_idle`: whatever came later would close it by rule c), or (e) the
device's stream has ended (the end of a recording, :meth:`BedFramer.flush`). A collector
that stops mid-epoch keeps the open frame (the spool persists it) instead of closing it.

The framer is deterministic and its state (:class:`OpenFrame`, one per device) is plain
data, so the collector's spool can persist it in the same transaction as the
notifications it consumed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

import numpy as np

from core.ble.bed_profile import BedNotification
from core.ble.hrm import HeartRateMeasurement
from core.contract import BedFrame, StrapSample
from core.contract.epochs import EPOCH_MS
from core.errors import DecodeError

__all__ = ["IDLE_CLOSE_MS", "BedFramer", "FramerCounts", "OpenFrame", "check_measurement", "strap_sample"]

_SEQ_MOD: Final = 1 << 16
#: A bed frame whose device has been silent this long (receive time, ms) is closed: a
#: sensor notifies every ~0.5 s, so a minute of silence is a lost link or a device put away.
IDLE_CLOSE_MS: Final = 60_000


def check_measurement(m: HeartRateMeasurement) -> None:
    """The collector's validity rule for a decoded Heart Rate Measurement.

    Heart rate 0 is only meaningful without skin contact; otherwise :class:`DecodeError`.
    """
    if m.hr_bpm == 0 and m.sensor_contact is not False:
        contact = "unsupported" if m.sensor_contact is None else "detected"
        raise DecodeError("0x2A37", f"heart rate 0 while sensor contact is {contact}")


def strap_sample(
    m: HeartRateMeasurement, *, device_id: str, subject_id: str, receive_ms: int, ingest_ms: int | None = None
) -> tuple[StrapSample, int]:
    """The strap record of one measurement, and how many RR values of 0 it dropped.

    A strap has no clock: the collector's receive stamp is both device and event time.
    Heart rate 0 is only meaningful without skin contact; otherwise the notification is
    rejected with :class:`DecodeError` (the caller quarantines the payload).
    """
    check_measurement(m)
    rr = tuple(v for v in m.rr_ms if v > 0)
    sample = StrapSample(
        device_id=device_id,
        subject_id=subject_id,
        device_time_ms=receive_ms,
        event_time_ms=receive_ms,
        ingest_time_ms=receive_ms if ingest_ms is None else ingest_ms,
        hr_bpm=m.hr_bpm,
        rr_ms=rr,
        sensor_contact=m.sensor_contact,
        energy_kj=m.energy_kj,
    )
    return sample, len(m.rr_ms) - len(rr)


@dataclass(slots=True)
class OpenFrame:
    """A bed frame being filled: samples so far and what the next notification must be."""

    subject_id: str
    start_ms: int
    fs_hz: int
    samples: bytearray  # int16 little-endian
    next_seq: int
    next_ms: float
    gap_samples: int = 0
    #: Receive time of the last notification that added samples: the frame's ingest time.
    #: A frame closed by a gap is stamped with it, not with the (possibly hours later)
    #: receive time of the notification after the gap.
    last_receive_ms: int = 0

    @property
    def n(self) -> int:
        return len(self.samples) // 2


@dataclass(slots=True)
class FramerCounts:
    """What the framer saw; every field only grows."""

    notifications: int = 0
    frames: int = 0
    gaps: int = 0
    gap_samples: int = 0
    duplicates: int = 0
    discontinuities: int = 0  # clock went backwards, sensor restarted (seq 0) or rate changed
    idle_closes: int = 0  # frames closed after IDLE_CLOSE_MS without a notification


@dataclass
class BedFramer:
    """Re-frames bed notifications per device; see the module docstring."""

    open: dict[str, OpenFrame] = field(default_factory=dict)
    counts: FramerCounts = field(default_factory=FramerCounts)

    def feed(self, device_id: str, subject_id: str, note: BedNotification, receive_ms: int) -> list[BedFrame]:
        """Add one notification; returns the frames it closed (possibly none)."""
        if not note.clock_set:
            raise DecodeError("bed frame", "device clock not set: timestamps are not UTC")
        self.counts.notifications += 1
        out: list[BedFrame] = []
        st = self.open.get(device_id)
        gap = 0
        if st is not None:
            half = 500.0 / note.fs_hz
            dt = note.device_time_ms - st.next_ms
            if note.fs_hz != st.fs_hz:
                self.counts.discontinuities += 1
                out.extend(self._close(device_id))
            elif note.seq == (st.next_seq - 1) % _SEQ_MOD and dt < -half:
                self.counts.duplicates += 1  # a notification delivered twice
                return out
            elif note.seq != st.next_seq or abs(dt) > half:
                if dt < -half or (note.seq == 0 and st.next_seq != 0):
                    self.counts.discontinuities += 1  # clock went back, or the sensor restarted
                else:
                    gap = max(0, round(dt * note.fs_hz / 1000))
                    self.counts.gaps += 1
                    self.counts.gap_samples += gap
                out.extend(self._close(device_id))
            elif receive_ms - st.last_receive_ms > IDLE_CLOSE_MS:  # contiguous, but long after: rule (c)
                self.counts.idle_closes += 1
                out.extend(self._close(device_id))
        self._append(device_id, subject_id, note, gap, receive_ms, out)
        return out

    def _append(
        self, device_id: str, subject_id: str, note: BedNotification, gap: int, receive_ms: int, out: list[BedFrame]
    ) -> None:
        samples = np.asarray(note.samples, dtype="<i2")
        period = 1000.0 / note.fs_hz
        t0 = float(note.device_time_ms)
        i = 0
        while i < len(samples):
            t_i = t0 + i * period
            st = self.open.get(device_id)
            if st is None:
                st = OpenFrame(subject_id, round(t_i), note.fs_hz, bytearray(), note.seq, t_i, gap_samples=gap)
                self.open[device_id] = st
                gap = 0
            st.last_receive_ms = receive_ms
            boundary = (st.start_ms // EPOCH_MS + 1) * EPOCH_MS
            k = min(len(samples), i + max(0, int(np.ceil((boundary - t_i) / period - 1e-9))))
            st.samples += samples[i:k].tobytes()
            i = k
            st.next_ms = t0 + k * period
            if i < len(samples) or st.next_ms >= boundary - 1e-6:
                out.extend(self._close(device_id))
        st_after = self.open.get(device_id)
        if st_after is not None:
            st_after.next_seq = (note.seq + 1) % _SEQ_MOD
        else:  # the notification ended exactly on a boundary: remember continuity anyway
            end = t0 + len(samples) * period
            self.open[device_id] = OpenFrame(
                subject_id, round(end), note.fs_hz, bytearray(), (note.seq + 1) % _SEQ_MOD, end, 0, receive_ms
            )

    def _close(self, device_id: str) -> list[BedFrame]:
        st = self.open.pop(device_id)
        if st.n == 0:
            return []
        self.counts.frames += 1
        frame = BedFrame(
            device_id=device_id,
            subject_id=st.subject_id,
            device_time_ms=st.start_ms,
            event_time_ms=st.start_ms,
            ingest_time_ms=st.last_receive_ms,
            fs_hz=float(st.fs_hz),
            samples=tuple(np.frombuffer(bytes(st.samples), dtype="<i2").tolist()),
            gap_samples=st.gap_samples,
        )
        return [frame]

    def flush(self, device_id: str) -> list[BedFrame]:
        """Close a device's open frame because its stream has ended (the end of a recording).

        Not for a collector that merely stops: a restart may continue the frame. Empty
        frames are dropped.
        """
        return self._close(device_id) if device_id in self.open else []

    def close_idle(self, now_ms: int) -> list[BedFrame]:
        """Close the frames whose device has been silent for more than :data:`IDLE_CLOSE_MS` at ``now_ms``.

        Any notification still to come is received later still, so rule (c) would close
        the frame before it anyway: closing now gives the same frames, only sooner.
        """
        out: list[BedFrame] = []
        for device_id in [d for d, st in self.open.items() if now_ms - st.last_receive_ms > IDLE_CLOSE_MS]:
            self.counts.idle_closes += 1
            out.extend(self._close(device_id))
        return out
