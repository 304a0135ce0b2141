"""The staged nights as an HL7 FHIR R4 Bundle of Observations, built and validated by ``fhir.resources``.

One ``collection`` Bundle per export: an Observation per epoch with a heart rate (LOINC
8867-4) and per epoch with a breathing rate (LOINC 9279-1), both in the vital-signs
category with UCUM ``/min`` and a 30-s ``effectivePeriod``; and an Observation per night
metric the night has (:data:`NIGHT_METRICS`: LOINC where a code exists, otherwise this
stack's own code system, with the HL7 Personal Health Record IG's sleep-episode code as
a second coding where one names the same figure), its ``effectivePeriod`` the night in bed.

Every Observation's ``subject`` is a logical reference by the pseudonymous subject id
(``identifier`` only, no name, no resource id), its ``device`` the device that measured it
(by the device id the lake holds) or, for a night metric, the staging method.

``fhir.resources`` ships R4B (4.3.0) models, not R4 (4.0.1): Bundle and Observation,
the only resources written here, did not change between the two, so the JSON is R4.
The library checks structure, cardinality, data types and value formats; it does not
check terminology bindings or invariants (a full FHIR validator does).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import pandas as pd

from core.contract.epochs import EPOCH_MS
from serving.export._lake import SubjectData

__all__ = [
    "DEVICE_SYSTEM",
    "LOINC",
    "METRIC_SYSTEM",
    "NIGHT_METRICS",
    "PHR_SLEEP",
    "SUBJECT_SYSTEM",
    "VITALS",
    "Code",
    "build_bundle",
    "write_fhir",
]

LOINC: Final = "http://loinc.org"
UCUM: Final = "http://unitsofmeasure.org"
#: The HL7 Personal Health Record IG's sleep-episode codes (trial use; the names of the
#: IEEE 1752.1 / Open mHealth sleep-episode properties).
PHR_SLEEP: Final = "http://hl7.org/fhir/uv/phr/CodeSystem/sleep-episode-codes"
#: This stack's own codes for the night metrics LOINC has no code for.
METRIC_SYSTEM: Final = "urn:sleepstack:fhir:night-metric"
#: Identifier systems: the pseudonymous subject id, the device id, the staging method.
SUBJECT_SYSTEM: Final = "urn:sleepstack:subject"
DEVICE_SYSTEM: Final = "urn:sleepstack:device"
METHOD_SYSTEM: Final = "urn:sleepstack:staging-method"
_CATEGORY: Final = "http://terminology.hl7.org/CodeSystem/observation-category"
_NS: Final = uuid.UUID("6f1c1b5e-2f0a-4d1e-9c53-7d0f3c2a9b11")  # fullUrls: uuid5 under this namespace


@dataclass(frozen=True)
class Code:
    """A curated column as an Observation: its codings (system, code, display), unit and UCUM code."""

    column: str
    codings: tuple[tuple[str, str, str], ...]
    unit: str
    ucum: str


#: The epoch vitals: (column, code).
VITALS: Final = (
    Code("hr_bpm", ((LOINC, "8867-4", "Heart rate"),), "beats/minute", "/min"),
    Code("br_per_min", ((LOINC, "9279-1", "Respiratory rate"),), "breaths/minute", "/min"),
)


def _own(code: str, display: str) -> tuple[str, str, str]:
    return (METRIC_SYSTEM, code, display)


#: The night metrics of ``night_summary`` written as Observations, in this order.
NIGHT_METRICS: Final = (
    Code("time_in_bed_min", (_own("time-in-bed", "Time in bed"),), "min", "min"),
    Code(
        "total_sleep_time_min",
        ((LOINC, "93832-4", "Sleep duration"), (PHR_SLEEP, "totalSleepTime", "Total sleep time")),
        "min",
        "min",
    ),
    Code(
        "sleep_onset_latency_min",
        (
            _own("sleep-onset-latency", "Sleep onset latency"),
            (PHR_SLEEP, "latencyToSleepOnset", "Latency to sleep onset"),
        ),
        "min",
        "min",
    ),
    Code(
        "waso_min",
        (_own("waso", "Wake after sleep onset"), (PHR_SLEEP, "wakeAfterSleepOnset", "Wake after sleep onset")),
        "min",
        "min",
    ),
    Code("sleep_efficiency_pct", (_own("sleep-efficiency", "Sleep efficiency (TST / time in bed)"),), "%", "%"),
    Code("rem_latency_min", (_own("rem-latency", "REM latency from sleep onset"),), "min", "min"),
    Code(
        "awakenings",
        (_own("awakenings", "Awakenings of 1 min or more"), (PHR_SLEEP, "numberOfAwakenings", "Number of awakenings")),
        "awakenings",
        "{count}",
    ),
    Code("wake_min", (_own("wake-duration", "Wake duration in bed"),), "min", "min"),
    Code("light_min", ((LOINC, "93830-8", "Light sleep duration"),), "min", "min"),
    Code(
        "deep_min",
        ((LOINC, "93831-6", "Deep sleep duration"), (PHR_SLEEP, "deepSleepDuration", "Deep sleep duration")),
        "min",
        "min",
    ),
    Code(
        "rem_min",
        ((LOINC, "93829-0", "REM sleep duration"), (PHR_SLEEP, "remSleepDuration", "Rem sleep duration")),
        "min",
        "min",
    ),
    Code("light_pct", (_own("light-sleep-percentage", "Light sleep, % of total sleep time"),), "%", "%"),
    Code(
        "deep_pct",
        (
            _own("deep-sleep-percentage", "Deep sleep, % of total sleep time"),
            (PHR_SLEEP, "deepSleepPercentage", "Deep sleep percentage"),
        ),
        "%",
        "%",
    ),
    Code(
        "rem_pct",
        (
            _own("rem-sleep-percentage", "REM sleep, % of total sleep time"),
            (PHR_SLEEP, "remSleepPercentage", "Rem sleep percentage"),
        ),
        "%",
        "%",
    ),
    Code(
        "breathing_pauses",
        (_own("breathing-pauses", "Breathing pauses of 10 s or more in observed sleep (bed sensor)"),),
        "pauses",
        "{count}",
    ),
    Code(
        "pauses_per_hour",
        (_own("breathing-pauses-per-hour", "Breathing pauses per hour of observed sleep (screening, not an AHI)"),),
        "/h",
        "/h",
    ),
    Code("bed_exits", (_own("bed-exits", "Bed exits of 60 s or more"),), "exits", "{count}"),
    Code(
        "cvhr_per_hour",
        (_own("cvhr-per-hour", "Cyclic variation of heart rate per hour of sleep (screening)"),),
        "/h",
        "/h",
    ),
    Code("sleep_score", (_own("sleep-score", "Sleep score, 0-100"),), "score", "{score}"),
)


def _instant(t_ms: int) -> str:
    return datetime.fromtimestamp(t_ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _period(start_ms: int, end_ms: int) -> dict[str, str]:
    return {"start": _instant(start_ms), "end": _instant(end_ms)}


def _concept(code: Code) -> dict[str, Any]:
    return {
        "coding": [{"system": s, "code": c, "display": d} for s, c, d in code.codings],
        "text": code.codings[0][2],
    }


def _ref(system: str, value: str, type_: str, display: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": type_, "identifier": {"system": system, "value": value}}
    if display:
        out["display"] = display
    return out


def _devices(raw: pd.DataFrame) -> dict[tuple[str, str], str]:
    """(night, kind) -> the device id that sent most of the night's measurements of that kind."""
    if raw.empty:
        return {}
    meas = raw[raw["kind"].isin(["strap", "bed"])]
    counts = meas.groupby(["night", "kind", "device_id"]).size().reset_index(name="n")
    best = counts.sort_values("n").groupby(["night", "kind"]).tail(1)
    return {(str(r.night), str(r.kind)): str(r.device_id) for r in best.itertuples()}


