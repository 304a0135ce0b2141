"""The JSON API's response bodies as pydantic models, for ``/api/openapi.json``.

The document models are rendered from the field specs the documents are built from
(:data:`core.signals.vitals.EPOCH_VITALS_FIELDS`, :data:`core.live.alerts.ALERT_FIELDS`,
:data:`core.nights.nightly.NIGHT_COLUMNS` ...), so the schema cannot drift from the data;
the curated columns' meanings and units are :data:`COLUMN_DOCS` (a test requires one for
every column).
The routes return their bodies already rendered (orjson: a night of vitals is thousands
of documents); the models document them and the tests check the bodies against them.
"""

from __future__ import annotations

from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, create_model

from core.contract import FieldSpec, FieldType
from core.live.alerts import ALERT_FIELDS
from core.nights.nightly import EPOCH_COLUMNS, NIGHT_COLUMNS, UNSCORED_LABEL
from core.nights.stages import SleepStage
from core.signals.vitals import EPOCH_VITALS_FIELDS, STRAP_SAMPLE_FIELDS

__all__ = [
    "COLUMN_DOCS",
    "NIGHT_EPOCH_COLUMNS",
    "NIGHT_LIST_COLUMNS",
    "AckOut",
    "Acknowledged",
    "AlertCounts",
    "Alerts",
    "NightEpochs",
    "NightOut",
    "Nights",
    "Samples",
    "SubjectNow",
    "Subjects",
    "Vitals",
]

