"""The CVHR apnoea screening index (:mod:`core.signals.cvhr`) against the slpdb scorers' respiratory events.

Reference: the slpdb-rr ``events`` column, the codes the scorers attached to each 30-s
epoch. Respiratory codes (:data:`RESPIRATORY`: hypopnoea, obstructive and central apnoea,
with or without arousal) are counted per hour of PSG sleep, one per code: an AHI-like
count of scored events. Records with no event code of any kind (not even arousals or
leg movements) were not scored for respiration and are left out, named in the output.

Per record the index counts CVHR cycles falling in PSG sleep epochs per hour of PSG
sleep, so the detector is compared on the same time base as the reference (the nightly
job uses its own staged sleep). Figures: Spearman's rank correlation over records, the
median absolute difference and the mean bias (events/h), and agreement of the usual
severity cut-offs (≥ 15/h moderate, ≥ 30/h severe); per epoch, how many epochs with a
scored respiratory event hold a cycle (sensitivity) and how many without hold none
(specificity), pooled over sleep epochs.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any, Final

import numpy as np
from scipy.stats import spearmanr

from core.nights.stages import SleepStage
from core.signals.cvhr import cvhr_cycles
from sleepstack.datasets.slpdb import SlpdbRecord
from sleepstack.evaluation.staging import load_slpdb

__all__ = ["RESPIRATORY", "evaluate_cvhr"]

#: slpdb respiratory event codes: hypopnoea, obstructive apnoea (with arousal X), central apnoea.
RESPIRATORY: Final = frozenset({"H", "HA", "OA", "X", "CA", "CAA"})
_CUTOFFS: Final = (15.0, 30.0)


def _record_figures(rec: SlpdbRecord) -> dict[str, Any]:
    cycles = cvhr_cycles(rec.beat_t_s, rec.rr_ms)
    sleep = (rec.stages >= 0) & (rec.stages != SleepStage.WAKE)
    codes = [ev.split() for ev in rec.events]
    events = np.array([sum(c in RESPIRATORY for c in cs) for cs in codes])
    idx = np.searchsorted(rec.epoch_t_s, cycles.t_s, side="right") - 1
    idx = idx[(idx >= 0) & (idx < len(sleep))]
    with_cycle = np.zeros(len(sleep), dtype=bool)
    with_cycle[idx] = True
    hours = float(sleep.sum()) / 120.0
    return {
        "record": rec.record,
        "subject": rec.subject,
        "sleep_h": round(hours, 2),
        "reference_per_h": round(float(events[sleep].sum()) / hours, 1) if hours else None,
        "cvhr_per_h": round(float(sleep[idx].sum()) / hours, 1) if hours else None,
        "scored": any(codes),
        "_event_epochs": sleep & (events > 0),
        "_quiet_epochs": sleep & (events == 0),
        "_with_cycle": with_cycle,
    }


def evaluate_cvhr(root: Path) -> dict[str, Any]:
    """Figures of the CVHR index on the slpdb-rr records under ``root`` (module docstring)."""
    rows = [_record_figures(r) for r in load_slpdb(root)]
    scored = [r for r in rows if r["scored"] and r["sleep_h"]]
    ref = np.array([r["reference_per_h"] for r in scored], dtype=float)
    est = np.array([r["cvhr_per_h"] for r in scored], dtype=float)
    hit = sum(int((r["_with_cycle"] & r["_event_epochs"]).sum()) for r in scored)
    events = sum(int(r["_event_epochs"].sum()) for r in scored)
    quiet = sum(int(r["_quiet_epochs"].sum()) for r in scored)
    false = sum(int((r["_with_cycle"] & r["_quiet_epochs"]).sum()) for r in scored)
    rho = float(spearmanr(ref, est).statistic) if len(scored) >= 3 else None
    return {
        "method": "CVHR cycles per hour of PSG sleep (core.signals.cvhr)",
        "reference": "slpdb respiratory event codes per hour of PSG sleep",
        "records": len(scored),
        "records_not_scored_for_respiration": [r["record"] for r in rows if not r["scored"]],
        "spearman_rho": None if rho is None else round(rho, 3),
        "abs_error_per_h_median": round(statistics.median(np.abs(est - ref)), 1) if scored else None,
        "bias_per_h_mean": round(float(np.mean(est - ref)), 1) if scored else None,
        **{
            f"agreement_at_{int(c)}_per_h": round(float(np.mean((ref >= c) == (est >= c))), 3) if scored else None
            for c in _CUTOFFS
        },
        "epoch_sensitivity": round(hit / events, 3) if events else None,
        "epoch_specificity": round(1 - false / quiet, 3) if quiet else None,
        "per_record": [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows],
    }
