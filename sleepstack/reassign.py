"""Correct a mistaken assignment and move the stored data with it (``sleepstack reassign``).

"The strap was on another patient last night": ``[from_ms, to_ms)`` of a device's time
becomes the right subject's, in four steps, each idempotent:

1. ``registry``: the device's assignments are cut at the window's edges and the window
   assigned to the subject, with the history's ``reassigned`` entry (who, when, why, the
   previous subjects) in the same transaction (:meth:`registry.store.RegistryStore.reassign`);
2. ``lake``: the device's raw rows of the window are filed under the subject
   (:func:`local.relabel.relabel_device`: partitions rewritten, each object replaced whole);
3. ``live``: the live store's documents of the device in the window likewise
   (:meth:`speed_layer.store.LiveStore.reassign`);
4. ``restage``: the nights the window touches, in the zones of the previous subjects and
   of the new one, are staged again (:func:`restage_nights`); a night still in progress
   is left to the nightly batch.

The operation is journaled: ``<home>/reassign/<op>.json`` (owner-only), ``op`` derived from
device, window and subject, lists the previous subjects (read before anything changes)
and the steps done. Killed at any point, the same command resumes at the first step not
done; a finished one is a no-op that says so. While it runs, the journal's lock keeps a
second run of the same correction out.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from core.contract.epochs import night_bounds_ms, night_of, night_range
from core.errors import SleepstackError
from registry.store import RegistryStore
from sleepstack.journal import load_journal, locked, run_steps, save_journal
from speed_layer.store import LiveStore

__all__ = ["STEPS", "Journal", "Outcome", "ReassignBusy", "Reassigner", "op_id"]

STEPS: Final = ("registry", "lake", "live", "restage")
JOURNAL_VERSION: Final = 1

#: Called with the name of each point the operation passes ("journal", "registry", "lake:written",
#: "lake", "live", "restage"): the crash tests stop the process there. None in production.
checkpoint_hook: Callable[[str], None] | None = None


class ReassignBusy(SleepstackError):
    """The same correction is being run by another process."""


def op_id(device: str, from_ms: int, to_ms: int, subject_id: str) -> str:
    """The operation's id: the same correction always gets the same journal."""
    return hashlib.sha256(f"{device}|{from_ms}|{to_ms}|{subject_id}".encode()).hexdigest()[:16]


@dataclass
class Journal:
    """What a correction is, what it found before it changed anything and how far it got."""

    op: str
    device: str
    from_ms: int
    to_ms: int
    subject_id: str
    why: str
    by: str
    started_ms: int
    #: the assignments over the window before the correction, clipped to it
    previous: list[dict[str, Any]]
    done: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    finished_ms: int | None = None
    version: int = JOURNAL_VERSION

    def previous_subjects(self) -> list[str]:
        return sorted({str(a["subject_id"]) for a in self.previous} - {self.subject_id})


@dataclass(frozen=True)
class Outcome:
    journal: Journal
    #: the journal existed: an interrupted run was resumed
    resumed: bool = False
    #: a finished correction run again: nothing done
    already: bool = False
    #: steps this run did
    did: tuple[str, ...] = ()


def _save(path: Path, journal: Journal) -> None:
    save_journal(path, dataclasses.asdict(journal))


def _load(path: Path) -> Journal | None:
    body = load_journal(path)
    return None if body is None else Journal(**body)


def _locked(path: Path) -> contextlib.AbstractContextManager[None]:
    return locked(path, ReassignBusy("this correction is being run by another process; wait for it"))


