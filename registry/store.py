"""The registry's interface and the rules every adapter shares.

An adapter stores subjects, devices, assignments and the history of changes, and gives
one primitive the rules need: replacing a device's assignments atomically, refused when
the device changed since it was read (:class:`VersionConflict`), so two coordinators
assigning the same strap at once cannot both succeed with overlapping windows. The rules
themselves (:mod:`core.registry`) run here, once, for every adapter.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, Final

from core.errors import SleepstackError
from core.registry import Assignment, Device, RegistryError, Subject, check_assignment, plan_assignment

__all__ = ["RegistryStore", "RegistryUnavailable", "VersionConflict"]

_RETRIES: Final = 5


class RegistryUnavailable(SleepstackError):
    """The registry's store cannot be reached or written."""


class VersionConflict(Exception):
    """The device's assignments changed between reading and writing them; read again."""


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
    def _write_assignments(self, address: str, version: int, writes: Sequence[Assignment]) -> None:
        """Put ``writes`` (keyed by device and start) and bump the version, if it is still ``version``."""

    @abstractmethod
    def assignments(self, device: str | None = None) -> list[Assignment]:
        """Every assignment (of one device), ordered by device and start."""

    @abstractmethod
    def history(self) -> list[dict[str, Any]]:
        """Every change, oldest first: ``{"at_ms", "action", "why", "detail"}``."""

    @abstractmethod
    def _log(self, at_ms: int, action: str, why: str, detail: dict[str, Any]) -> None: ...

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
                self._retrying(a.device, lambda _current, a=a: [dataclasses.replace(a, to_ms=at_ms)])
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

    def subject_at(self, device: str, t_ms: int) -> str | None:
        return next((a.subject_id for a in self.assignments(device) if a.covers(t_ms)), None)

    # ------------------------------------------------------------------ helpers
    def _require_subject(self, subject_id: str) -> Subject:
        subject = self.get_subject(subject_id)
        if subject is None:
            raise RegistryError("subject", f"{subject_id!r} is not registered")
        return subject

    def _retrying(self, address: str, plan: Any) -> list[Assignment]:
        for _ in range(_RETRIES):
            version, current = self._device_assignments(address)
            writes: list[Assignment] = plan(current)
            try:
                self._write_assignments(address, version, writes)
            except VersionConflict:
                continue
            return writes
        raise RegistryUnavailable(f"the assignments of {address} kept changing; try again")
