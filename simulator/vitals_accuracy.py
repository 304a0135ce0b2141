"""Accuracy of the bed-sensor vitals against a simulated night's ground truth.

Per complete 30-s epoch: heart rate and breathing rate absolute errors (epochs where both
the estimate and the truth exist; breathing also excludes epochs overlapping an apnoea,
whose "rate" is undefined), and presence agreement with the truth's in-bed flag.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from core.contract import BedFrame
from core.signals.vitals import bed_epoch_vitals
from simulator.nights import SimulatedNight, night_records

__all__ = ["bed_vitals_accuracy"]


def bed_vitals_accuracy(night: SimulatedNight) -> dict[str, Any]:
    """``hr_mae_bpm``, ``br_mae_per_min``, ``presence_accuracy`` (0-1), coverage and counts."""
    docs: list[dict[str, Any]] = []
    for r in night_records(night, strap_device=None, bed_device="bed"):
        assert isinstance(r, BedFrame)  # noqa: S101 - only bed records were asked for
        docs += bed_epoch_vitals(r.samples, r.fs_hz, r.event_time_ms, subject_id="s", device_id="bed")
    gt = night.epochs
    n = min(len(docs), len(gt.t_s))
    hr = np.array([np.nan if d["hr_bpm"] is None else d["hr_bpm"] for d in docs[:n]], dtype=float)
    br = np.array([np.nan if d["br_per_min"] is None else d["br_per_min"] for d in docs[:n]], dtype=float)
    present = np.array([d["presence"] for d in docs[:n]], dtype=bool)
    hr_ok = np.isfinite(hr) & np.isfinite(gt.hr_bpm[:n]) & gt.in_bed[:n]
    br_ok = np.isfinite(br) & np.isfinite(gt.br_per_min[:n]) & ~gt.apnea[:n]
    return {
        "hr_mae_bpm": round(float(np.mean(np.abs(hr[hr_ok] - gt.hr_bpm[:n][hr_ok]))), 3),
        "br_mae_per_min": round(float(np.mean(np.abs(br[br_ok] - gt.br_per_min[:n][br_ok]))), 3),
        "presence_accuracy": round(float(np.mean(present == gt.in_bed[:n])), 4),
        "hr_coverage": round(float(hr_ok.sum() / max(1, (np.isfinite(gt.hr_bpm[:n]) & gt.in_bed[:n]).sum())), 4),
        "epochs": n,
    }
