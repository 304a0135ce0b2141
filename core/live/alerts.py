"""Alerts from a device's epoch vitals, each raised once with its start and end.

Rules (thresholds in :class:`AlertRules`, all configurable):

* ``hr_high`` / ``hr_low``: epoch heart rate above / below a threshold for at least
  ``hr_sustained_s`` (whole 30-s epochs; an epoch without a heart rate neither extends
  nor breaks the run).
* ``breathing_pause``: no respiratory movement for ``pause_min_s`` (10 s, the AASM
  minimum for an apnoea) or more, joined across epoch edges (bed sensor).
* ``bed_exit``: nobody on the bed sensor for ``bed_exit_after_s`` after the subject had
  been in bed for ``bed_exit_min_in_bed_s`` (so going to bed is not an exit).
* ``contact_lost``: at least half of a strap's notifications report no skin contact for
  ``contact_lost_s``.

Technical alerts (``category = "technical"``: the device, not the patient) come from the
collector's device statuses, :mod:`core.live.device_health`: ``device_silent``,
``battery_low``, ``not_worn``; ``contact_lost`` is technical too.

A :class:`AlertTracker` consumes one device's epoch documents in epoch order and returns
alert documents: one when the rule is first met (``status = "open"``, no end) and one
with the same deterministic id when the condition ends (``status = "closed"``), so a
store holds exactly one document per alert. A data gap longer than ``max_gap_s`` ends
every open run at the last epoch that supported it. Its state is a small JSON-able dict,
so the speed layer can persist it between invocations.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, Final

from core.contract import FieldType
from core.contract import doc_field as _f
from core.contract.epochs import EPOCH_MS

__all__ = [
    "ALERT_FIELDS",
    "INDEXED_FIELD",
    "TECHNICAL",
    "AlertKind",
    "AlertRules",
    "AlertTracker",
    "Run",
    "alert_doc",
    "alert_id",
    "category",
]


class AlertKind(StrEnum):
    HR_HIGH = "hr_high"
    HR_LOW = "hr_low"
    BREATHING_PAUSE = "breathing_pause"
    BED_EXIT = "bed_exit"
    CONTACT_LOST = "contact_lost"
    # technical: the device, not the patient (core.live.device_health)
    DEVICE_SILENT = "device_silent"
    BATTERY_LOW = "battery_low"
    NOT_WORN = "not_worn"
    # technical: the notifier cannot deliver on a channel (sleepstack.notify)
    NOTIFIER_FAILING = "notifier_failing"


#: Alerts about a device rather than the patient: routed and shown apart from clinical ones.
TECHNICAL: Final = frozenset(
    {
        AlertKind.DEVICE_SILENT,
        AlertKind.BATTERY_LOW,
        AlertKind.NOT_WORN,
        AlertKind.CONTACT_LOST,
        AlertKind.NOTIFIER_FAILING,
    }
)


def category(kind: str) -> str:
    """``technical`` (the device) or ``clinical`` (the patient)."""
    return "technical" if kind in TECHNICAL else "clinical"


@dataclass(frozen=True, slots=True)
class AlertRules:
    """Alert thresholds. Times in seconds, heart rates in beats/min."""

    hr_high_bpm: float = 120.0
    hr_low_bpm: float = 40.0
    hr_sustained_s: int = 120
    pause_min_s: float = 10.0
    bed_exit_after_s: int = 60
    bed_exit_min_in_bed_s: int = 1800
    contact_lost_s: int = 60
    max_gap_s: int = 120
    #: technical alerts, from the collector's device statuses (core.live.device_health)
    battery_low_pct: float = 20.0
    device_silent_s: int = 300
    not_worn_s: int = 600

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> AlertRules:
        unknown = set(values) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown alert rule {sorted(unknown)[0]!r}")
        return cls(**values)

    def with_overrides(self, overrides: Mapping[str, float]) -> AlertRules:
        """These rules with some thresholds replaced (a subject's own), each kept in its field's type.

        Raises :class:`ValueError` naming an unknown rule or a value that is not a positive number."""
        unknown = set(overrides) - set(self.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown alert rule {sorted(unknown)[0]!r}")
        bad = {k: v for k, v in overrides.items() if isinstance(v, bool) or not isinstance(v, int | float) or v <= 0}
        if bad:
            name = sorted(bad)[0]
            raise ValueError(f"{name} must be a positive number, not {bad[name]!r}")
        values: dict[str, Any] = {k: type(getattr(self, k))(v) for k, v in overrides.items()}
        return dataclasses.replace(self, **values)


#: The field a live store stamps on an alert when it writes it (:data:`ALERT_FIELDS`).
INDEXED_FIELD: Final = "indexed_ms"
#: Fields of an alert document (speed-layer alerts index).
ALERT_FIELDS: Final = (
    _f("doc_id", FieldType.STRING, "deterministic id: device, kind, start", False),
    _f("subject_id", FieldType.STRING, "pseudonymous subject id", False),
    _f("device_id", FieldType.STRING, "device whose data raised it", False),
    _f("source", FieldType.STRING, "bed or strap", False),
    _f(
        "kind",
        FieldType.STRING,
        "hr_high, hr_low, breathing_pause, bed_exit (clinical); contact_lost, device_silent, battery_low,"
        " not_worn (technical)",
        False,
    ),
    _f("category", FieldType.STRING, "clinical (the patient) or technical (the device)", False),
    _f("status", FieldType.STRING, "open or closed", False),
    _f("start_ms", FieldType.INT64, "when the condition began, ms UTC", False),
    _f("end_ms", FieldType.INT64, "when it ended, ms UTC (null while open)"),
    _f("raised_ms", FieldType.INT64, "when the rule was first met, ms UTC", False),
    _f("duration_s", FieldType.FLOAT64, "end - start (so far, while open), s", False),
    _f(
        "value",
        FieldType.FLOAT64,
        "peak heart rate (bpm), lowest (bpm), pause length (s), lowest battery (%), or silent/unworn time (s)",
    ),
    _f("threshold", FieldType.FLOAT64, "the rule's threshold in the same unit"),
    _f(
        INDEXED_FIELD,
        FieldType.INT64,
        "when the live store wrote this version, ms UTC by the writer's clock (stamped by the store, not"
        " derived from the data: the notifier's cursor over changes, which event times cannot be when the"
        " speed layer writes one shard's later episodes before another's earlier ones)",
    ),
)


def alert_id(device_id: str, kind: str, start_ms: int) -> str:
    return hashlib.sha256(f"alert|{device_id}|{kind}|{start_ms}".encode()).hexdigest()[:32]


@dataclass
class Run:
    start_ms: int
    end_ms: int
    value: float | None = None
    raised: bool = False


@dataclass
class AlertTracker:
    """Alert state of one device; feed it epoch documents in epoch order."""

    rules: AlertRules
    last_epoch_ms: int | None = None
    in_bed_s: int = 0
    runs: dict[str, Run] = field(default_factory=dict)

    # ------------------------------------------------------------------ state I/O
    def to_state(self) -> dict[str, Any]:
        return {
            "last_epoch_ms": self.last_epoch_ms,
            "in_bed_s": self.in_bed_s,
            "runs": {k: asdict(r) for k, r in self.runs.items()},
        }

    @classmethod
    def from_state(cls, rules: AlertRules, state: dict[str, Any] | None) -> AlertTracker:
        if not state:
            return cls(rules)
        return cls(
            rules,
            state.get("last_epoch_ms"),
            int(state.get("in_bed_s", 0)),
            {k: Run(**r) for k, r in state.get("runs", {}).items()},
        )

    # ------------------------------------------------------------------ feeding
    def observe(self, epoch: dict[str, Any]) -> list[dict[str, Any]]:
        """Alert documents (raised or closed) caused by one more epoch document."""
        start = int(epoch["epoch_start_ms"])
        if self.last_epoch_ms is not None and start <= self.last_epoch_ms:
            return []  # already seen: epochs arrive once, in order
        out: list[dict[str, Any]] = []
        if self.last_epoch_ms is not None and start - (self.last_epoch_ms + EPOCH_MS) > self.rules.max_gap_s * 1000:
            out += self.close_all(epoch)
            self.in_bed_s = 0  # a long silence starts a new night
        self.last_epoch_ms = start
        end = start + EPOCH_MS
        r = self.rules
        hr = epoch.get("hr_bpm")
        self._sustained(out, epoch, AlertKind.HR_HIGH, None if hr is None else hr > r.hr_high_bpm, hr, max)
        self._sustained(out, epoch, AlertKind.HR_LOW, None if hr is None else hr < r.hr_low_bpm, hr, min)
        if epoch["source"] == "bed":
            present = epoch.get("presence")
            eligible = self.in_bed_s >= r.bed_exit_min_in_bed_s or AlertKind.BED_EXIT in self.runs
            self._sustained(out, epoch, AlertKind.BED_EXIT, None if present is None else (not present and eligible))
            if present:
                self.in_bed_s += EPOCH_MS // 1000
            self._pauses(out, epoch, start, end, bool(present))
        else:
            lost = epoch.get("contact_lost_fraction")
            self._sustained(out, epoch, AlertKind.CONTACT_LOST, None if lost is None else lost >= 0.5)
        return out

    def close_all(self, epoch: dict[str, Any]) -> list[dict[str, Any]]:
        """Close every open run (a long silence, or the end of what a caller has); the closed alerts.

        ``epoch`` names the subject, device and source of the documents (the last one seen).
        """
        out: list[dict[str, Any]] = []
        for kind in list(self.runs):
            out += self._close(epoch, kind)
        return out

    def _min_s(self, kind: str) -> float:
        r = self.rules
        return {
            AlertKind.HR_HIGH: r.hr_sustained_s,
            AlertKind.HR_LOW: r.hr_sustained_s,
            AlertKind.BED_EXIT: r.bed_exit_after_s,
            AlertKind.CONTACT_LOST: r.contact_lost_s,
            AlertKind.BREATHING_PAUSE: r.pause_min_s,
        }[AlertKind(kind)]

    def _threshold(self, kind: str) -> float | None:
        r = self.rules
        return {
            AlertKind.HR_HIGH: r.hr_high_bpm,
            AlertKind.HR_LOW: r.hr_low_bpm,
            AlertKind.BREATHING_PAUSE: r.pause_min_s,
        }.get(AlertKind(kind))

    def _sustained(
        self,
        out: list[dict[str, Any]],
        epoch: dict[str, Any],
        kind: str,
        cond: bool | None,
        value: float | None = None,
        pick: Any = None,
    ) -> None:
        start = int(epoch["epoch_start_ms"])
        run = self.runs.get(kind)
        if cond is None:
            if run is not None and start - run.end_ms > self.rules.max_gap_s * 1000:
                out += self._close(epoch, kind)
            return
        if not cond:
            if run is not None:
                out += self._close(epoch, kind)
            return
        if run is None:
            run = self.runs[kind] = Run(start, start)
        run.end_ms = start + EPOCH_MS
        if value is not None and pick is not None:
            run.value = value if run.value is None else pick(run.value, value)
        self._maybe_raise(out, epoch, kind, run)

    def _maybe_raise(self, out: list[dict[str, Any]], epoch: dict[str, Any], kind: str, run: Run) -> None:
        if not run.raised and run.end_ms - run.start_ms >= self._min_s(kind) * 1000:
            run.raised = True
            out.append(self._doc(epoch, kind, run, closed=False))

    def _close(self, epoch: dict[str, Any], kind: str) -> list[dict[str, Any]]:
        run = self.runs.pop(kind)
        return [self._doc(epoch, kind, run, closed=True)] if run.raised else []

    def _pauses(self, out: list[dict[str, Any]], epoch: dict[str, Any], start: int, end: int, present: bool) -> None:
        kind = AlertKind.BREATHING_PAUSE
        join_ms = 1000  # window-edge effects; two pauses under 1 s apart are one (a breath is longer)
        starts, ends = epoch.get("pause_start_ms") or [], epoch.get("pause_end_ms") or []
        for a, b in zip(starts, ends, strict=True):
            run = self.runs.get(kind)
            if run is not None and a - run.end_ms <= join_ms:
                run.end_ms = int(b)
            else:
                if run is not None:
                    out += self._close(epoch, kind)
                run = self.runs[kind] = Run(int(a), int(b))
            run.value = (run.end_ms - run.start_ms) / 1000
            self._maybe_raise(out, epoch, kind, run)
        run = self.runs.get(kind)
        if run is not None and (not present or run.end_ms < end - join_ms):
            out += self._close(epoch, kind)

    def _doc(self, epoch: dict[str, Any], kind: str, run: Run, *, closed: bool) -> dict[str, Any]:
        return alert_doc(
            subject_id=str(epoch["subject_id"]),
            device_id=str(epoch["device_id"]),
            source=str(epoch["source"]),
            kind=kind,
            run=run,
            min_s=self._min_s(kind),
            threshold=self._threshold(kind),
            closed=closed,
        )


def alert_doc(
    *,
    subject_id: str,
    device_id: str,
    source: str,
    kind: str,
    run: Run,
    min_s: float,
    threshold: float | None,
    closed: bool,
) -> dict[str, Any]:
    """The alert document (:data:`ALERT_FIELDS`) of a run, raised ``min_s`` after it started."""
    return {
        "doc_id": alert_id(device_id, kind, run.start_ms),
        "subject_id": subject_id,
        "device_id": device_id,
        "source": source,
        "kind": str(kind),
        "category": category(kind),
        "status": "closed" if closed else "open",
        "start_ms": run.start_ms,
        "end_ms": run.end_ms if closed else None,
        "raised_ms": run.start_ms + round(min_s * 1000),
        "duration_s": round((run.end_ms - run.start_ms) / 1000, 3),
        "value": None if run.value is None else round(float(run.value), 3),
        "threshold": threshold,
    }
