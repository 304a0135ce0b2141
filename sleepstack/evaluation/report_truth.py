"""Every number of the night report against the simulator's truth (``sleepstack evaluate report``).

Simulated nights of several kinds (:data:`SCENARIOS`: no apnoea, mild, moderate and severe
apnoea (about 5, 14 and 30 per hour of sleep), a strap-only and a bed-only night, each with a bed exit and a 20-s link
drop per device) go through both layers (:mod:`sleepstack.evaluation.layers`: the
collector's framing, the sender's packing, the Lambda handler, the Firehose
transformation and the nightly job's functions). Each figure the night report and the
night page show is compared with the truth the simulator kept:

* the hypnogram's figures (:func:`core.nights.metrics.night_metrics` of the true stages over the
  same in-bed span): TST, efficiency, sleep onset latency, WASO, awakenings, minutes per
  stage;
* breathing pauses: the simulated apnoeas that start in true sleep, and per hour of true
  sleep; an apnoea is *found* when a pause episode of the speed layer's alerts overlaps
  it, and an episode that overlaps no apnoea is *false*. Apnoeas that a link drop hid
  from the bed sensor are left out of both;
* bed exits: the simulated ones, each found when a bed-exit alert overlaps it;
* mean heart rate and breathing rate (while breathing: epochs an apnoea cuts short
  are left out of the truth's mean) over the in-bed span; heart-rate coverage.

Each metric has a stated tolerance (:data:`TOLERANCES`) and its basis: the goals of the
breathing-pause definition, the vitals' own accuracy, or the staging model's validated
error on real polysomnography (hr-mlp-v1: median |TST error| 21.5 min, 4-class κ 0.39;
simulated physiology does not test a model trained on real nights, so the staging
tolerances are the errors a clinician must already allow for). The output gives, per
metric, the median and worst absolute error over the nights and whether every night is
inside its tolerance.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from core.contract.epochs import EPOCH_MS, EPOCH_S
from core.nights.metrics import night_metrics
from core.nights.stages import SleepStage
from simulator.nights import FIRST_NIGHT_T0_MS, SimConfig, SimulatedNight, simulate_night
from sleepstack.evaluation.layers import Drop, LayersOutput, collected_records, run_layers

__all__ = ["SCENARIOS", "TOLERANCES", "Scenario", "audit_report"]


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    apnea_per_hour: float
    strap: bool = True
    bed: bool = True


#: The kinds of night audited, in order; ``--nights N`` takes the first N (cycling). The rate
#: asked of the simulator is per hour of the night's sleep (its apnoeas come in runs, each at
#: least 40 s after the last one ended; the rate is kept).
SCENARIOS: Final = (
    Scenario("no apnoea", 0.0),
    Scenario("mild apnoea", 5.0),
    Scenario("moderate apnoea", 15.0),
    Scenario("severe apnoea", 30.0),
    Scenario("strap only", 10.0, bed=False),
    Scenario("bed only", 10.0, strap=False),
)

#: metric -> (tolerance on |estimate - truth|, unit, basis). Per night.
TOLERANCES: Final[dict[str, tuple[float, str, str]]] = {
    "total_sleep_time_min": (60.0, "min", "staging: hr-mlp-v1's validated TST error (median 21.5 min, PSG)"),
    "sleep_efficiency_pct": (12.5, "% points", "staging: 60 min of an 8-h night"),
    "sleep_onset_latency_min": (30.0, "min", "staging: sleep/wake accuracy 89 % (PSG)"),
    "waso_min": (60.0, "min", "staging: as TST"),
    "awakenings": (10.0, "count", "staging: wake bouts >= 1 min split and merge with epoch errors"),
    "light_min": (120.0, "min", "staging: 4-class kappa 0.39 (PSG); stage minutes are estimates"),
    "deep_min": (90.0, "min", "staging: as light"),
    "rem_min": (90.0, "min", "staging: as light"),
    "breathing_pauses": (30.0, "episodes", "counted in staged sleep: 30/h x the TST tolerance of 1 h"),
    "pauses_per_hour": (1.0, "/h", "goal: within 1/h of the truth on every night"),
    "bed_exits": (0.0, "count", "goal: every bed exit found"),
    "mean_hr_bpm": (2.0, "bpm", "vitals: per-epoch heart-rate error (evaluate vitals)"),
    "mean_br_per_min": (1.0, "/min", "vitals: per-epoch breathing-rate error (evaluate vitals)"),
    "coverage_pct": (2.0, "% points", "epochs a 20-s link drop can cost"),
}
#: Goals of the breathing-pause definition, over every night with a bed sensor.
MIN_EPISODE_RECALL: Final = 0.95
MAX_FALSE_PER_HOUR: Final = 0.5
_DROP_MS: Final = 20_000
_STAGE_METRICS: Final = (
    "total_sleep_time_min",
    "sleep_efficiency_pct",
    "sleep_onset_latency_min",
    "waso_min",
    "awakenings",
    "light_min",
    "deep_min",
    "rem_min",
)


def _overlaps(a0: float, a1: float, spans: list[tuple[int, int]]) -> bool:
    return any(b0 < a1 and b1 > a0 for b0, b1 in spans)


def _night(scenario: Scenario, seed: int, k: int) -> tuple[SimulatedNight, list[Drop], str | None, str | None]:
    night = simulate_night(
        SimConfig(f"a{k + 1:03d}", FIRST_NIGHT_T0_MS + k * 86_400_000, seed, apnea_per_hour=scenario.apnea_per_hour)
    )
    rng = np.random.default_rng(seed)
    strap = f"strap-a{k + 1:03d}" if scenario.strap else None
    bed = f"bed-a{k + 1:03d}" if scenario.bed else None
    drops = []
    for device in (d for d in (strap, bed) if d):
        at = night.t0_ms + int(rng.uniform(0.1, 0.9) * night.duration_s * 1000)
        drops.append(Drop(device, at, at + _DROP_MS))
    return night, drops, strap, bed


def _truth(night: SimulatedNight, drops: list[Drop], strap: str | None, bed: str | None) -> dict[str, Any]:
    """The figures the report should show, from the simulator's truth."""
    ep = night.epochs
    t_ms = night.t0_ms + (ep.t_s * 1000).astype(np.int64)
    present = np.flatnonzero(ep.in_bed)
    span = slice(int(present[0]), int(present[-1]) + 1)
    stages = ep.stage[span]
    m = night_metrics(stages)
    asleep = stages != SleepStage.WAKE
    bed_lost = [(d.start_ms, d.end_ms) for d in drops if d.device_id == bed]
    strap_lost = [(d.start_ms, d.end_ms) for d in drops if d.device_id == strap]
    apneas = [e for e in night.events if e["kind"] == "apnea"]
    sleep_start = t_ms[span][asleep]
    in_sleep = [
        e
        for e in apneas
        if np.any(
            (sleep_start <= night.t0_ms + float(e["start_s"]) * 1000)
            & (night.t0_ms + float(e["start_s"]) * 1000 < sleep_start + EPOCH_MS)
        )
    ]
    has_hr = np.zeros(len(stages), dtype=bool)
    for i, t in enumerate(t_ms[span]):
        strap_ok = strap is not None and not _overlaps(
            t, t + EPOCH_MS, [(a, b) for a, b in strap_lost if b - a >= EPOCH_MS]
        )
        bed_ok = bed is not None and bool(ep.in_bed[span][i]) and not _overlaps(t, t + EPOCH_MS, bed_lost)
        has_hr[i] = strap_ok or bed_ok
    tst_h = m["total_sleep_time_min"] / 60
    return {
        **{k: m[k] for k in _STAGE_METRICS},
        "breathing_pauses": len(in_sleep) if bed else None,
        "pauses_per_hour": len(in_sleep) / tst_h if bed and tst_h else None,
        "bed_exits": sum(e["kind"] == "bed_exit" for e in night.events) if bed else None,
        "mean_hr_bpm": float(np.nanmean(ep.hr_bpm[span])),
        # breathing rate while breathing: the epochs an apnoea cuts short count fewer breaths
        "mean_br_per_min": float(np.nanmean(ep.br_per_min[span][~ep.apnea[span]])) if bed else None,
        "coverage_pct": 100.0 * float(has_hr.mean()),
        "_apneas": [
            (night.t0_ms + float(e["start_s"]) * 1000, night.t0_ms + float(e["end_s"]) * 1000)
            for e in apneas
            if not _overlaps(night.t0_ms + float(e["start_s"]) * 1000, night.t0_ms + float(e["end_s"]) * 1000, bed_lost)
        ],
        "_exits": [
            (night.t0_ms + float(e["start_s"]) * 1000, night.t0_ms + float(e["end_s"]) * 1000)
            for e in night.events
            if e["kind"] == "bed_exit"
        ],
        "_sleep_h": float(asleep.sum()) * EPOCH_S / 3600,
    }


