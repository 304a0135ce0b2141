"""Per-epoch vitals on the shared 30-s grid, and the vitals document's one definition.

The speed layer (Lambda) and the batch layer (Spark) both call :func:`bed_runs_vitals`
(or its one-run form :func:`bed_epoch_vitals`) and :func:`strap_epoch_vitals`; they see
the same samples for an epoch, so they publish the same numbers. Documents are plain
dicts whose fields are :data:`EPOCH_VITALS_FIELDS` (rendered to the OpenSearch mapping
and the curated Parquet schema by the adapters).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from core.contract import FieldType
from core.contract import doc_field as _f
from core.contract.epochs import EPOCH_MS, WINDOW_S, WINDOWS_PER_EPOCH
from core.signals.bcg import (
    BedSensorProfile,
    breath_band,
    breath_fs,
    breathing_pauses_rows,
    breathing_rate_rows,
    heart_envelope,
    heart_fs,
    heart_rate_rows,
    presence_rows,
    segment_std,
)
from core.signals.hrv import hrv_summary

__all__ = [
    "EDGE_SLACK_S",
    "EPOCH_VITALS_FIELDS",
    "STRAP_SAMPLE_FIELDS",
    "BedRun",
    "bed_epoch_vitals",
    "bed_runs_vitals",
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


@dataclass(frozen=True, slots=True)
class BedRun:
    """A run of consecutive bed samples: ``samples`` shape (n,), ADC counts, first at ``t0_ms``."""

    samples: npt.ArrayLike
    fs_hz: float
    t0_ms: int
    subject_id: str
    device_id: str
    record_id: str | None = None


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
    """Vitals of every clock-aligned epoch a run of bed samples covers.

    ``samples``: shape (n,), ADC counts, first sample at ``t0_ms`` (any phase against the
    30-s grid). An epoch the run covers but for at most :data:`EDGE_SLACK_S` is computed
    (the gap mirrored in from its neighbouring samples); one it covers less is skipped.
    Heart rate is the median of the 10-s windows without a second of gross movement; breathing rate
    uses the whole epoch. Both are null when nobody is in bed.
    """
    (docs,) = bed_runs_vitals([BedRun(samples, fs_hz, t0_ms, subject_id, device_id, record_id)], profile)
    return docs


def bed_runs_vitals(runs: Sequence[BedRun], profile: BedSensorProfile = DEFAULT_PROFILE) -> list[list[dict[str, Any]]]:
    """:func:`bed_epoch_vitals` of many runs at once; one list of epoch documents per run.

    The complete epochs of all runs with the same sample rate are stacked into one
    (n_epochs, samples_per_epoch) array and computed together (:mod:`core.signals.bcg`'s row
    functions), so the result of each epoch is the same however the runs are grouped.
    """
    out: list[list[dict[str, Any]]] = [[] for _ in runs]
    by_rate: dict[float, list[tuple[int, int, int, int]]] = {}  # fs -> (run, epoch start, first index, pad before)
    for k, run in enumerate(runs):
        for start_ms, i0, before in _covered_epochs(len(run.samples), run.fs_hz, run.t0_ms):  # type: ignore[arg-type]
            by_rate.setdefault(float(run.fs_hz), []).append((k, start_ms, i0, before))
    for fs_hz, epochs in by_rate.items():
        per_epoch = round(fs_hz * EPOCH_MS / 1000)
        arrays = {k: np.asarray(runs[k].samples, dtype=float) for k in {k for k, _, _, _ in epochs}}
        x = np.stack([_epoch_samples(arrays[k], i0, before, per_epoch) for k, _, i0, before in epochs])
        for (k, start_ms, _, _), fields in zip(epochs, _epoch_fields(x, fs_hz, profile), strict=True):
            run = runs[k]
            pauses = fields.pop("pauses")
            out[k].append(
                {
                    "doc_id": doc_id("bed", run.device_id, start_ms),
                    "subject_id": run.subject_id,
                    "device_id": run.device_id,
                    "source": "bed",
                    "record_id": run.record_id,
                    "epoch_start_ms": start_ms,
                    **fields,
                    "pause_start_ms": [start_ms + round(a * 1000) for a, _ in pauses],
                    "pause_end_ms": [start_ms + round(b * 1000) for _, b in pauses],
                    "complete": True,
                }
            )
    return out


#: An epoch is computed from a run that holds all its samples but at most this many
#: seconds' worth: a sensor's first sample after a boundary is up to one sample period late
#: (any clock phase), and a frame that starts or ends within a second of the boundary still
#: speaks for its epoch. Under half an epoch, so no two runs can both yield one epoch.
EDGE_SLACK_S: Final = 1.0


def _covered_epochs(n: int, fs_hz: float, t0_ms: float) -> list[tuple[int, int, int]]:
    """The epochs a run of ``n`` samples from ``t0_ms`` at ``fs_hz`` yields: (start ms, first index, pad before).

    An epoch's samples are those timed in [start, start + 30 s). It is yielded when the
    run holds all of them but at most :data:`EDGE_SLACK_S` worth; the missing ones are
    filled by :func:`_epoch_samples` (``pad before`` of them at the start, the rest at the
    end). The run's clock phase against the grid does not matter: a frame cut by
    :class:`core.ble.device_records.BedFramer` holds exactly its epoch's samples whatever its
    first sample's offset from the boundary.
    """
    period_ms = 1000.0 / fs_hz
    per_epoch = round(fs_hz * EPOCH_MS / 1000)
    slack = int(EDGE_SLACK_S * fs_hz)
    end_ms = t0_ms + n * period_ms
    out: list[tuple[int, int, int]] = []
    for start_ms in range(int(t0_ms // EPOCH_MS) * EPOCH_MS, int(np.ceil(end_ms)), EPOCH_MS):
        first = int(np.ceil((start_ms - t0_ms) / period_ms - 1e-9))  # index of the epoch's first sample
        last = int(np.ceil((start_ms + EPOCH_MS - t0_ms) / period_ms - 1e-9))  # one past its last
        i0, i1 = max(first, 0), min(last, n)
        if i1 - i0 >= per_epoch - slack:
            out.append((start_ms, i0, min(per_epoch - (i1 - i0), max(0, -first))))
    return out


def _epoch_samples(x: npt.NDArray[np.float64], i0: int, before: int, per_epoch: int) -> npt.NDArray[np.float64]:
    """``per_epoch`` samples of an epoch from ``x[i0:]``; at most :data:`EDGE_SLACK_S` mirrored in at its edges."""
    have = x[i0 : i0 + per_epoch - before]
    after = per_epoch - before - len(have)
    if before == 0 and after == 0:
        return have
    return np.pad(have, (before, after), mode="symmetric")


def _epoch_fields(x: npt.NDArray[np.float64], fs_hz: float, profile: BedSensorProfile) -> list[dict[str, Any]]:
    """Vitals of each row of ``x`` (shape (m, samples_per_epoch)), in row order."""
    m = len(x)
    here = presence_rows(x, fs_hz, profile)
    moving = segment_std(x, fs_hz) > profile.movement_std_counts  # (m, seconds)
    still = moving[:, : WINDOWS_PER_EPOCH * WINDOW_S].reshape(m, WINDOWS_PER_EPOCH, WINDOW_S).mean(axis=2)
    hr_ok = (still <= profile.max_movement_for_hr) & here[:, None]  # (m, windows)
    window_hr = np.full((m, WINDOWS_PER_EPOCH), np.nan)
    rows = np.flatnonzero(hr_ok.any(axis=1))
    if len(rows):
        env_window = round(heart_fs(fs_hz) * WINDOW_S)
        env = heart_envelope(x[rows], fs_hz)[:, : WINDOWS_PER_EPOCH * env_window]
        env = env.reshape(len(rows) * WINDOWS_PER_EPOCH, env_window)
        wanted = hr_ok[rows].reshape(-1)
        rates = np.full(len(wanted), np.nan)
        rates[wanted] = heart_rate_rows(env[wanted], heart_fs(fs_hz))
        window_hr[rows] = rates.reshape(len(rows), WINDOWS_PER_EPOCH)
    present = np.flatnonzero(here)
    br = np.full(m, np.nan)
    pauses: list[list[tuple[float, float]]] = [[] for _ in range(m)]
    if len(present):
        band = breath_band(x[present], fs_hz)
        br[present] = breathing_rate_rows(band, breath_fs(fs_hz))
        found = breathing_pauses_rows(band, breath_fs(fs_hz), profile, moving_s=moving[present])
        for row, p in zip(present.tolist(), found, strict=True):
            pauses[row] = p
    # median of each epoch's valid windows, of their values as published (rounded)
    rounded = np.round(window_hr, 3)
    n_valid = np.isfinite(rounded).sum(axis=1)
    hr = np.full(m, np.nan)
    some = n_valid > 0
    hr[some] = np.nanmedian(rounded[some], axis=1)
    out: list[dict[str, Any]] = []
    for i in range(m):
        out.append(
            {
                "hr_bpm": _nan_to_none(hr[i]),
                "window_hr_bpm": [_nan_to_none(v) for v in window_hr[i]],
                "br_per_min": _nan_to_none(br[i]) if here[i] else None,
                "movement": round(float(moving[i].mean()), 4),
                "presence": bool(here[i]),
                "pauses": pauses[i],
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