_PY: Final[dict[FieldType, Any]] = {
    FieldType.STRING: str,
    FieldType.INT16: int,
    FieldType.INT32: int,
    FieldType.INT64: int,
    FieldType.FLOAT64: float,
    FieldType.BOOL: bool,
    FieldType.LIST_FLOAT64: list[float | None],  # a window without a value is null
    FieldType.LIST_INT16: list[int],
    FieldType.LIST_INT64: list[int],
}
_SQL: Final[dict[str, Any]] = {
    "string": str,
    "bigint": int,
    "int": int,
    "tinyint": int,
    "double": float,
    "boolean": bool,
}
_STAGES: Final = ", ".join(f"{s.value} {s.label}" for s in SleepStage)
_NAME: Final = {s: "REM" if s is SleepStage.REM else s.label for s in SleepStage}
#: What each curated column means, with its unit: the AASM definitions of
#: core/nights/metrics.py, core/nights/nightly.py, docs/analyst.md and docs/night-metrics.md.
COLUMN_DOCS: Final[dict[str, str]] = {
    "subject_id": "pseudonymous subject id",
    "night": "YYYY-MM-DD of the night's evening (nights run noon to noon in the subject's zone)",
    "method": "the staging model that staged the night (its card: the night's `model`)",
    # night_summary
    "first_epoch_ms": "start of the first epoch in bed, ms UTC",
    "epochs": "30-s epochs from the first to the last epoch in bed",
    "coverage_pct": "share of the night in bed with heart rate, %",
    "rr_coverage_pct": "share of the night in bed with HRV from the strap's RR intervals, %",
    "time_in_bed_min": "time in bed (TIB): first to last epoch in bed, unscored epochs not counted, min",
    "total_sleep_time_min": "total sleep time (TST): epochs of any sleep stage, min",
    "sleep_onset_latency_min": "sleep onset latency (SOL): first epoch in bed to the first epoch of sleep, min",
    "waso_min": "wake after sleep onset (WASO): wake between the first and the last sleep epoch, min",
    "sleep_efficiency_pct": "sleep efficiency: TST / TIB, %",
    "rem_latency_min": "REM latency: sleep onset to the first REM epoch, min",
    "awakenings": "wake bouts of 1 min or more between sleep onset and the last sleep epoch",
    **{f"{s.label}_min": f"{_NAME[s]} epochs, min" for s in SleepStage},
    **{f"{s.label}_pct": f"{_NAME[s]} share of TST, %" for s in SleepStage if s is not SleepStage.WAKE},
    "breathing_pauses": "breathing pause episodes (10 s or more without respiratory movement) starting in"
    " sleep the bed sensor observed; null without a bed sensor",
    "pauses_per_hour": "breathing_pauses per hour of sleep the bed sensor observed, /h (a screening figure,"
    " not an AHI); null without a bed sensor",
    "bed_exits": "bed exits (nobody on the sensor for 60 s or more after 30 min in bed) between the first and"
    " the last epoch in bed; null without a bed sensor",
    "cvhr_per_hour": "cyclic variation of heart rate (apnoea screening): cycles per hour of sleep with HRV, /h;"
    " null under an hour of it",
    "ahi_est": "estimated apnoea-hypopnoea index from the strap's RR (model apnoea_model), events per hour of the"
    " time in bed it scored; a screening estimate, not a polysomnography; null under an hour of RR in bed",
    "ahi_lo": "lower end of ahi_est's 90 % interval (held-out Apnea-ECG errors), events/h",
    "ahi_hi": "upper end of ahi_est's 90 % interval, events/h",
    "ahi_severity": "AASM band of ahi_est: normal (< 5), mild (5-15), moderate (15-30), severe (>= 30)",
    "apnoea_class": "the Apnea-ECG record class from apnoea_minutes_est: A (>= 100 min), B, C (< 5 min)",
    "apnoea_minutes_est": "minutes the detector called apnoea in the time scored, min",
    "apnoea_hours": "the time in bed the apnoea detector scored (minutes with enough clean RR), h",
    "apnoea_model": "the apnoea detector's model name (its card: docs/evaluation.md)",
    "sleep_score": "sleep score 0-100, higher is better (TST, efficiency, SOL, WASO, long awakenings; docs/analyst.md)",
    "mean_hr_bpm": "mean heart rate in bed, beats/min",
    "mean_br_per_min": "mean breathing rate in bed, breaths/min (bed sensor)",
    **{f"hr_{s.label}_bpm": f"mean heart rate in {_NAME[s]} epochs, beats/min" for s in SleepStage},
    **{f"br_{s.label}_per_min": f"mean breathing rate in {_NAME[s]} epochs, breaths/min" for s in SleepStage},
    "status": "staged, or insufficient: under 4 h in bed or under 1 h of heart rate (not scored)",
    "status_reason": "why the night is insufficient (null when staged)",
    "recorded_hours": "first to last epoch with data from any device, h",
    "strap_hours": "epochs the strap sent data in, h (null: no strap that night)",
    "bed_hours": "epochs the bed sensor sent data in, h (null: no bed sensor)",
    "in_bed_hours": "the night in bed: first to last epoch in bed, h",
    "gaps": "stretches of 5 min or more with data from no device",
    "longest_gap_min": "the longest of those gaps, min",
    "completeness": "complete (heart rate in 90 % or more of the night in bed and no gap of 30 min or more),"
    " partial (one of the two failed) or insufficient",
    "completeness_reason": "the rule that decided a partial or insufficient night, with its figure",
    "staging_reliable": "false: the night is unlike those the stager learnt from (flat heart rate, RR irregular as in"
    " atrial fibrillation, or heart rate in under half the night in bed); null without a night in bed",
    "staging_unreliable_reason": "why staging_reliable is false, with its figure",
    # epoch_stages
    "epoch_start_ms": "start of the 30-s epoch, ms UTC",
    "stage": f"sleep stage: {_STAGES}; null: unscored (a gap without data)",
    "stage_label": f"{', '.join(s.label for s in SleepStage)} or {UNSCORED_LABEL}",
    **{
        f"p_{s.label}": f"probability 0-1 that the epoch is {s.label}, calibrated on held-out subjects"
        " (the four sum to 1; 1 for wake where the bed rules called it); null: unscored"
        for s in SleepStage
    },
    "stage_confidence": "probability 0-1 of the epoch's called stage; below LOW_CONFIDENCE the hypnogram"
    " shades the epoch as uncertain; null: unscored",
    "hr_bpm": "heart rate, beats/min (the bed sensor's, else the strap's)",
    "hr_source": "bed or strap: whose heart rate hr_bpm is; null without any",
    "br_per_min": "breathing rate, breaths/min (bed)",
    "movement": "movement index 0-1 (bed)",
    "presence": "someone in bed (bed; without a bed sensor: the epoch has data)",
    "rmssd_ms": "RMSSD of cleaned RR, ms (strap)",
    "sdnn_ms": "SDNN of cleaned RR, ms (strap)",
    "rr_window": "the epoch's window had HRV from the strap's RR intervals",
    "cvhr_cycles": "CVHR cycles starting in this epoch; null without HRV",
    "apnoea_prob": "probability 0-1 that the epoch's minute holds an apnoea or hypopnoea (strap RR, apnoea_model);"
    " null without enough clean beats in the minute",
    "resp_event": "a respiratory event starting in this epoch: pause+cvhr (the bed's breathing pause and the strap's"
    " heart-rate surge after it), pause (the bed's pause alone), cvhr (the strap's heart-rate cycle where the bed"
    " gave no epoch); null: none (docs/night-metrics.md)",
    "pause_s": "length of that event's breathing pause, s (the longest, where two start in the epoch)",
    "rr_irregular": "the raw RR intervals ending in this epoch have a normalised RMSSD above 0.12 (irregular, as in"
    " atrial fibrillation); null under 15 beats",
    "hr_surge_bpm": "heart-rate surge after the pause ends: peak 3-beat mean in the 20 s after minus the median"
    " in the 20 s before, beats/min",
    "strap_data": "the strap sent data in this epoch",
    "bed_data": "the bed sensor sent data in this epoch",
}
#: Per-epoch counts mean something else than the night's (docs/night-metrics.md).
_EPOCH_DOCS: Final = {
    "breathing_pauses": "breathing pause episodes that start in this epoch; null where the bed sensor gave no epoch",
    "bed_exits": "bed exits that start in this epoch; null without a bed epoch",
}
#: The night_list query's columns (serving/sql/night_list.sql): night_summary's, two renamed, rounded to 0.1.
NIGHT_LIST_COLUMNS: Final = {
    "subject_id": "subject_id",
    "night": "night",
    "status": "status",
    "status_reason": "status_reason",
    "tst_min": "total_sleep_time_min",
    "efficiency_pct": "sleep_efficiency_pct",
    "waso_min": "waso_min",
    "sleep_score": "sleep_score",
    "pauses_per_hour": "pauses_per_hour",
    "coverage_pct": "coverage_pct",
    "method": "method",
}
#: The night_epochs query's columns (serving/sql/night_epochs.sql).
NIGHT_EPOCH_COLUMNS: Final = (
    "epoch_start_ms",
    "stage",
    "stage_label",
    "stage_confidence",
    "hr_bpm",
    "hr_source",
    "br_per_min",
    "movement",
    "presence",
    "rmssd_ms",
    "breathing_pauses",
)


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


