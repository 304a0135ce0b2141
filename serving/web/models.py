"""The JSON API's response bodies as pydantic models, for ``/api/openapi.json``.

The document models are rendered from the field specs the documents are built from
(:data:`core.signals.vitals.EPOCH_VITALS_FIELDS`, :data:`core.live.alerts.ALERT_FIELDS`,
:data:`core.nights.nightly.NIGHT_COLUMNS` ...), so the schema cannot drift from the data.
The routes return their bodies already rendered (orjson: a night of vitals is thousands
of documents); the models document them and the tests check the bodies against them.
"""

from __future__ import annotations

from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, create_model

from core.contract import FieldSpec, FieldType
from core.live.alerts import ALERT_FIELDS
from core.nights.nightly import EPOCH_COLUMNS, NIGHT_COLUMNS
from core.signals.vitals import EPOCH_VITALS_FIELDS, STRAP_SAMPLE_FIELDS

__all__ = [
    "AlertCounts",
    "Alerts",
    "NightEpochs",
    "NightOut",
    "Nights",
    "Samples",
    "SubjectOut",
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
#: Units and meanings of the curated columns the night routes return (the rest: docs/night-metrics.md).
_NIGHT_DOCS: Final = {
    "night": "YYYY-MM-DD of the night's evening",
    "status": "staged, or insufficient (status_reason says why)",
    "completeness": "complete, partial or insufficient (completeness_reason says which rule failed)",
    "method": "the staging model that staged the night",
}


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


def _from_columns(name: str, columns: tuple[tuple[str, str], ...], doc: str) -> type[BaseModel]:
    fields: dict[str, Any] = {
        c: (_SQL[t] | None, Field(None, description=_NIGHT_DOCS.get(c, f"{t}; see docs/night-metrics.md")))
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
EpochRow = _from_columns("EpochRow", EPOCH_COLUMNS, "A staged 30-s epoch (epoch_stages).")


class SubjectState(_Open):
    """A subject's live state."""

    subject_id: str = Field(description="pseudonymous subject id")
    last_seen_ms: int = Field(description="newest epoch document, ms UTC")
    latest: dict[str, VitalsDoc] = Field(description="the newest epoch document per source (bed, strap)")  # type: ignore[valid-type]
    open_alerts: int = Field(description="alert episodes open now")


class Subjects(BaseModel):
    subjects: list[SubjectState]


class SubjectOut(SubjectState):
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


class Alerts(BaseModel):
    alerts: list[AlertDoc] = Field(description="newest first")  # type: ignore[valid-type]


class AlertCount(BaseModel):
    kind: str = Field(description="hr_high, hr_low, breathing_pause, bed_exit, contact_lost")
    status: str = Field(description="open or closed")
    count: int


class AlertCounts(BaseModel):
    counts: list[AlertCount]


class Nights(BaseModel):
    nights: list[dict[str, Any]] = Field(description="the night_list query's rows (serving/sql/night_list.sql)")


class NightOut(BaseModel):
    summary: NightRow  # type: ignore[valid-type]
    model: dict[str, Any] | None = Field(description="the card of the model that staged the night: its accuracy")


class NightEpochs(BaseModel):
    subject_id: str
    night: str
    epochs: list[dict[str, Any]] = Field(description="the night_epochs query's rows (serving/sql/night_epochs.sql)")