_KIND_NAMES: Final = {"strap": "heart-rate strap", "bed": "under-mattress bed sensor"}


def _observation(
    code: Code, value: float, period: dict[str, str], subject: dict[str, Any], device: dict[str, Any], vital: bool
) -> dict[str, Any]:
    obs: dict[str, Any] = {"resourceType": "Observation", "status": "final"}
    if vital:
        obs["category"] = [{"coding": [{"system": _CATEGORY, "code": "vital-signs", "display": "Vital Signs"}]}]
    obs.update(
        code=_concept(code),
        subject=subject,
        effectivePeriod=period,
        valueQuantity={"value": value, "unit": code.unit, "system": UCUM, "code": code.ucum},
        device=device,
    )
    return obs


def _entry(key: str, resource: dict[str, Any]) -> dict[str, Any]:
    return {"fullUrl": f"urn:uuid:{uuid.uuid5(_NS, key)}", "resource": resource}


def build_bundle(data: SubjectData, timestamp: datetime | None = None) -> Any:
    """The export's Bundle (a validated ``fhir.resources`` R4B ``Bundle``; its JSON is R4)."""
    from fhir.resources.R4B.bundle import Bundle

    subject = _ref(SUBJECT_SYSTEM, data.subject_id, "Patient")
    raw = data.raw.select(["night", "kind", "device_id"]).to_pandas() if data.raw.num_rows else pd.DataFrame()
    devices = _devices(raw)
    entries = []
    epochs = data.epochs.to_pandas()
    for ep in epochs.itertuples(index=False):
        night, start = str(ep.night), int(ep.epoch_start_ms)
        period = _period(start, start + EPOCH_MS)
        for code in VITALS:
            value = getattr(ep, code.column)
            if value is None or pd.isna(value):
                continue
            kind = "bed" if code.column == "br_per_min" else str(ep.hr_source or "bed")
            device = _ref(DEVICE_SYSTEM, devices[(night, kind)], "Device") if (night, kind) in devices else None
            device = device or {"display": _KIND_NAMES.get(kind, kind)}
            obs = _observation(code, float(value), period, subject, device, vital=True)
            entries.append(_entry(f"{data.subject_id}|{start}|{code.column}", obs))
    for night in data.summaries.to_pandas().itertuples(index=False):
        if night.first_epoch_ms is None or pd.isna(night.first_epoch_ms):
            continue
        start = int(night.first_epoch_ms)
        period = _period(start, start + int(night.epochs) * EPOCH_MS)
        method = _ref(METHOD_SYSTEM, str(night.method), "Device", f"sleepstack staging ({night.method})")
        for code in NIGHT_METRICS:
            value = getattr(night, code.column)
            if value is None or pd.isna(value):
                continue
            obs = _observation(code, float(value), period, subject, method, vital=False)
            entries.append(_entry(f"{data.subject_id}|{night.night}|{code.column}", obs))
    when = timestamp or datetime.now(tz=UTC)
    return Bundle.model_validate(
        {
            "resourceType": "Bundle",
            "identifier": {
                "system": "urn:sleepstack:export",
                "value": str(uuid.uuid5(_NS, f"{data.subject_id}|{data.nights[0]}|{data.nights[-1]}")),
            },
            "type": "collection",
            "timestamp": when.isoformat(timespec="seconds"),
            "entry": entries,
        }
    )


def write_fhir(data: SubjectData, path: Path, timestamp: datetime | None = None) -> int:
    """Write the Bundle as JSON to ``path``; how many Observations it holds."""
    bundle = build_bundle(data, timestamp)
    path.write_text(bundle.model_dump_json(exclude_none=True))
    return len(bundle.entry or [])