def _from_specs(name: str, specs: tuple[FieldSpec, ...], doc: str) -> type[BaseModel]:
    fields: dict[str, Any] = {
        s.name: (_PY[s.type] | None, Field(None, description=s.doc))
        if s.nullable
        else (_PY[s.type], Field(description=s.doc))
        for s in specs
    }
    return create_model(name, __base__=_Open, __doc__=doc, **fields)


def _from_columns(
    name: str, columns: tuple[tuple[str, str], ...], doc: str, docs: dict[str, str] | None = None
) -> type[BaseModel]:
    """A model of curated columns (name, SQL type), every one nullable (older nights lack newer columns)."""
    fields: dict[str, Any] = {
        c: (_SQL[t] | None, Field(None, description={**COLUMN_DOCS, **(docs or {})}.get(c, f"{t}: docs/analyst.md")))
        for c, t in columns
    }
    return create_model(name, __base__=_Open, __doc__=doc, **fields)


VitalsDoc = _from_specs("VitalsDoc", EPOCH_VITALS_FIELDS, "A 30-s epoch's vitals from one device.")
SampleDoc = _from_specs(
    "SampleDoc",
    tuple(s for s in STRAP_SAMPLE_FIELDS if s.name in ("event_time_ms", "hr_bpm", "sensor_contact", "device_id")),
    "One strap notification's heart rate.",
)
AlertDoc = _from_specs("AlertDoc", ALERT_FIELDS, "An alert episode, open or closed.")
NightRow = _from_columns("NightRow", NIGHT_COLUMNS, "A subject-night's summary (night_summary).")
_NIGHT_TYPES: Final = dict(NIGHT_COLUMNS)
_EPOCH_TYPES: Final = dict(EPOCH_COLUMNS)
NightListRow = _from_columns(
    "NightListRow",
    tuple((c, _NIGHT_TYPES[src]) for c, src in NIGHT_LIST_COLUMNS.items()),
    "A staged night in the list (night_summary's headline figures, rounded to 0.1).",
    {c: COLUMN_DOCS[src] for c, src in NIGHT_LIST_COLUMNS.items()},
)
EpochRow = _from_columns(
    "EpochRow",
    tuple((c, _EPOCH_TYPES[c]) for c in NIGHT_EPOCH_COLUMNS),
    "A staged 30-s epoch (epoch_stages).",
    _EPOCH_DOCS,
)