@dataclass
class Reassigner:
    """One correction's steps over the stores it moves data in (wired by the CLI).

    ``restage(nights)``: stage those (closed) nights again; returns the ones it staged.
    """

    registry: RegistryStore
    raw: Path
    live: Callable[[], LiveStore]
    restage: Callable[[list[str]], list[str]]
    journal_path: Callable[[str], Path]
    default_tz: str = "UTC"

    def run(self, device: str, from_ms: int, to_ms: int, subject_id: str, *, why: str, by: str, now_ms: int) -> Outcome:
        op = op_id(device, from_ms, to_ms, subject_id)
        path = self.journal_path(op)
        # the checks (unknown device or subject, a window with unassigned time) come first:
        # refused, nothing is created
        plan = self.registry.plan_reassign(device, from_ms, to_ms, subject_id)
        with _locked(path):
            journal = _load(path)
            if journal is not None and journal.finished_ms is not None:
                if not plan.changed:
                    return Outcome(journal, already=True)
                # done before and undone since (reassigned back): a new correction
                path.replace(path.with_name(f"{op}-{journal.started_ms}.json"))
                journal = None
            resumed = journal is not None
            if journal is None:
                journal = Journal(
                    op, device, from_ms, to_ms, subject_id, why, by, now_ms, [a.to_dict() for a in plan.previous]
                )
                _save(path, journal)
                _checkpoint("journal")
            j = journal
            did = run_steps(
                j, STEPS, lambda step: getattr(self, f"_{step}")(j, now_ms), lambda: _save(path, j), _checkpoint
            )
            journal.finished_ms = now_ms
            _save(path, journal)
        return Outcome(journal, resumed=resumed, did=tuple(did))

    # ------------------------------------------------------------------ the steps
    def _registry(self, j: Journal, now_ms: int) -> dict[str, Any]:
        r = self.registry.reassign(
            j.device, j.from_ms, j.to_ms, j.subject_id, at_ms=now_ms, why=j.why, by=j.by, op=j.op
        )
        return {"assignments_written": len(r.writes), "assignments_deleted": len(r.deletes)}

    def _lake(self, j: Journal, _now_ms: int) -> dict[str, Any]:
        from local.relabel import relabel_device

        stats = relabel_device(
            self.raw, j.device, j.from_ms, j.to_ms, j.subject_id, op=j.op, written=lambda: _checkpoint("lake:written")
        )
        return {"lake_objects_rewritten": stats.objects_rewritten, "lake_rows_moved": stats.rows_moved}

    def _live(self, j: Journal, _now_ms: int) -> dict[str, Any]:
        return {"live_documents_moved": self.live().reassign(j.device, j.from_ms, j.to_ms, j.subject_id)}

    def _restage(self, j: Journal, now_ms: int) -> dict[str, Any]:
        ends = self.nights(j)
        closed = sorted(n for n, end_ms in ends.items() if end_ms <= now_ms)
        staged = self.restage(closed) if closed else []
        return {"nights_touched": sorted(ends), "nights_restaged": staged}

    def nights(self, j: Journal) -> dict[str, int]:
        """The nights the window touches, in the zone of each subject it concerns, with when
        each ends (the latest end over those zones, ms UTC)."""
        out: dict[str, int] = {}
        for subject_id in sorted({*j.previous_subjects(), j.subject_id}):
            subject = self.registry.get_subject(subject_id)
            tz = subject.tz if subject is not None else self.default_tz
            for night in night_range(night_of(j.from_ms, tz), night_of(j.to_ms - 1, tz)):
                out[night] = max(out.get(night, 0), night_bounds_ms(night, tz)[1])
        return out


def _checkpoint(name: str) -> None:
    if checkpoint_hook is not None:
        checkpoint_hook(name)


def restage_nights(lake: Path, nights: list[str], run: Callable[[list[str]], None]) -> list[str]:
    """Stage ``nights`` again with ``run`` (the nightly job); the ones staged (none: the raw
    lake holds nothing yet).

    The job overwrites a night's curated partitions only where it writes rows; a night
    the correction emptied entirely (its records now belong to a night in another zone)
    would keep its old partitions, so those are removed: a partition whose files are all
    still there after the run was not rewritten.
    """
    if not any((lake / "raw").glob("dt=*/**/*.parquet")):
        return []
    curated = lake / "curated"
    tables = ("epochs", "nights", "_state/nights")
    before = {
        (t, n): {p.name for p in (curated / t / f"night={n}").iterdir()}
        for t in tables
        for n in nights
        if (curated / t / f"night={n}").is_dir()
    }
    run(nights)
    for (t, n), names in before.items():
        folder = curated / t / f"night={n}"
        if folder.is_dir() and names and names <= {p.name for p in folder.iterdir()}:
            for p in folder.iterdir():
                p.unlink()
            folder.rmdir()
    return nights
