"""Per-epoch vitals on the shared 30-s grid, and the vitals document's one definition.

The speed layer (Lambda) and the batch layer (Spark) both call :func:`bed_epoch_vitals`
and :func:`strap_epoch_vitals`; they see the same samples for an epoch, so they publish
the same numbers. Documents are plain dicts whose fields are :data:`EPOCH_VITALS_FIELDS`
(rendered to the OpenSearch mapping and the curated Parquet schema by the adapters).
"""

from __future__ import annotations

import hashlib
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from core.bcg import (
    BedSensorProfile,
    breath_band,
    breathing_pauses,
    breathing_rate_per_min,
    heart_envelope,
    heart_rate_bpm,
    presence,
    segment_std,
)
from core.contract import FieldType
from core.contract import doc_field as _f
from core.epochs import EPOCH_MS, WINDOW_S, WINDOWS_PER_EPOCH
from core.hrv import hrv_summary

__all__ = [
    "EPOCH_VITALS_FIELDS",
    "STRAP_SAMPLE_FIELDS",
    "bed_epoch_vitals",
    "doc_id",
    "strap_epoch_vitals",
]


#: Fields of an epoch-vitals document (speed-layer index and batch epoch table).
EPOCH_VITALS_FIELDS: Final = (
    _f("doc_id", FieldType.STRING, "deterministic id: source, device, epoch", False),
    _f("subject_id", FieldType.STRING, "pseudonymous subject id", False),
    _f("device_id", FieldType.STRING, "device that measured it", False),
    _f("source", FieldType.STRING, "bed or strap", False),
    _f("record_id", FieldType.STRING, "record the epoch was computed from (bed)"),
    _f("epoch_start_ms", FieldType.INT64, "start of the 30-s epoch, ms UTC", False),
    _f("hr_bpm", FieldType.FLOAT64, "mean heart rate, beats/min"),
    _f("window_hr_bpm", FieldType.LIST_FLOAT64, "heart rate per 10-s window (bed), beats/min"),
    _f("br_per_min", FieldType.FLOAT64, "breathing rate, breaths/min (bed)"),
    _f("movement", FieldType.FLOAT64, "movement index 0-1 (bed)"),
    _f("presence", FieldType.BOOL, "someone in bed (bed)"),
    _f("pause_start_ms", FieldType.LIST_INT64, "starts of stretches without breathing in the epoch, ms UTC (bed)"),
    _f("pause_end_ms", FieldType.LIST_INT64, "ends of those stretches, ms UTC (bed)"),
    _f("rmssd_ms", FieldType.FLOAT64, "RMSSD of cleaned RR, ms (strap)"),
    _f("sdnn_ms", FieldType.FLOAT64, "SDNN of cleaned RR, ms (strap)"),
    _f("n_rr", FieldType.INT32, "RR intervals received in the epoch (strap)"),
    _f("artefact_fraction", FieldType.FLOAT64, "share of RR rejected by cleaning (strap)"),
    _f("n_records", FieldType.INT32, "notifications received in the epoch (strap)"),
    _f("contact_lost_fraction", FieldType.FLOAT64, "share of notifications without skin contact (strap)"),
    _f("complete", FieldType.BOOL, "false while the speed layer is still filling the epoch", False),
)

#: Fields of a per-notification strap document (live heart-rate trace).
STRAP_SAMPLE_FIELDS: Final = (
    _f("doc_id", FieldType.STRING, "the record id", False),
    _f("record_id", FieldType.STRING, "the record id (reconciliation counts it)", False),
    _f("subject_id", FieldType.STRING, "pseudonymous subject id", False),
    _f("device_id", FieldType.STRING, "strap address", False),
    _f("event_time_ms", FieldType.INT64, "time of the notification, ms UTC", False),
    _f("hr_bpm", FieldType.INT32, "heart rate the strap reported, beats/min", False),
    _f("rr_ms", FieldType.LIST_FLOAT64, "RR intervals in the notification, ms"),
    _f("sensor_contact", FieldType.BOOL, "skin contact (null: not supported)"),
)


def doc_id(source: str, device_id: str, epoch_start_ms: int) -> str:
    """Deterministic document id of a device's epoch: replays overwrite, never duplicate."""
    return hashlib.sha256(f"{source}|{device_id}|{epoch_start_ms}".encode()).hexdigest()[:32]


DEFAULT_PROFILE: Final = BedSensorProfile()


def _nan_to_none(x: float) -> float | None:
    return None if not np.isfinite(x) else round(float(x), 3)