class SubjectState(_Open):
    """A subject's live state."""

    subject_id: str = Field(description="pseudonymous subject id")
    last_seen_ms: int = Field(description="newest epoch document, ms UTC")
    latest: dict[str, VitalsDoc] = Field(description="the newest epoch document per source (bed, strap)")  # type: ignore[valid-type]
    open_alerts: int = Field(description="alert episodes open now")


class Subjects(BaseModel):
    subjects: list[SubjectState] = Field(description="every subject a live document names")


class SubjectNow(SubjectState):
    """A subject's live state and the bounds of its current night (noon to noon in the stack's zone)."""

    night: str = Field(description="YYYY-MM-DD of the current night's evening")
    night_start_ms: int = Field(description="the night's noon start, ms UTC")
    night_end_ms: int = Field(description="the next noon, ms UTC")


class _Range(BaseModel):
    subject_id: str = Field(description="pseudonymous subject id")
    start_ms: int = Field(description="from, ms UTC (inclusive)")
    end_ms: int = Field(description="to, ms UTC (exclusive)")
    truncated: bool = Field(description="true when the range held more documents than one answer carries")


class Vitals(_Range):
    vitals: list[VitalsDoc] = Field(description="epoch documents, oldest first")  # type: ignore[valid-type]


class Samples(_Range):
    samples: list[SampleDoc] = Field(description="one per strap notification, oldest first")  # type: ignore[valid-type]


class AckOut(BaseModel):
    """Who acknowledged an alert, how and when (the first acknowledgement; later ones change nothing)."""

    by: str = Field(description="the user who acknowledged it")
    via: str = Field(description="dashboard, api or link (a message's one-click link)")
    at: int = Field(description="when, ms UTC")


class Acknowledged(AckOut):
    """An alert's acknowledgement, with the alert and its subject."""

    alert_id: str = Field(description="the alert episode's doc_id")
    subject_id: str = Field(description="pseudonymous subject id")


AlertOut = create_model(
    "AlertOut",
    __base__=AlertDoc,
    __doc__="An alert episode, open or closed, and its acknowledgement.",
    ack=(AckOut | None, Field(None, description="who acknowledged it, how and when; null: not acknowledged")),
)


class Alerts(BaseModel):
    alerts: list[AlertOut] = Field(description="newest first")  # type: ignore[valid-type]


