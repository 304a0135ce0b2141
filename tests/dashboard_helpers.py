"""A home filled with replayed nights, and the dashboard serving it, for the dashboard's tests."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from core.ble.device_status import StatusSnapshot, status_record
from core.contract import DeviceStatus, Record
from sleepstack.bench.fixtures import bench_settings, index_and_stage, simulated_night_records
from sleepstack.settings import Settings

SUBJECTS = ("s001", "s002", "s003")
HOURS = 4.5  # a night is scored from 4 h in bed


#: The devices' statuses: every battery starts full and loses 1 %/h, but s001's strap starts
#: at 24 % and loses 2 %/h (low, <= 20 %, from 1.5 h on); s002's bed goes silent (link lost)
#: and s003's strap is off the skin for the last :data:`SILENT_MIN` minutes.
LOW_STRAP, SILENT_BED, UNWORN_STRAP, SILENT_MIN = "strap-s001", "bed-s002", "strap-s003", 20


def battery_at(device: str, hours: float) -> int:
    start, drain = (24.0, 2.0) if device == LOW_STRAP else (100.0, 1.0)
    return int(start - drain * hours)


def device_statuses(t0_ms: int, end_ms: int) -> list[DeviceStatus]:
    """A status a minute of each subject's strap and bed over ``[t0_ms, end_ms)`` (see :data:`LOW_STRAP`)."""
    out = []
    quiet_from = end_ms - SILENT_MIN * 60_000
    for subject in SUBJECTS:
        for kind in ("strap", "bed"):
            device = f"{kind}-{subject}"
            for t in range(t0_ms, end_ms, 60_000):
                down = device == SILENT_BED and t >= quiet_from
                snap = StatusSnapshot(
                    kind,
                    connected=not down,
                    notifications=0 if down else (60 if kind == "strap" else 120),
                    last_notification_ms=quiet_from if down else t - 500,
                    battery_pct=battery_at(device, (t - t0_ms) / 3_600_000),
                    worn=(device != UNWORN_STRAP or t < quiet_from) if kind == "strap" else None,
                )
                out.append(status_record(snap, device_id=device, subject_id=subject, receive_ms=t))
    return out


@cache
def night_records(hours: float = HOURS) -> tuple[Record, ...]:
    """The first ``hours`` of a simulated night (strap + bed) of each of :data:`SUBJECTS`, with
    the devices' statuses (:func:`device_statuses`), in time order."""
    recs: list[Record] = []
    for k, subject in enumerate(SUBJECTS):
        night = simulated_night_records(subject, seed=k, apnea_per_hour=8.0)
        end = night[0].event_time_ms + hours * 3_600_000
        recs += [r for r in night if r.event_time_ms < end]
    t0 = min(r.event_time_ms for r in recs)
    recs += device_statuses(t0, int(t0 + hours * 3_600_000))
    return tuple(sorted(recs, key=lambda r: r.event_time_ms))


def fill_home(home: Path, hours: float = HOURS) -> tuple[Settings, str]:
    """Index the nights through the speed-layer handler and stage them; (settings, night)."""
    settings = bench_settings(home)
    return settings, index_and_stage(settings, list(night_records(hours)))


def register(settings: Settings, night: str) -> None:
    """The cohort in the registry (enrolled the day before the night), and s004, enrolled but never recorded."""
    from datetime import date, timedelta

    from core.contract.epochs import night_bounds_ms
    from core.registry import Assignment, Device, Subject
    from local.registry import LocalRegistry

    start, _ = night_bounds_ms((date.fromisoformat(night) - timedelta(days=1)).isoformat(), settings.tz)
    reg = LocalRegistry(settings.paths.registry_db)
    for sid in (*SUBJECTS, "s004"):
        if reg.get_subject(sid) is None:
            reg.add_subject(Subject(sid, enrolled_ms=start, tz=settings.tz))
            for kind in ("strap", "bed"):
                reg.add_device(Device(f"{kind}-{sid}", kind, f"{kind} of {sid}"), at_ms=start)
                reg.assign(Assignment(f"{kind}-{sid}", start, sid), at_ms=start)
    reg.close()
