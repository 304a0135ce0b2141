"""Erase a subject from every store (``sleepstack erase``), and prove it.

The operation (:class:`Eraser`: the plan, the journal, the steps, the proof, the tombstone)
runs over a target's stores: :class:`LocalStores` (a local stack's home, the steps below) or
:class:`sleepstack.erase_aws.AwsStores` (DynamoDB, OpenSearch, S3: registry, live, state,
lake, dead_letters).

What is the subject's: everything filed under its id, and every record its devices sent
during its assignments (its *windows*: device, ``[from, to)`` of device time), whoever it
was filed under. Erasure is a journaled operation like a correction of an assignment
(:mod:`sleepstack.reassign`), in steps, each idempotent:

1. ``registry``: its assignments, its record and its id in the history (replaced by its
   erasure key, :func:`registry.store.erasure_key`) go first, so collection for it stops;
2. ``ledger``: the speed layer's ledger forgets its records' ids;
3. ``live``: the live store's documents of every kind (:meth:`speed_layer.store.LiveStore.erase_subject`);
4. ``state``: the speed layer's state of its devices, where the state names it;
5. ``spool``: the collector's notifications, outbox, open frames and quarantine (:meth:`ingest.spool.Spool.erase`);
6. ``lake``: every Parquet object under the lake holding its rows, rewritten (:func:`local.erasure.erase_lake`);
7. ``dead_letters``: the speed layer's and the delivery's dead letters;
8. ``notifier_outbox``: the notifier's messages about its alert episodes
   (:meth:`core.outbox.OutboxStore.erase_subject`);
9. ``exports``: the files of its exports still present, and their index lines;
10. ``verify``: :func:`local.erasure.scan` reads every store again; anything found (e.g. a
   record that landed meanwhile) fails the run and the data steps are done again next run;
11. ``tombstone``: the registry's history gets ``erased`` (when, by whom, why, the key; no
    identifier of the data) and the access audit an entry naming the key.

The journal (``<home>/erase/<key>.json``, owner-only, named by the erasure key) holds the
windows read before anything changed and the steps done; killed anywhere, the same command
resumes at the first step not done, and once finished the journal keeps only counts, times
and the key, and a rerun says ``already done``. The journal's lock keeps a second run out.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from core.errors import InputError, SleepstackError
from core.registry import Window, subject_windows
from local.erasure import Scan
from local.home import Home
from registry.store import RegistryStore, erasure_key, redact
from sleepstack.journal import load_journal, locked, run_steps, save_journal
from speed_layer.store import OpenSearchLiveStore

__all__ = ["STEPS", "EraseBusy", "EraseIncomplete", "Eraser", "Journal", "LocalStores", "Outcome", "Plan", "Stores"]

#: the steps that remove data from a local stack: done again when the verification still finds some
DATA_STEPS: Final = ("ledger", "live", "state", "spool", "lake", "dead_letters", "notifier_outbox", "exports")
#: a local stack's erasure, in order
STEPS: Final = ("registry", *DATA_STEPS, "verify", "tombstone")
JOURNAL_VERSION: Final = 1

#: Called with the name of each point the operation passes ("journal", each step, "lake:written"):
#: the crash tests stop the process there. None in production.
checkpoint_hook: Callable[[str], None] | None = None


class EraseBusy(SleepstackError):
    """The same erasure is being run by another process."""


class EraseIncomplete(SleepstackError):
    """The verification still found the subject's data; run it again."""


@dataclass
class Journal:
    key: str
    #: the subject's id, its windows and its devices: kept until the erasure is finished, then cleared
    subject_id: str
    windows: list[list[Any]]
    devices: list[str]
    why: str
    by: str
    started_ms: int
    #: what the stores held of the subject before anything changed, per place
    before: dict[str, int]
    done: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    finished_ms: int | None = None
    version: int = JOURNAL_VERSION

    def window_tuples(self) -> list[Window]:
        return [(str(d), int(a), int(b)) for d, a, b in self.windows]


@dataclass(frozen=True)
class Plan:
    """What erasing a subject would remove, read before anything changes (nothing is created)."""

    subject_id: str
    registered: bool
    windows: list[Window]
    hits: dict[str, int]
    devices: list[str]

    @property
    def found(self) -> bool:
        return self.registered or any(self.hits.values())


