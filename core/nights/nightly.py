"""One subject-night from raw rows to staged epochs and a night summary (pure pandas).

The nightly Spark job runs these through ``groupBy(subject_id, night).applyInPandas``;
tests and notebooks call them directly on the same rows.

``raw`` holds raw-lake rows (columns of :data:`core.contract.RAW_FIELDS`) of one subject
and night, duplicates allowed. Epochs follow the shared 30-s grid; bed vitals are
computed per frame exactly as the speed layer does, strap vitals from the RR intervals
whose notification falls in the epoch. Staging (:func:`core.nights.staging.stage_night`)
reads the strap's beats too: each epoch says whether its window had HRV (``rr_window``),
and with ``rr_staging`` a night with an hour or more of it is staged by the heart-rate +
HRV model.

Bad nights have defined outcomes, never an exception: duplicated records are dropped by
id (one deterministic copy where copies differ, :mod:`core.contract.conflicts`);
heart-rate gaps up to 5 min are bridged for staging; longer stretches with no data at
all are left unscored (stage NULL, ``stage_label = 'unscored'``) and count neither as
sleep nor as time in bed; RR gaps, ectopic runs, zeros and out-of-order beats leave
epochs without HRV features (cleaned by :func:`core.signals.hrv.clean_rr`), staged from heart
rate; the night summary reports the heart-rate and the HRV coverage of its in-bed epochs
(``coverage_pct``, ``rr_coverage_pct``) and the model (``method``), and a night with
under four hours in bed, or under an hour of heart rate in bed, is ``insufficient`` with
the reason in ``status_reason`` (its epochs are still staged).
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from core.contract.conflicts import drop_duplicate_records
from core.contract.epochs import EPOCH_MS, EPOCH_S
from core.nights.apnoea import ApnoeaModel
from core.nights.apnoea_screens import severity
from core.nights.bed_events import bed_events, starts_per_epoch
from core.nights.classifier import StageModels
from core.nights.metrics import night_metrics
from core.nights.reliability import irregular_epochs, unreliable_reason
from core.nights.respiratory_events import epoch_events
from core.nights.stages import SleepStage
from core.nights.staging import Beats, stage_night
from core.signals.apnoea_features import minute_features
from core.signals.cvhr import cvhr_cycles
from core.signals.hrv import notification_beats
from core.signals.runs import true_runs
from core.signals.vitals import BedRun, bed_runs_vitals, strap_epoch_vitals

__all__ = [
    "EPOCH_COLUMNS",
    "GAP_MIN_EPOCHS",
    "NIGHT_COLUMNS",
    "UNSCORED_LABEL",
    "completeness",
    "stage_subject_night",
    "summarize_night",
]

#: Columns (name, pandas/Spark type) of the per-epoch curated table.
EPOCH_COLUMNS: Final = (
    ("subject_id", "string"),
    ("night", "string"),
    ("epoch_start_ms", "bigint"),
    ("stage", "tinyint"),
    ("stage_label", "string"),
    *((f"p_{s.label}", "double") for s in SleepStage),
    ("stage_confidence", "double"),
    ("hr_bpm", "double"),
    ("hr_source", "string"),
    ("br_per_min", "double"),
    ("movement", "double"),
    ("presence", "boolean"),
    ("rmssd_ms", "double"),
    ("sdnn_ms", "double"),
    ("breathing_pauses", "int"),
    ("bed_exits", "int"),
    ("rr_window", "boolean"),
    ("cvhr_cycles", "int"),
    ("apnoea_prob", "double"),
    ("resp_event", "string"),
    ("pause_s", "double"),
    ("hr_surge_bpm", "double"),
    ("rr_irregular", "boolean"),
    ("strap_data", "boolean"),
    ("bed_data", "boolean"),
    ("method", "string"),
)
#: Columns of the per-night curated table.
NIGHT_COLUMNS: Final = (
    ("subject_id", "string"),
    ("night", "string"),
    ("first_epoch_ms", "bigint"),
    ("epochs", "int"),
    ("coverage_pct", "double"),
    ("rr_coverage_pct", "double"),
    ("time_in_bed_min", "double"),
    ("total_sleep_time_min", "double"),
    ("sleep_onset_latency_min", "double"),
    ("waso_min", "double"),
    ("sleep_efficiency_pct", "double"),
    ("rem_latency_min", "double"),
    ("awakenings", "int"),
    ("wake_min", "double"),
    ("light_min", "double"),
    ("deep_min", "double"),
    ("rem_min", "double"),
    ("light_pct", "double"),
    ("deep_pct", "double"),
    ("rem_pct", "double"),
    ("breathing_pauses", "int"),
    ("pauses_per_hour", "double"),
    ("bed_exits", "int"),
    ("cvhr_per_hour", "double"),
    ("ahi_est", "double"),
    ("ahi_lo", "double"),
    ("ahi_hi", "double"),
    ("ahi_severity", "string"),
    ("apnoea_class", "string"),
    ("apnoea_minutes_est", "double"),
    ("apnoea_hours", "double"),
    ("apnoea_model", "string"),
    ("sleep_score", "double"),
    ("mean_hr_bpm", "double"),
    ("mean_br_per_min", "double"),
    *((f"hr_{s.label}_bpm", "double") for s in SleepStage),
    *((f"br_{s.label}_per_min", "double") for s in SleepStage),
    ("status", "string"),
    ("status_reason", "string"),
    ("recorded_hours", "double"),
    ("strap_hours", "double"),
    ("bed_hours", "double"),
    ("in_bed_hours", "double"),
    ("gaps", "int"),
    ("longest_gap_min", "double"),
    ("completeness", "string"),
    ("completeness_reason", "string"),
    ("staging_reliable", "boolean"),
    ("staging_unreliable_reason", "string"),
    ("method", "string"),
)
_MIN_EPOCHS: Final = 120  # a night needs at least one hour of in-bed heart rate to be staged
#: ... and four hours in bed to be scored: the AASM's minimum of technically adequate
#: recording for a home sleep test; shorter, TST-based figures and the sleep score would
#: rank a nap above a full night
_MIN_SCORED_EPOCHS: Final = 480
_MAX_BRIDGED_EPOCHS: Final = 10  # gaps without any data longer than 5 min stay unscored
UNSCORED_LABEL: Final = "unscored"
EPOCHS_PER_MINUTE: Final = 60_000 // EPOCH_MS
#: A night's AHI is estimated with at least this much of its time in bed scored by the detector (1 h).
_MIN_APNOEA_MINUTES: Final = 60
#: A stretch without data from any device at least this long counts as a gap (5 min).
GAP_MIN_EPOCHS: Final = 10
#: A night is complete with heart rate in at least this share of its epochs in bed ...
COMPLETE_COVERAGE_PCT: Final = 90.0
#: ... and no gap this long or longer (30 min).
COMPLETE_MAX_GAP_EPOCHS: Final = 60


def _bed_vitals(bed: pd.DataFrame) -> tuple[pd.DataFrame, list[tuple[int, int]]]:
    """Per-epoch bed vitals, and the pause episodes and bed exits starting in each epoch
    (:mod:`core.nights.bed_events`); and the pause episodes (start_ms, end_ms)."""
    runs = [
        BedRun(
            np.asarray(row["samples"], dtype=np.int16),
            float(row["fs_hz"]),
            int(row["event_time_ms"]),
            str(row["subject_id"]),
            str(row["device_id"]),
            str(row["record_id"]),
        )
        for row in bed.to_dict("records")
    ]
    docs = [d for run_docs in bed_runs_vitals(runs) for d in run_docs]  # the night's epochs as one stack
    cols = ["hr_bpm", "br_per_min", "movement", "presence", "breathing_pauses", "bed_exits"]
    if not docs:
        return pd.DataFrame(columns=cols, index=pd.Index([], name="epoch_start_ms")), []
    df = pd.DataFrame(docs).sort_values(["epoch_start_ms", "device_id"]).drop_duplicates("epoch_start_ms")
    grid = df["epoch_start_ms"].to_numpy(dtype=np.int64)
    df["breathing_pauses"] = 0
    df["bed_exits"] = 0
    pauses: list[tuple[int, int]] = []
    for device in sorted({d["device_id"] for d in docs}):
        events = bed_events(sorted((d for d in docs if d["device_id"] == device), key=lambda d: d["epoch_start_ms"]))
        df["breathing_pauses"] += starts_per_epoch(events.pauses, grid)
        df["bed_exits"] += starts_per_epoch(events.bed_exits, grid)
        pauses += events.pauses
    return df.set_index("epoch_start_ms")[cols], sorted(pauses)


def _strap_vitals(strap: pd.DataFrame) -> pd.DataFrame:
    cols = ["epoch_start_ms", "strap_hr_bpm", "rmssd_ms", "sdnn_ms"]
    if strap.empty:
        return pd.DataFrame(columns=cols).set_index("epoch_start_ms")
    strap = strap.sort_values(["event_time_ms", "record_id"])
    epoch = strap["event_time_ms"].to_numpy() // EPOCH_MS * EPOCH_MS
    starts, first = np.unique(epoch, return_index=True)
    bounds = [*first.tolist(), len(epoch)]
    rr_lists = strap["rr_ms"].tolist()
    reported = strap["hr_bpm"].to_numpy(dtype=float)
    contact = [None if pd.isna(c) else bool(c) for c in strap["sensor_contact"].tolist()]
    subject, device = str(strap["subject_id"].iloc[0]), str(strap["device_id"].iloc[0])
    out = []
    for k, start_ms in enumerate(starts.tolist()):
        a, b = bounds[k], bounds[k + 1]
        rr = [v for lst in rr_lists[a:b] if lst is not None for v in lst]
        d = strap_epoch_vitals(
            np.asarray(rr, dtype=float),
            start_ms,
            subject_id=subject,
            device_id=device,
            reported_hr_bpm=reported[a:b],
            contact=tuple(contact[a:b]),
        )
        out.append((start_ms, d["hr_bpm"], d["rmssd_ms"], d["sdnn_ms"]))
    return pd.DataFrame(out, columns=cols).set_index("epoch_start_ms")


def _beats(strap: pd.DataFrame, t0_ms: int) -> Beats | None:
    """The strap notifications' beats, s from ``t0_ms`` (the night's first epoch); None without RR."""
    if strap.empty:
        return None
    t_ms, rr = notification_beats(strap["event_time_ms"].to_numpy(dtype=float), strap["rr_ms"].tolist())
    return Beats((t_ms - t0_ms) / 1000.0, rr) if len(rr) else None


def _cvhr_per_epoch(beats: Beats | None, with_rr: npt.NDArray[np.bool_]) -> pd.arrays.IntegerArray:
    """CVHR cycles (:mod:`core.signals.cvhr`) starting in each epoch; NULL in epochs without HRV."""
    counts = np.zeros(len(with_rr), dtype=np.int64)
    if beats is not None and with_rr.any():
        k = np.floor(cvhr_cycles(beats.t_s, beats.rr_ms).t_s / EPOCH_S).astype(np.int64)
        counts = np.bincount(k[(k >= 0) & (k < len(with_rr))], minlength=len(with_rr))
    out = pd.array(counts, dtype="Int32")
    out[~with_rr] = pd.NA
    return out


def _apnoea_per_epoch(
    models: StageModels, beats: Beats | None, n_epochs: int, unscored: npt.NDArray[np.bool_]
) -> npt.NDArray[np.float64]:
    """Each epoch's apnoea probability, shape (n_epochs,): the probability of the minute it falls
    in (:mod:`core.nights.apnoea`; minutes counted from the night's first epoch, both epochs of
    a minute sharing it). NaN without a detector, in a minute without enough clean beats, and in
    unscored epochs."""
    out = np.full(n_epochs, np.nan)
    if models.apnoea is None or beats is None:
        return out
    per_minute = EPOCHS_PER_MINUTE
    n_minutes = -(-n_epochs // per_minute)
    prob = models.apnoea.predict_proba(minute_features(beats.t_s, beats.rr_ms, n_minutes))
    out = np.repeat(prob, per_minute)[:n_epochs]
    out[unscored] = np.nan
    return out


def _long_gaps(no_data: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    """Epochs in runs of ``no_data`` longer than :data:`_MAX_BRIDGED_EPOCHS`."""
    out = np.zeros(len(no_data), dtype=bool)
    for a, b in true_runs(no_data):
        if b - a > _MAX_BRIDGED_EPOCHS:
            out[a:b] = True
    return out


def stage_subject_night(raw: pd.DataFrame, *, models: StageModels, rr_staging: bool = False) -> pd.DataFrame:
    """Staged epochs (:data:`EPOCH_COLUMNS`) of one subject-night's raw rows.

    ``raw`` must also carry a ``night`` column; ``rr_staging``: stage nights with RR by the
    RR model (:func:`core.nights.staging.stage_night`, ``use_rr``). Duplicated records are dropped by id
    (:func:`core.contract.conflicts.drop_duplicate_records`).
    Returns no rows when the night has no data.
    """
    empty = pd.DataFrame({c: pd.Series(dtype="object") for c, _ in EPOCH_COLUMNS})
    if raw.empty:
        return empty
    raw, _ = drop_duplicate_records(raw)  # the job counts conflicts in its state table
    subject, night = str(raw["subject_id"].iloc[0]), str(raw["night"].iloc[0])
    bed, pauses = _bed_vitals(raw[raw["kind"] == "bed"])
    strap_rows = raw[raw["kind"] == "strap"]
    strap = _strap_vitals(strap_rows)
    ep = bed.join(strap, how="outer").sort_index()
    if ep.empty:
        return empty
    grid = np.arange(ep.index.min(), ep.index.max() + EPOCH_MS, EPOCH_MS)
    observed = np.isin(grid, ep.index.to_numpy())
    ep = ep.reindex(grid)
    has_bed = not bed.empty
    hr = ep["hr_bpm"].astype(float).fillna(ep["strap_hr_bpm"].astype(float))
    presence = ep["presence"].astype("boolean").fillna(False).to_numpy(dtype=bool) if has_bed else observed
    features = pd.DataFrame({"hr_bpm": hr.to_numpy(), "movement": ep["movement"].astype(float).to_numpy()})
    if has_bed:
        features["presence"] = presence
        features["breathing_pauses"] = ep["breathing_pauses"].astype(float).to_numpy()
    beats = _beats(strap_rows, int(grid[0]))
    staging = stage_night(features, beats, models=models, use_rr=rr_staging)
    stages = pd.array(staging.stages, dtype="Int8")
    unscored = _long_gaps(~observed | (hr.isna().to_numpy() & ~presence))
    stages[unscored] = pd.NA
    labels = [UNSCORED_LABEL if u else SleepStage(int(s)).label for s, u in zip(stages, unscored, strict=True)]
    has_strap = ep["strap_hr_bpm"].notna().to_numpy()
    bed_epochs = ep.index.isin(bed.index)
    hr_source = np.where(ep["hr_bpm"].notna().to_numpy(), "bed", np.where(has_strap, "strap", ""))
    cycles = _cvhr_per_epoch(beats, staging.with_rr & ~unscored)
    events = epoch_events(
        grid,
        pauses,
        bed_epochs,
        None if beats is None else beats.t_s,
        None if beats is None else beats.rr_ms,
        cycles.to_numpy(dtype=float, na_value=np.nan),
    )
    return pd.DataFrame(
        {
            "subject_id": subject,
            "night": night,
            "epoch_start_ms": grid.astype(np.int64),
            "stage": stages,
            "stage_label": labels,
            **{f"p_{s.label}": np.where(unscored, np.nan, staging.proba[:, s]) for s in SleepStage},
            "stage_confidence": np.where(unscored, np.nan, staging.confidence()),
            "hr_bpm": hr.to_numpy(),
            "hr_source": [v or None for v in hr_source.tolist()],
            "br_per_min": ep["br_per_min"].astype(float).to_numpy(),
            "movement": ep["movement"].astype(float).to_numpy(),
            "presence": presence,
            "rmssd_ms": ep["rmssd_ms"].astype(float).to_numpy(),
            "sdnn_ms": ep["sdnn_ms"].astype(float).to_numpy(),
            "breathing_pauses": pd.array(ep["breathing_pauses"].to_numpy(), dtype="Int32"),
            "bed_exits": pd.array(ep["bed_exits"].to_numpy(), dtype="Int32"),
            "rr_window": staging.with_rr & ~unscored,
            "cvhr_cycles": cycles,
            "apnoea_prob": _apnoea_per_epoch(models, beats, len(grid), unscored),
            "resp_event": events.kind,
            "pause_s": events.pause_s,
            "hr_surge_bpm": events.hr_surge_bpm,
            "rr_irregular": pd.array(
                irregular_epochs(grid, None if beats is None else beats.t_s, None if beats is None else beats.rr_ms),
                dtype="Float64",
            ).astype("boolean"),
            "strap_data": has_strap,
            "bed_data": bed_epochs,
            "method": staging.method,
        }
    )


def _insufficiency(span: pd.DataFrame) -> str | None:
    """Why a night cannot be summarised, or None when it can."""
    if span.empty:
        return "no epochs in bed"
    with_hr = int(span["hr_bpm"].notna().sum())
    if with_hr == 0:
        return "no heart rate in bed"
    if len(span) < _MIN_SCORED_EPOCHS:
        return f"under 4 h in bed ({len(span) * EPOCH_MS / 60000:.0f} min): too short to score a night"
    if with_hr < _MIN_EPOCHS:
        return f"under 1 h of heart rate in bed ({with_hr * EPOCH_MS / 60000:.0f} min)"
    return None


def completeness(epochs: pd.DataFrame, row: dict[str, Any]) -> dict[str, Any]:
    """How complete a subject-night's recording is, and the verdict with the rule that decided it.

    ``epochs`` (n_epochs rows, sorted, on the 30-s grid from the first to the last epoch
    with data) carry ``strap_data``/``bed_data``; ``row`` the summary so far (its
    ``status``, ``status_reason``, ``epochs`` in bed and ``coverage_pct``).

    * ``recorded_hours``: first to last epoch with data from any device;
    * ``strap_hours`` / ``bed_hours``: epochs each device sent data in (NULL: no such device);
    * ``in_bed_hours``: the night's epochs in bed (first to last in bed);
    * ``gaps`` / ``longest_gap_min``: stretches of at least 5 min with data from no device;
    * ``completeness``: ``insufficient`` when the night could not be scored (its
      ``status_reason``), ``complete`` with heart rate in >= 90 % of the epochs in bed and
      no gap of 30 min or more, ``partial`` otherwise, with the reason.
    """
    strap = epochs["strap_data"].astype("boolean").fillna(False).to_numpy(dtype=bool)
    bed = epochs["bed_data"].astype("boolean").fillna(False).to_numpy(dtype=bool)
    gaps = [b - a for a, b in true_runs(~(strap | bed)) if b - a >= GAP_MIN_EPOCHS]
    hours = EPOCH_MS / 3_600_000
    out: dict[str, Any] = {
        "recorded_hours": len(epochs) * hours,
        "strap_hours": float(strap.sum() * hours) if strap.any() else None,
        "bed_hours": float(bed.sum() * hours) if bed.any() else None,
        "in_bed_hours": row["epochs"] * hours,
        "gaps": len(gaps),
        "longest_gap_min": max(gaps, default=0) * EPOCH_MS / 60_000,
    }
    longest = max(gaps, default=0)
    if row.get("status") == "insufficient":
        out.update(completeness="insufficient", completeness_reason=row.get("status_reason"))
    elif row["coverage_pct"] < COMPLETE_COVERAGE_PCT:
        reason = f"heart rate in {row['coverage_pct']:.0f} % of the night in bed (complete: >= 90 %)"
        out.update(completeness="partial", completeness_reason=reason)
    elif longest >= COMPLETE_MAX_GAP_EPOCHS:
        reason = f"a {longest * EPOCH_MS / 60_000:.0f}-min gap without data (complete: none of 30 min)"
        out.update(completeness="partial", completeness_reason=reason)
    else:
        out.update(completeness="complete", completeness_reason=None)
    return out


def summarize_night(epochs: pd.DataFrame, models: StageModels | None = None) -> pd.DataFrame:
    """One-row night summary (:data:`NIGHT_COLUMNS`) from :func:`stage_subject_night` output.

    The hypnogram runs from the first to the last epoch in bed; metrics are those of
    :func:`core.nights.metrics.night_metrics`. With a bed sensor (NULL otherwise):
    ``breathing_pauses`` counts the pause episodes (:mod:`core.nights.bed_events`: >= 10 s without
    respiratory movement) that start in a sleep epoch the bed sensor observed, and
    ``pauses_per_hour`` divides them by the hours of those epochs, so a stretch the sensor
    missed lowers neither the count's time base nor the index; ``bed_exits`` counts the
    exits that start between the first and the last epoch in bed (getting up in the
    morning ends the night, it is not an exit). The apnoea
    screening index ``cvhr_per_hour`` counts CVHR cycles (:mod:`core.signals.cvhr`) per hour of
    staged sleep with HRV, when the night has an hour of it (NULL otherwise).

    With ``models.apnoea`` (the RR apnoea detector, :mod:`core.nights.apnoea`) and an hour or
    more of the time in bed with its minute probabilities (``apnoea_prob``): ``ahi_est`` (events
    per hour, the detector's called apnoea minutes per hour mapped by its training nights),
    its 90 % interval ``ahi_lo``-``ahi_hi``, ``ahi_severity`` (AASM band), ``apnoea_class``
    (the challenge's A/B/C from ``apnoea_minutes_est``), ``apnoea_hours`` (the hours it
    scored) and ``apnoea_model``. The time base is the in-bed time the detector scored, as
    the Apnea-ECG AHI is per hour of recording.
    """
    epochs = epochs.sort_values("epoch_start_ms")
    in_bed = epochs["presence"].to_numpy(dtype=bool)
    first, last = (int(np.argmax(in_bed)), len(in_bed) - int(np.argmax(in_bed[::-1]))) if in_bed.any() else (0, 0)
    span = epochs.iloc[first:last]
    have_hr = span["hr_bpm"].notna()
    row: dict[str, Any] = {
        "subject_id": epochs["subject_id"].iloc[0],
        "night": epochs["night"].iloc[0],
        "first_epoch_ms": int(span["epoch_start_ms"].iloc[0]) if len(span) else None,
        "epochs": len(span),
        "coverage_pct": 100.0 * float(have_hr.mean()) if len(span) else 0.0,
        "rr_coverage_pct": 100.0 * float(span["rr_window"].astype(bool).mean()) if len(span) else 0.0,
        "mean_hr_bpm": float(span["hr_bpm"].mean()) if have_hr.any() else None,
        "mean_br_per_min": float(span["br_per_min"].mean()) if span["br_per_min"].notna().any() else None,
        "method": str(epochs["method"].iloc[0]),
    }
    reason = _insufficiency(span)
    if reason:
        row.update(status="insufficient", status_reason=reason)
    else:
        stages = span["stage"].astype("Int8").fillna(-1).to_numpy(dtype=int)
        row.update(status="staged", status_reason=None, **night_metrics(stages))
        for stage in SleepStage:  # per-stage means serve "HR by stage" without scanning epochs
            here = span[stages == stage]
            row[f"hr_{stage.label}_bpm"] = float(here["hr_bpm"].mean()) if here["hr_bpm"].notna().any() else None
            br = here["br_per_min"]
            row[f"br_{stage.label}_per_min"] = float(br.mean()) if br.notna().any() else None
        pauses = span["breathing_pauses"].astype("Int32")
        with_bed = pauses.notna().to_numpy()
        if with_bed.any():
            asleep = (stages >= 0) & (stages != SleepStage.WAKE) & with_bed
            row["breathing_pauses"] = int(pauses[asleep].sum())
            bed_sleep_h = asleep.sum() * EPOCH_MS / 3_600_000
            row["pauses_per_hour"] = row["breathing_pauses"] / bed_sleep_h if bed_sleep_h else None
            row["bed_exits"] = int(span["bed_exits"].astype("Int32").fillna(0).sum())
        cycles = span["cvhr_cycles"].astype("Int32")
        rr_sleep = ((stages >= 0) & (stages != SleepStage.WAKE)) & cycles.notna().to_numpy()
        if rr_sleep.sum() >= _MIN_EPOCHS:  # an hour of sleep with HRV
            row["cvhr_per_hour"] = float(cycles[rr_sleep].sum()) / (rr_sleep.sum() * EPOCH_MS / 3_600_000)
    if models is not None and models.apnoea is not None and len(span):
        row.update(_night_apnoea(span, models.apnoea, int(epochs["epoch_start_ms"].iloc[0])))
    row.update(completeness(epochs, row))
    if len(span):
        irregular = span["rr_irregular"].astype("boolean").astype("Float64").to_numpy(dtype=float, na_value=np.nan)
        why = unreliable_reason(span["hr_bpm"].astype(float).to_numpy(), irregular, row["coverage_pct"])
        row.update(staging_reliable=why is None, staging_unreliable_reason=why)
    return pd.DataFrame([{c: row.get(c) for c, _ in NIGHT_COLUMNS}])


def _night_apnoea(span: pd.DataFrame, model: ApnoeaModel, t0_ms: int) -> dict[str, Any]:
    """The night's AHI figures (:func:`summarize_night`) from its in-bed epochs' ``apnoea_prob``
    (one per detector minute, counted from the night's first epoch ``t0_ms``)."""
    prob = span["apnoea_prob"].astype(float).to_numpy()
    minute = (span["epoch_start_ms"].to_numpy(dtype=np.int64) - t0_ms) // 60_000
    per_minute = pd.Series(prob).groupby(minute).first().to_numpy()
    scored = per_minute[np.isfinite(per_minute)]
    if len(scored) < _MIN_APNOEA_MINUTES:
        return {}
    night = model.night(scored)
    return {
        "ahi_est": night.ahi,
        "ahi_lo": night.ahi_interval[0],
        "ahi_hi": night.ahi_interval[1] if np.isfinite(night.ahi_interval[1]) else None,
        "ahi_severity": severity(night.ahi),
        "apnoea_class": night.record_class,
        "apnoea_minutes_est": night.apnoea_minutes,
        "apnoea_hours": len(scored) / 60.0,
        "apnoea_model": model.name,
    }
