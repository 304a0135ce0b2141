"""The registry's interface and the rules every adapter shares.

An adapter stores subjects, devices, assignments and the history of changes, and gives
one primitive the rules need: replacing a device's assignments atomically, refused when
the device changed since it was read (:class:`VersionConflict`), so two coordinators
assigning the same strap at once cannot both succeed with overlapping windows. The rules
themselves (:mod:`core.registry`) run here, once, for every adapter.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from core.errors import SleepstackError
from core.registry import (
    Assignment,
    Device,
    Reassignment,
    RegistryError,
    Subject,
    check_assignment,
    plan_assignment,
    plan_reassignment,
)

__all__ = [
    "Change",
    "HistoryEntry",
    "RegistryStore",
    "RegistryUnavailable",
    "VersionConflict",
    "erasure_key",
    "redact",
]

_RETRIES: Final = 5


def erasure_key(subject_id: str) -> str:
    """What stands for an erased subject wherever its id stood (the registry's tombstone, the
    redacted history, the erasure's journal): a salted SHA-256 of the id. Whoever knows the id
    can find its tombstone (a rerun, an auditor asked about it); the key alone does not name it,
    though a pseudonymous id guessed from a small space can be tried (docs/erasure.md)."""
    return "erased-" + hashlib.sha256(f"sleepstack-erasure|{subject_id}".encode()).hexdigest()[:24]


def redact(value: Any, subject_id: str, key: str) -> Any:
    """``value`` (JSON: dicts, lists, strings, numbers) with every string equal to ``subject_id``
    (keys too), and every word of a text that is ``subject_id``, replaced by ``key``."""
    if isinstance(value, dict):
        return {redact(k, subject_id, key): redact(v, subject_id, key) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, subject_id, key) for v in value]
    if isinstance(value, str):
        return re.sub(rf"(?<![\w.-]){re.escape(subject_id)}(?![\w.-])", key, value)
    return value


class RegistryUnavailable(SleepstackError):
    """The registry's store cannot be reached or written."""


class VersionConflict(Exception):
    """The device's assignments changed between reading and writing them; read again."""


@dataclasses.dataclass(frozen=True)
class HistoryEntry:
    """One change as the history keeps it (see :meth:`RegistryStore.history`)."""

    at_ms: int
    action: str
    why: str
    detail: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Change:
    """What one versioned write does to a device's assignments: put ``writes``, remove
    ``deletes`` (by device and start) and, in the same transaction, log ``log``."""

    writes: Sequence[Assignment]
    deletes: Sequence[Assignment] = ()
    log: HistoryEntry | None = None


class RegistryStore(ABC):
    """Subjects, devices, assignments and their history."""

    # ------------------------------------------------------------------ primitives
    @abstractmethod
    def get_subject(self, subject_id: str) -> Subject | None: ...

    @abstractmethod
    def subjects(self) -> list[Subject]: ...

    @abstractmethod
    def _put_subject(self, subject: Subject, *, new: bool) -> None:
        """Write ``subject``; with ``new``, raise :class:`RegistryError` if it exists."""

    @abstractmethod
    def get_device(self, address: str) -> Device | None: ...

    @abstractmethod
    def devices(self) -> list[Device]: ...

    @abstractmethod
    def _put_device(self, device: Device, *, new: bool) -> None: ...

    @abstractmethod
    def _device_assignments(self, address: str) -> tuple[int, list[Assignment]]:
        """The device's version and assignments."""

    @abstractmethod
    def _write_assignments(
        self,
        address: str,
        version: int,
        writes: Sequence[Assignment],
        *,
        deletes: Sequence[Assignment] = (),
        log: HistoryEntry | None = None,
    ) -> None:
        """Put ``writes`` (keyed by device and start), remove ``deletes`` and add ``log`` to the
        history, all in one transaction that bumps the version, if it is still ``version``."""

    @abstractmethod
    def assignments(self, device: str | None = None) -> list[Assignment]:
        """Every assignment (of one device), ordered by device and start."""

    @abstractmethod
    def history(self) -> list[dict[str, Any]]:
        """Every change, oldest first: ``{"at_ms", "action", "why", "detail"}``."""

    @abstractmethod
    def _log(self, at_ms: int, action: str, why: str, detail: dict[str, Any]) -> None: ...

    @abstractmethod
    def _delete_subject(self, subject_id: str) -> bool:
        """Remove the subject's record; whether it existed."""

    @abstractmethod
    def _redact_history(self, subject_id: str, key: str) -> int:
        """Rewrite every history entry naming ``subject_id`` with :func:`redact`; how many changed."""

    # ------------------------------------------------------------------ the rules
    def add_subject(self, subject: Subject, *, why: str = "") -> Subject:
        self._put_subject(subject, new=True)
        self._log(subject.enrolled_ms, "subject_added", why, subject.to_dict())
        return subject

    def update_subject(self, subject: Subject, *, at_ms: int, why: str = "") -> Subject:
        """Change a subject's time zone, age band, sex or alert thresholds (not its status)."""
        old = self._require_subject(subject.subject_id)
        if (subject.status, subject.withdrawn_ms, subject.enrolled_ms) != (
            old.status,
            old.withdrawn_ms,
            old.enrolled_ms,
        ):
            raise RegistryError("status", "is changed by withdrawing the subject, not by an update")
        self._put_subject(subject, new=False)
        self._log(at_ms, "subject_updated", why, subject.to_dict())
        return subject

    def withdraw(self, subject_id: str, *, at_ms: int, why: str = "") -> Subject:
        """Withdraw a subject from ``at_ms``: its devices' assignments end there, so collection stops."""
        subject = self._require_subject(subject_id)
        if subject.withdrawn_ms is not None:
            raise RegistryError("subject", f"{subject_id} is already withdrawn")
        if at_ms < subject.enrolled_ms:
            raise RegistryError("at", "is before the subject's enrolment")
        later = [a for a in self.assignments() if a.subject_id == subject_id and a.from_ms >= at_ms]
        if later:
            raise RegistryError("at", f"{later[0].device} is assigned to {subject_id} after it; change that first")
        for a in self.assignments():
            if a.subject_id == subject_id and a.covers(at_ms):
                ended = [dataclasses.replace(a, to_ms=at_ms)]
                self._retrying(a.device, lambda _current: ended)  # noqa: B023 - called before the loop moves on
        withdrawn = dataclasses.replace(subject, status="withdrawn", withdrawn_ms=at_ms)
        self._put_subject(withdrawn, new=False)
        self._log(at_ms, "subject_withdrawn", why, {"subject_id": subject_id})
        return withdrawn

    def add_device(self, device: Device, *, at_ms: int, why: str = "") -> Device:
        self._put_device(device, new=True)
        self._log(at_ms, "device_added", why, device.to_dict())
        return device

    def assign(self, new: Assignment, *, at_ms: int, why: str = "") -> list[Assignment]:
        """Assign a device over ``[from, to)``; an open assignment it follows ends where it starts.

        Returns what was written (the ended assignment first, if any).
        """
        check_assignment(new, self.get_device(new.device), self.get_subject(new.subject_id))
        written = self._retrying(new.device, lambda current: plan_assignment(current, new))
        self._log(at_ms, "assigned", why, {"written": [a.to_dict() for a in written]})
        return written

    def plan_reassign(self, device: str, from_ms: int, to_ms: int, subject_id: str) -> Reassignment:
        """What :meth:`reassign` would change now (nothing is written); refused as it would be."""
        if self.get_device(device) is None:
            raise RegistryError("device", f"{device!r} is not registered")
        subject = self._require_subject(subject_id)
        if subject.withdrawn_ms is not None and to_ms > subject.withdrawn_ms:
            when = datetime.fromtimestamp(subject.withdrawn_ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            raise RegistryError("subject", f"{subject_id} was withdrawn at {when}; the window must end before that")
        return plan_reassignment(self.assignments(device), device, from_ms, to_ms, subject_id)

    def reassign(
        self,
        device: str,
        from_ms: int,
        to_ms: int,
        subject_id: str,
        *,
        at_ms: int,
        why: str = "",
        by: str = "",
        op: str = "",
    ) -> Reassignment:
        """Correct a mistaken assignment: ``[from_ms, to_ms)`` of ``device`` becomes ``subject_id``'s.

        The device's assignments over the window are cut at its edges
        (:func:`core.registry.plan_reassignment`) and the history's ``reassigned`` entry
        (``by`` whom, ``why``, the previous subjects, ``op``: the operation moving the data)
        is written in the same transaction. Already so: nothing is written (``changed`` is
        False), so a rerun is a no-op. The stored data is moved by :mod:`sleepstack.reassign`.
        """
        self.plan_reassign(device, from_ms, to_ms, subject_id)  # the checks, before any write
        planned: list[Reassignment] = []

        def plan(current: list[Assignment]) -> Change:
            p = plan_reassignment(current, device, from_ms, to_ms, subject_id)
            planned[:] = [p]
            detail = {
                "device": device,
                "from_ms": from_ms,
                "to_ms": to_ms,
                "subject_id": subject_id,
                "by": by,
                "op": op,
                "previous": [a.to_dict() for a in p.previous],
                "written": [a.to_dict() for a in p.writes],
                "deleted": [a.to_dict() for a in p.deletes],
            }
            return Change(p.writes, p.deletes, HistoryEntry(at_ms, "reassigned", why, detail))

        self._changing(device, plan)
        return planned[0]

    def erase_subject(self, subject_id: str) -> dict[str, int]:
        """Remove ``subject_id`` from the registry: its assignments (each device's in one
        versioned write), its record, and its id from the history (replaced by
        :func:`erasure_key`). Idempotent: a rerun finds nothing. The devices stay (they are
        the ward's, not the subject's). The tombstone is :meth:`log_erasure`."""
        key = erasure_key(subject_id)
        deleted = 0
        for device in sorted({a.device for a in self.assignments() if a.subject_id == subject_id}):
            change = self._changing(
                device,
                lambda current: Change((), [a for a in current if a.subject_id == subject_id]),
            )
            deleted += len(change.deletes)
        redacted = self._redact_history(subject_id, key)
        existed = self._delete_subject(subject_id)
        return {
            "registry_subject": int(existed),
            "registry_assignments": deleted,
            "registry_history_redacted": redacted,
        }

    def log_erasure(self, subject_id: str, *, at_ms: int, by: str, why: str = "", op: str = "") -> bool:
        """The tombstone: a history entry ``erased`` with when, by whom and why (any mention
        of the id in ``why`` redacted), keyed by :func:`erasure_key`; written once (False: it was)."""
        key = erasure_key(subject_id)
        if self.erased(subject_id) is not None:
            return False
        self._log(at_ms, "erased", redact(why, subject_id, key), {"subject": key, "by": by, "op": op})
        return True

    def erased(self, subject_id: str) -> dict[str, Any] | None:
        """The tombstone of ``subject_id``'s erasure, or None."""
        key = erasure_key(subject_id)
        return next((h for h in self.history() if h["action"] == "erased" and h["detail"].get("subject") == key), None)

    def subject_at(self, device: str, t_ms: int) -> str | None:
        return next((a.subject_id for a in self.assignments(device) if a.covers(t_ms)), None)

    # ------------------------------------------------------------------ helpers
    def _require_subject(self, subject_id: str) -> Subject:
        subject = self.get_subject(subject_id)
        if subject is None:
            raise RegistryError("subject", f"{subject_id!r} is not registered")
        return subject

    def _retrying(self, address: str, plan: Callable[[list[Assignment]], list[Assignment]]) -> list[Assignment]:
        """Write what ``plan`` makes of the device's current assignments, re-planned on a version conflict."""
        return list(self._changing(address, lambda current: Change(plan(current))).writes)

    def _changing(self, address: str, plan: Callable[[list[Assignment]], Change]) -> Change:
        for _ in range(_RETRIES):
            version, current = self._device_assignments(address)
            change = plan(current)
            if not change.writes and not change.deletes:
                return change
            try:
                self._write_assignments(address, version, change.writes, deletes=change.deletes, log=change.log)
            except VersionConflict:
                continue
            return change
        raise RegistryUnavailable(f"the assignments of {address} kept changing; try again")