@dataclass(frozen=True)
class Outcome:
    journal: Journal
    resumed: bool = False
    already: bool = False
    did: tuple[str, ...] = ()


def _checkpoint(name: str) -> None:
    if checkpoint_hook is not None:
        checkpoint_hook(name)


class Stores(Protocol):
    """The stores of one target that erasure reads and empties."""

    #: the steps that remove data, in order (done again when the verification still finds some)
    data_steps: tuple[str, ...]

    def registry(self) -> RegistryStore | None:
        """The registry (None when there is none)."""

    def scan(self, subject_id: str, windows: Sequence[Window]) -> Scan:
        """Every store read for the subject (read-only; creates nothing)."""

    def erase(self, step: str, journal: Journal) -> dict[str, Any]:
        """Do one of :attr:`data_steps` (idempotent); its figures."""


@dataclass
class Eraser:
    """One subject's erasure over a target's ``stores``, journaled under ``home`` (wired by the CLI).

    ``audit(key, by, at_ms)``: append the erasure to the access audit."""

    home: Home
    stores: Stores
    audit: Callable[[str, str, int], None] | None = None

    @property
    def steps(self) -> tuple[str, ...]:
        return ("registry", *self.stores.data_steps, "verify", "tombstone")

    def journal_path(self, subject_id: str) -> Any:
        return self.home.erase_journal(erasure_key(subject_id))

    def finished(self, subject_id: str) -> Journal | None:
        """The finished erasure of ``subject_id``, if any (reads only)."""
        body = load_journal(self.journal_path(subject_id))
        j = None if body is None else Journal(**body)
        return j if j is not None and j.finished_ms is not None else None

    def plan(self, subject_id: str) -> Plan:
        """What the stores hold of the subject (read-only)."""
        reg = self.stores.registry()
        registered, windows = False, []
        if reg is not None:
            registered = reg.get_subject(subject_id) is not None
            windows = subject_windows(reg.assignments(), subject_id)
        found = self.stores.scan(subject_id, windows)
        devices = sorted(found.devices | {d for d, _, _ in windows})
        return Plan(subject_id, registered, windows, found.hits, devices)

    def run(self, subject_id: str, *, why: str, by: str, now_ms: int) -> Outcome:
        key = erasure_key(subject_id)
        path = self.journal_path(subject_id)
        with locked(path, EraseBusy("this erasure is being run by another process; wait for it")):
            body = load_journal(path)
            journal = None if body is None else Journal(**body)
            if journal is not None and journal.finished_ms is not None:
                return Outcome(journal, already=True)
            resumed = journal is not None
            if journal is None:
                plan = self.plan(subject_id)
                if not plan.found:
                    raise InputError("--subject", f"{subject_id!r} is not registered and no store holds data of it")
                journal = Journal(
                    key,
                    subject_id,
                    [list(w) for w in plan.windows],
                    plan.devices,
                    why,
                    by,
                    now_ms,
                    {k: v for k, v in plan.hits.items() if v},
                )
                self._save(journal)
                _checkpoint("journal")
            j = journal
            did = run_steps(j, self.steps, lambda step: self._step(step, j, now_ms), lambda: self._save(j), _checkpoint)
            journal.finished_ms = now_ms
            journal.why = redact(journal.why, subject_id, key)
            journal.subject_id, journal.windows, journal.devices = "", [], []  # no identifiers once done
            self._save(journal)
        return Outcome(journal, resumed=resumed, did=tuple(did))

    def _save(self, journal: Journal) -> None:
        save_journal(self.home.erase_journal(journal.key), dataclasses.asdict(journal))

    def _step(self, step: str, j: Journal, now_ms: int) -> dict[str, Any]:
        if step == "registry":
            reg = self.stores.registry()
            return reg.erase_subject(j.subject_id) if reg is not None else {}
        if step == "verify":
            return self._verify(j)
        if step == "tombstone":
            return self._tombstone(j, now_ms)
        return self.stores.erase(step, j)

    def _verify(self, j: Journal) -> dict[str, Any]:
        found = self.stores.scan(j.subject_id, j.window_tuples())
        if not found.clean:
            j.done = [s for s in j.done if s not in self.stores.data_steps]
            self._save(j)
            left = ", ".join(f"{k} {v}" for k, v in found.hits.items() if v)
            raise EraseIncomplete(f"the subject's data is still in: {left} (landed while erasing?); run it again")
        return {"scan": found.hits, "kept": found.kept}

    def _tombstone(self, j: Journal, now_ms: int) -> dict[str, Any]:
        reg = self.stores.registry()
        if reg is not None:
            reg.log_erasure(j.subject_id, at_ms=now_ms, by=j.by, why=j.why, op=j.key)
        if self.audit is not None and "audited" not in j.figures:
            self.audit(j.key, j.by, now_ms)
        return {"audited": self.audit is not None}


