"""Who wears which device when: subjects, devices and assignments, and their rules.

A study's or a ward's registry holds

* **subjects** — a pseudonymous id, the time zone their nights are cut in, enrolled or
  withdrawn (with the times), optional age band and sex, and alert thresholds that
  override the defaults (:class:`core.live.alerts.AlertRules` field names);
* **devices** — an address (the BLE address, or a simulated device's name), its kind
  (``strap`` or ``bed``) and a label a person recognises ("bed 12");
* **assignments** — device -> subject over the half-open interval ``[from_ms, to_ms)``
  (``to_ms`` ``None``: until further notice). One device's assignments never overlap,
  so a record's subject is a function of its device and its device time
  (:func:`subject_at`).

Pure: the stores (:mod:`registry.store` and its adapters) keep these and call the checks
here. Times are integer milliseconds since the Unix epoch, UTC.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, ClassVar, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from core.errors import InputError
from core.live.alerts import AlertRules

__all__ = [
    "AGE_BANDS",
    "DEVICE_KINDS",
    "OPEN_END_MS",
    "SEXES",
    "Assignment",
    "AssignmentIndex",
    "Device",
    "Reassignment",
    "RegistryError",
    "Subject",
    "Window",
    "check_assignment",
    "conflict",
    "in_windows",
    "plan_assignment",
    "plan_reassignment",
    "subject_at",
    "subject_windows",
]

_ID: Final = re.compile(r"^[A-Za-z0-9:_.-]{1,64}$")
_GROUP: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
DEVICE_KINDS: Final = ("strap", "bed")
SEXES: Final = ("female", "male", "other")
#: Age bands (years) a subject may carry instead of a birth date (pseudonymity).
AGE_BANDS: Final = ("18-29", "30-39", "40-49", "50-59", "60-69", "70-79", "80+")


class RegistryError(InputError):
    """A registry entry is refused; ``what`` names the field or the entry, ``reason`` why."""


@dataclass(frozen=True)
class Subject:
    """A pseudonymous person whose nights are recorded."""

    subject_id: str
    enrolled_ms: int
    tz: str = "UTC"
    status: str = "enrolled"  # enrolled | withdrawn
    withdrawn_ms: int | None = None
    age_band: str | None = None
    sex: str | None = None
    #: Alert thresholds that override the defaults for this subject only.
    alert_overrides: Mapping[str, float] = field(default_factory=dict)
    #: The studies or wards the subject is in: who may see them (a user's groups, issue 27)
    groups: tuple[str, ...] = ()

    STATUSES: ClassVar[tuple[str, ...]] = ("enrolled", "withdrawn")

    def __post_init__(self) -> None:
        if not _ID.match(self.subject_id):
            raise RegistryError("subject_id", f"{self.subject_id!r} is not an id (1-64 of letters, digits, :_.-)")
        try:
            ZoneInfo(self.tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise RegistryError("tz", f"{self.tz!r} is not an IANA time zone (e.g. Europe/London)") from None
        if self.status not in self.STATUSES:
            raise RegistryError("status", f"{self.status!r} is not one of {', '.join(self.STATUSES)}")
        if (self.status == "withdrawn") != (self.withdrawn_ms is not None):
            raise RegistryError("withdrawn_ms", "is set exactly when the subject is withdrawn")
        if self.withdrawn_ms is not None and self.withdrawn_ms < self.enrolled_ms:
            raise RegistryError("withdrawn_ms", "is before the enrolment")
        if self.age_band is not None and self.age_band not in AGE_BANDS:
            raise RegistryError("age_band", f"{self.age_band!r} is not one of {', '.join(AGE_BANDS)}")
        if self.sex is not None and self.sex not in SEXES:
            raise RegistryError("sex", f"{self.sex!r} is not one of {', '.join(SEXES)}")
        try:
            self.alert_rules()
        except (TypeError, ValueError) as exc:
            raise RegistryError("alert_overrides", str(exc)) from None
        for g in self.groups:
            if not isinstance(g, str) or not _GROUP.match(g):
                raise RegistryError("groups", f"{g!r} is not a group name (1-64 of letters, digits, ._-)")

    def alert_rules(self, defaults: AlertRules | None = None) -> AlertRules:
        """The thresholds this subject's alerts use: the defaults with the overrides applied."""
        return (defaults or AlertRules()).with_overrides(self.alert_overrides)

    def to_dict(self) -> dict[str, Any]:
        return {
            "subject_id": self.subject_id,
            "enrolled_ms": self.enrolled_ms,
            "tz": self.tz,
            "status": self.status,
            "withdrawn_ms": self.withdrawn_ms,
            "age_band": self.age_band,
            "sex": self.sex,
            "alert_overrides": dict(self.alert_overrides),
            "groups": list(self.groups),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Subject:
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        known["alert_overrides"] = dict(known.get("alert_overrides") or {})
        known["groups"] = tuple(sorted(set(known.get("groups") or ())))
        return cls(**known)


@dataclass(frozen=True)
class Device:
    """A strap or a bed sensor, by address."""

    address: str
    kind: str
    label: str = ""

    def __post_init__(self) -> None:
        if not _ID.match(self.address):
            raise RegistryError("address", f"{self.address!r} is not a device address (1-64 of letters, digits, :_.-)")
        if self.kind not in DEVICE_KINDS:
            raise RegistryError("kind", f"{self.kind!r} is not one of {', '.join(DEVICE_KINDS)}")
        if len(self.label) > 80:
            raise RegistryError("label", "is longer than 80 characters")

    def to_dict(self) -> dict[str, Any]:
        return {"address": self.address, "kind": self.kind, "label": self.label}


@dataclass(frozen=True, order=True)
class Assignment:
    """``device`` is worn by (or under) ``subject_id`` over ``[from_ms, to_ms)``."""

    device: str
    from_ms: int
    subject_id: str
    to_ms: int | None = None

    def __post_init__(self) -> None:
        if self.to_ms is not None and self.to_ms <= self.from_ms:
            raise RegistryError("to", "must be after from")

    def covers(self, t_ms: int) -> bool:
        return self.from_ms <= t_ms and (self.to_ms is None or t_ms < self.to_ms)

    def overlaps(self, other: Assignment) -> bool:
        a_end = self.to_ms if self.to_ms is not None else float("inf")
        b_end = other.to_ms if other.to_ms is not None else float("inf")
        return self.device == other.device and self.from_ms < b_end and other.from_ms < a_end

    def to_dict(self) -> dict[str, Any]:
        return {"device": self.device, "subject_id": self.subject_id, "from_ms": self.from_ms, "to_ms": self.to_ms}


def conflict(existing: Iterable[Assignment], new: Assignment) -> Assignment | None:
    """The first of the device's assignments that ``new`` would overlap, if any."""
    return next((a for a in sorted(existing) if a.overlaps(new)), None)


def check_assignment(new: Assignment, device: Device | None, subject: Subject | None) -> None:
    """Refuse an assignment to an unknown device or subject, starting before the subject's
    enrolment, or reaching past a withdrawn subject's withdrawal."""
    if device is None:
        raise RegistryError("device", f"{new.device!r} is not registered: add it first (devices add)")
    if subject is None:
        raise RegistryError("subject", f"{new.subject_id!r} is not registered: add it first (subjects add)")
    if new.from_ms < subject.enrolled_ms:
        raise RegistryError(
            "from",
            f"is before {subject.subject_id}'s enrolment ({_iso(subject.enrolled_ms)}); nobody wore it for them then",
        )
    if subject.withdrawn_ms is not None and (new.to_ms is None or new.to_ms > subject.withdrawn_ms):
        raise RegistryError("subject", f"{subject.subject_id} was withdrawn; an assignment must end before that")


def subject_at(assignments: Sequence[Assignment], device: str, t_ms: int) -> str | None:
    """The subject ``device`` was assigned to at ``t_ms`` (None: unassigned then)."""
    return AssignmentIndex(assignments).subject_at(device, t_ms)


class AssignmentIndex:
    """Assignments by device, for resolving many records: O(log n) per lookup."""

    def __init__(self, assignments: Iterable[Assignment]) -> None:
        by_device: dict[str, list[Assignment]] = {}
        for a in assignments:
            by_device.setdefault(a.device, []).append(a)
        self._by_device = {d: sorted(v) for d, v in by_device.items()}
        self._starts = {d: [a.from_ms for a in v] for d, v in self._by_device.items()}

    def subject_at(self, device: str, t_ms: int) -> str | None:
        starts = self._starts.get(device)
        if not starts:
            return None
        i = bisect.bisect_right(starts, t_ms) - 1
        if i < 0:
            return None
        a = self._by_device[device][i]
        return a.subject_id if a.covers(t_ms) else None

    def devices(self) -> set[str]:
        return set(self._by_device)


def plan_assignment(existing: Iterable[Assignment], new: Assignment) -> list[Assignment]:
    """The device's assignments to write for ``new``: ``new`` itself, and the open-ended
    assignment it follows, ended where ``new`` starts (a strap moved to the next patient).

    Any other overlap is refused with the conflicting assignment named.
    """
    current = sorted(existing)
    writes = [new]
    for a in current:
        if not a.overlaps(new):
            continue
        if a.to_ms is None and a.from_ms < new.from_ms and a.subject_id != new.subject_id:
            writes.insert(0, replace(a, to_ms=new.from_ms))
            continue
        if a.to_ms is None and a.from_ms < new.from_ms:  # the same subject again: nothing to change
            since = _iso(a.from_ms)
            raise RegistryError("assignment", f"{a.device} is already assigned to {a.subject_id} since {since}")
        until = "further notice" if a.to_ms is None else _iso(a.to_ms)
        raise RegistryError(
            "assignment",
            f"{new.device} is assigned to {a.subject_id} from {_iso(a.from_ms)} until {until}, which overlaps",
        )
    return writes


@dataclass(frozen=True)
class Reassignment:
    """How a device's assignments change so that ``[from_ms, to_ms)`` is ``subject_id``'s.

    ``previous``: who the device was assigned to over the window before, clipped to it
    (what the stored data was filed under); ``writes`` and ``deletes``: the assignments to
    put and to remove (by device and start). Nothing to write or delete: it already is so.
    """

    device: str
    from_ms: int
    to_ms: int
    subject_id: str
    previous: tuple[Assignment, ...]
    writes: tuple[Assignment, ...]
    deletes: tuple[Assignment, ...]

    @property
    def changed(self) -> bool:
        return bool(self.writes or self.deletes)

    def previous_subjects(self) -> list[str]:
        """The subjects the window was assigned to before, other than the new one, sorted."""
        return sorted({a.subject_id for a in self.previous} - {self.subject_id})


def plan_reassignment(
    existing: Iterable[Assignment], device: str, from_ms: int, to_ms: int, subject_id: str
) -> Reassignment:
    """The device's assignments after correcting ``[from_ms, to_ms)`` to ``subject_id``.

    Assignments overlapping the window are cut at its edges: the parts outside keep their
    subjects, the window becomes one assignment of ``subject_id``, joined with a neighbour
    of the same subject that touches it. Only time the device was assigned can be
    corrected (there is no data from other time to move): a window that reaches time the
    device was assigned to nobody is refused, naming that time.
    """
    if to_ms <= from_ms:
        raise RegistryError("to", "must be after from")
    window = Assignment(device, from_ms, subject_id, to_ms)
    current = sorted(a for a in existing if a.device == device)
    inside = [a for a in current if a.overlaps(window)]
    covered_until = from_ms
    for a in inside:
        if a.from_ms > covered_until:
            break
        covered_until = to_ms if a.to_ms is None else max(covered_until, a.to_ms)
    if covered_until < to_ms:
        gap_end = next((a.from_ms for a in inside if a.from_ms > covered_until), to_ms)
        raise RegistryError(
            "window",
            f"{device} is assigned to nobody from {_iso(covered_until)} until {_iso(gap_end)}, inside the window:"
            " only time it was assigned to someone can be corrected",
        )
    previous = tuple(
        replace(a, from_ms=max(a.from_ms, from_ms), to_ms=to_ms if a.to_ms is None else min(a.to_ms, to_ms))
        for a in inside
    )
    after = [a for a in current if not a.overlaps(window)]
    for a in inside:
        if a.from_ms < from_ms:
            after.append(replace(a, to_ms=from_ms))
        if a.to_ms is None or a.to_ms > to_ms:
            after.append(replace(a, from_ms=to_ms))
    start: int = from_ms
    end: int | None = to_ms
    before = next((a for a in after if a.to_ms == from_ms and a.subject_id == subject_id), None)
    following = next((a for a in after if a.from_ms == to_ms and a.subject_id == subject_id), None)
    if before is not None:
        after.remove(before)
        start = before.from_ms
    if following is not None:
        after.remove(following)
        end = following.to_ms
    after.append(Assignment(device, start, subject_id, end))
    after.sort()
    old = set(current)
    starts = {a.from_ms for a in after}
    return Reassignment(
        device,
        from_ms,
        to_ms,
        subject_id,
        previous=previous,
        writes=tuple(a for a in after if a not in old),
        deletes=tuple(a for a in current if a.from_ms not in starts),
    )


def _iso(t_ms: int) -> str:
    return datetime.fromtimestamp(t_ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


#: A device's time ``[from_ms, to_ms)`` that was one subject's (an assignment): ``(device, from_ms, to_ms)``.
Window = tuple[str, int, int]
#: Where an open assignment's window ends (far beyond any record's time).
OPEN_END_MS: Final = 2**62


def subject_windows(assignments: Iterable[Assignment], subject_id: str) -> list[Window]:
    """The windows of ``subject_id``'s assignments (an open one until :data:`OPEN_END_MS`), sorted."""
    return sorted(
        (a.device, a.from_ms, OPEN_END_MS if a.to_ms is None else a.to_ms)
        for a in assignments
        if a.subject_id == subject_id
    )


def in_windows(windows: Iterable[Window], device: object, t_ms: object) -> bool:
    """Whether ``device`` at ``t_ms`` (device time, ms) falls in one of ``windows``."""
    if not isinstance(t_ms, int | float):
        return False
    return any(device == d and start <= t_ms < end for d, start, end in windows)