class AlertCount(BaseModel):
    kind: str = Field(description="hr_high, hr_low, breathing_pause, bed_exit, contact_lost")
    status: str = Field(description="open or closed")
    count: int = Field(description="alert episodes of this kind and status")


class AlertCounts(BaseModel):
    counts: list[AlertCount] = Field(description="one per kind and status that has episodes")


class Nights(BaseModel):
    nights: list[NightListRow] = Field(description="newest first")  # type: ignore[valid-type]


class ModelCard(_Open):
    """A staging model's card (core/nights/models/<name>.card.json): what it reads and how accurate it
    measured on nights it never saw."""

    model: str = Field(description="the model's name, as a night's method names it")
    inputs: str = Field(description="what it stages from")
    validation: str = Field(description="how it was validated, on what data")
    kappa_4: float = Field(description="Cohen's kappa against polysomnography, 4 classes (wake, light, deep, REM)")
    kappa_3: float = Field(description="Cohen's kappa, 3 classes (wake, NREM, REM)")
    kappa_2: float = Field(description="Cohen's kappa, 2 classes (sleep, wake)")
    accuracy_4: float = Field(description="share of epochs staged right, 4 classes, 0-1")
    accuracy_3: float = Field(description="share of epochs staged right, 3 classes, 0-1")
    accuracy_2: float = Field(description="share of epochs staged right, 2 classes, 0-1")
    tst_abs_error_min_median: float = Field(description="median absolute error of total sleep time, min")
    measured_by: str = Field(description="the command that measured these figures")
    intervals_90: dict[str, dict[str, float]] | None = Field(
        None,
        description="per night metric: the 90 % conformal half-width (its unit), its coverage on held-out subjects"
        " (0-1) and the subjects it rests on (core.nights.intervals); null: none measured",
    )
    intervals_method: str | None = Field(None, description="how intervals_90 was measured")
    calibration: dict[str, float | int | str] | None = Field(
        None,
        description="the stage probabilities' temperature scaling (core.nights.calibration): the temperature,"
        " the top-label ECE (15 bins) and mean NLL on held-out subjects before and after it, and how measured",
    )


class ApnoeaCard(_Open):
    """The apnoea detector's card (core/nights/models/<name>.card.json): how it measured on the
    Apnea-ECG records it never saw, and what it cannot do."""

    model: str = Field(description="the model's name, as a night's apnoea_model names it")
    validation: str = Field(description="how it was validated, on what data")
    minute_accuracy: float = Field(description="share of minutes called right (apnoea or not), 0-1")
    minute_sensitivity: float = Field(description="share of apnoea minutes called apnoea, 0-1")
    minute_specificity: float = Field(description="share of normal minutes called normal, 0-1")
    ahi_pearson_r: float = Field(description="Pearson r of the AHI estimate against polysomnography")
    ahi_mae_per_h: float = Field(description="mean absolute AHI error, events/h")
    ahi_interval_coverage_90: float = Field(description="share of held-out nights inside the 90 % interval, 0-1")
    limitations: str = Field(description="what the estimate cannot be used for")
    measured_by: str = Field(description="the command that measured these figures")


class NightOut(BaseModel):
    summary: NightRow = Field(description="every column of the night's night_summary row")  # type: ignore[valid-type]
    model: ModelCard | None = Field(description="the card of the model that staged the night (null: no card)")
    apnoea_model: ApnoeaCard | None = Field(
        None, description="the card of the apnoea detector that estimated ahi_est (null: no estimate)"
    )


class NightEpochs(BaseModel):
    subject_id: str = Field(description="pseudonymous subject id")
    night: str = Field(description="YYYY-MM-DD of the night's evening")
    epochs: list[EpochRow] = Field(description="the night's 30-s epochs, oldest first")  # type: ignore[valid-type]
    low_confidence: float = Field(
        description="epochs whose stage_confidence is below this are uncertain (shaded on the hypnogram)"
    )