@dataclass
class LocalStores:
    """A local stack's stores: the files of its home. ``registry()``: the home's registry;
    ``opensearch``: the live store when the stack runs on an OpenSearch node
    (``stack up --live-store opensearch``), erased and scanned besides the embedded file."""

    home: Home
    registry: Callable[[], RegistryStore | None]
    opensearch: OpenSearchLiveStore | None = None
    data_steps: tuple[str, ...] = DATA_STEPS

    def scan(self, subject_id: str, windows: Sequence[Window]) -> Scan:
        from local.erasure import scan

        found = scan(self.home, subject_id, windows)
        if self.opensearch is not None:
            found.hits["live_store_opensearch"] = self.opensearch.count_subject(subject_id, windows)
        return found

    def erase(self, step: str, journal: Journal) -> dict[str, Any]:
        result: dict[str, Any] = getattr(self, f"_{step}")(journal)
        return result

    # ------------------------------------------------------------------ the steps
    def _ledger(self, j: Journal) -> dict[str, Any]:
        from local.erasure import lake_record_ids
        from local.ledger import Ledger

        if not self.home.ledger_db.exists():
            return {}
        ledger = Ledger(self.home.ledger_db)
        try:
            return {"ledger_ids": ledger.discard(lake_record_ids(self.home.lake, j.subject_id, j.window_tuples()))}
        finally:
            ledger.close()

    def _live(self, j: Journal) -> dict[str, Any]:
        from local.live_store import LocalLiveStore

        out = {}
        if self.opensearch is not None:
            out["live_documents_opensearch"] = self.opensearch.erase_subject(j.subject_id, j.window_tuples())
        if self.home.live_db.exists():
            store = LocalLiveStore(self.home.live_db)
            try:
                out["live_documents"] = store.erase_subject(j.subject_id, j.window_tuples())
            finally:
                store.close()
        return out

    def _state(self, j: Journal) -> dict[str, Any]:
        from local.erasure import state_hits
        from local.state_store import LocalStateStore

        if not self.home.state_db.exists():
            return {}
        store = LocalStateStore(self.home.state_db)
        try:
            return {"device_states": store.delete_many(state_hits(store.get_many(j.devices), j.subject_id))}
        finally:
            store.close()

    def _spool(self, j: Journal) -> dict[str, Any]:
        from ingest.spool import Spool

        if not self.home.spool.exists():
            return {}
        spool = Spool(self.home.spool)
        try:
            return spool.erase(j.subject_id, j.window_tuples())
        finally:
            spool.close()

    def _lake(self, j: Journal) -> dict[str, Any]:
        from local.erasure import erase_lake

        stats = erase_lake(
            self.home.lake, j.subject_id, j.window_tuples(), op=j.key, written=lambda: _checkpoint("lake:written")
        )
        return {
            "lake_rows": stats.rows_removed,
            "lake_objects_rewritten": stats.objects_rewritten,
            "lake_objects_deleted": stats.objects_deleted,
        }

    def _dead_letters(self, j: Journal) -> dict[str, Any]:
        from local.erasure import erase_dead_letters

        return {"dead_letters": erase_dead_letters(self.home, j.subject_id, j.window_tuples())}

    def _notifier_outbox(self, j: Journal) -> dict[str, Any]:
        from local.outbox import Outbox

        if not self.home.outbox_db.exists():
            return {}
        outbox = Outbox(self.home.outbox_db)
        try:
            return {"notifier_messages": outbox.erase_subject(j.subject_id, j.window_tuples())}
        finally:
            outbox.close()

    def _exports(self, j: Journal) -> dict[str, Any]:
        from local.erasure import erase_exports

        return erase_exports(self.home, j.subject_id)