def _episodes(out: LayersOutput, kind: str) -> list[tuple[int, int]]:
    return sorted((int(a["start_ms"]), int(a["end_ms"] or a["start_ms"])) for a in out.alerts if a["kind"] == kind)


def _night_figures(scenario: Scenario, seed: int, k: int) -> dict[str, Any]:
    night, drops, strap, bed = _night(scenario, seed, k)
    out = run_layers(collected_records(night, strap_device=strap, bed_device=bed, drops=drops))
    truth = _truth(night, drops, strap, bed)
    row = out.nights.iloc[0].to_dict()
    metrics: dict[str, Any] = {}
    for metric in TOLERANCES:
        t, e = truth[metric], row.get(metric)
        if e is not None and isinstance(e, float) and np.isnan(e):
            e = None
        if t is None or e is None:
            metrics[metric] = {"truth": t, "report": e, "error": None}
            continue
        metrics[metric] = {
            "truth": round(float(t), 2),
            "report": round(float(e), 2),
            "error": round(float(e) - float(t), 2),
        }
    pauses = _episodes(out, "breathing_pause")
    found = sum(_overlaps(a, b, pauses) for a, b in truth["_apneas"])
    false = sum(not _overlaps(a, b, truth["_apneas"]) for a, b in pauses)
    exits = _episodes(out, "bed_exit")
    return {
        "night": k + 1,
        "scenario": scenario.name,
        "seed": seed,
        "status": row["status"],
        "metrics": metrics,
        "apnoeas": len(truth["_apneas"]) if bed else None,
        "apnoeas_found": found if bed else None,
        "false_pauses": false if bed else None,
        "false_pauses_per_hour": round(false / truth["_sleep_h"], 2) if bed else None,
        "bed_exits_found": sum(_overlaps(a, b, exits) for a, b in truth["_exits"]) if bed else None,
    }