def bed_epoch_vitals(
    samples: npt.ArrayLike,
    fs_hz: float,
    t0_ms: int,
    *,
    subject_id: str,
    device_id: str,
    record_id: str | None = None,
    profile: BedSensorProfile = DEFAULT_PROFILE,
) -> list[dict[str, Any]]:
    """Vitals of every complete clock-aligned epoch inside a run of bed samples.

    ``samples``: shape (n,), ADC counts, first sample at ``t0_ms``. An epoch the run does
    not cover entirely is skipped (it is computed from the frame that does cover it).
    Heart rate is the median of the 10-s windows not spoiled by movement; breathing rate
    uses the whole epoch. Both are null when nobody is in bed.
    """
    x = np.asarray(samples, dtype=float)
    per_epoch = round(fs_hz * EPOCH_MS / 1000)
    per_window = round(fs_hz * WINDOW_S)
    first = -(-t0_ms // EPOCH_MS) * EPOCH_MS  # first epoch boundary at or after t0
    out: list[dict[str, Any]] = []
    for start_ms in range(first, t0_ms + int(len(x) * 1000 / fs_hz), EPOCH_MS):
        i0 = round((start_ms - t0_ms) * fs_hz / 1000)
        seg = x[i0 : i0 + per_epoch]
        if len(seg) < per_epoch:
            break
        here = presence(seg, fs_hz, profile)
        moving = segment_std(seg, fs_hz) > profile.movement_std_counts  # per 1-s segment
        move = float(moving.mean())
        env = heart_envelope(seg, fs_hz) if here else None
        windows: list[float | None] = []
        for w in range(WINDOWS_PER_EPOCH):
            still = moving[w * WINDOW_S : (w + 1) * WINDOW_S].mean() <= profile.max_movement_for_hr
            if env is None or not still:
                windows.append(None)
                continue
            win = slice(w * per_window, (w + 1) * per_window)
            windows.append(_nan_to_none(heart_rate_bpm(seg[win], fs_hz, envelope=env[win])))
        valid = [v for v in windows if v is not None]
        band = breath_band(seg, fs_hz) if here else None
        pauses = breathing_pauses(seg, fs_hz, profile, moving_s=moving, band=band) if here else []
        out.append(
            {
                "doc_id": doc_id("bed", device_id, start_ms),
                "subject_id": subject_id,
                "device_id": device_id,
                "source": "bed",
                "record_id": record_id,
                "epoch_start_ms": start_ms,
                "hr_bpm": _nan_to_none(float(np.median(valid))) if valid else None,
                "window_hr_bpm": windows,
                "br_per_min": _nan_to_none(breathing_rate_per_min(seg, fs_hz, band=band)) if here else None,
                "movement": round(move, 4),
                "presence": here,
                "pause_start_ms": [start_ms + round(a * 1000) for a, _ in pauses],
                "pause_end_ms": [start_ms + round(b * 1000) for _, b in pauses],
                "complete": True,
            }
        )
    return out


def strap_epoch_vitals(
    rr_ms: npt.ArrayLike,
    epoch_start_ms: int,
    *,
    subject_id: str,
    device_id: str,
    reported_hr_bpm: npt.ArrayLike = (),
    contact: tuple[bool | None, ...] = (),
    complete: bool = True,
) -> dict[str, Any]:
    """Vitals of one epoch from the strap notifications received in it.

    ``rr_ms``: RR intervals (ms, shape (n_rr,)) of the epoch's notifications in beat
    order; ``reported_hr_bpm`` and ``contact``: per notification (shape (n_records,)),
    in time order. Heart rate comes from the cleaned RR intervals; a device that sends no
    RR (many watches) falls back to the mean of its reported non-zero heart rates.
    """
    s = hrv_summary(rr_ms)
    hr = s.hr_bpm
    reported = np.asarray(reported_hr_bpm, dtype=float)
    if not np.isfinite(hr) and (reported > 0).any():
        hr = float(reported[reported > 0].mean())
    known = [c for c in contact if c is not None]
    return {
        "doc_id": doc_id("strap", device_id, epoch_start_ms),
        "subject_id": subject_id,
        "device_id": device_id,
        "source": "strap",
        "epoch_start_ms": epoch_start_ms,
        "hr_bpm": _nan_to_none(hr),
        "rmssd_ms": _nan_to_none(s.rmssd_ms),
        "sdnn_ms": _nan_to_none(s.sdnn_ms),
        "n_rr": s.n_rr,
        "artefact_fraction": _nan_to_none(s.artefact_fraction),
        "n_records": len(reported),
        "contact_lost_fraction": round(known.count(False) / len(known), 4) if known else None,
        "complete": complete,
    }