def audit_report(
    nights: int = len(SCENARIOS), seed: int = 1, scenarios: Sequence[Scenario] = SCENARIOS
) -> dict[str, Any]:
    """The audit's figures for ``nights`` simulated nights (``scenarios`` in order, cycling) from ``seed``."""
    rows = [_night_figures(scenarios[k % len(scenarios)], seed + k, k) for k in range(nights)]
    summary: dict[str, Any] = {}
    for metric, (tol, unit, basis) in TOLERANCES.items():
        errors = [abs(r["metrics"][metric]["error"]) for r in rows if r["metrics"][metric]["error"] is not None]
        summary[metric] = {
            "unit": unit,
            "tolerance": tol,
            "nights": len(errors),
            "abs_error_median": round(statistics.median(errors), 2) if errors else None,
            "abs_error_worst": round(max(errors), 2) if errors else None,
            "within_tolerance": all(e <= tol + 1e-9 for e in errors) if errors else None,
            "basis": basis,
        }
    bed_rows = [r for r in rows if r["apnoeas"] is not None]
    apnoeas = sum(r["apnoeas"] for r in bed_rows)
    recall = sum(r["apnoeas_found"] for r in bed_rows) / apnoeas if apnoeas else None
    worst_false = max((r["false_pauses_per_hour"] for r in bed_rows), default=None)
    exits = sum(r["metrics"]["bed_exits"]["truth"] or 0 for r in bed_rows)
    exits_found = sum(r["bed_exits_found"] for r in bed_rows)
    goals = {
        "pauses_per_hour_within_1": summary["pauses_per_hour"]["within_tolerance"],
        "apnoea_episodes_found": None if recall is None else round(recall, 4),
        "apnoea_episodes_found_goal_met": recall is not None and recall >= MIN_EPISODE_RECALL,
        "false_pauses_per_hour_worst": worst_false,
        "false_pauses_goal_met": worst_false is not None and worst_false <= MAX_FALSE_PER_HOUR,
        "bed_exits": int(exits),
        "bed_exits_found": exits_found,
        "bed_exits_goal_met": exits_found == exits,
    }
    return {
        "method": "simulated nights through the collector's framing, the Lambda handler, the Firehose "
        "transformation and the nightly job's functions (sleepstack.evaluation.layers)",
        "nights": nights,
        "seed": seed,
        "goals": goals,
        "metrics": summary,
        "per_night": rows,
    }
