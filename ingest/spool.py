"""The collector's durable spool: SQLite in WAL mode, between the radio and Kinesis.

A notification counts as received once :meth:`Spool.append` has committed it. From there
every step is one SQLite transaction, so a ``kill -9`` at any instant loses nothing:

1. ``notifications``: raw payloads as received (device, subject, kind, receive stamp);
2. :meth:`Spool.frame` decodes them into contract records (straps 1:1, bed notifications
   re-framed on the epoch grid by :class:`core.ble.device_records.BedFramer`) and, in the same
   transaction, writes the records to ``outbox``, persists the framer's open frames in
   ``open_frames``, moves undecodable payloads to ``quarantine`` (with the reason; logged
   in hex) and deletes the notifications it consumed;
3. the sender (:mod:`ingest.sender`) reads the ``outbox`` oldest first and deletes rows
   only once Kinesis accepted them. A crash between PutRecords and the delete resends
   those records; their deterministic record ids let downstream drop the duplicates.

``synchronous=FULL`` (the default) makes each commit survive power loss as well as a
process kill; ``NORMAL`` survives a process kill only. The spool's size is bounded:
past ``warn_fraction`` of ``max_bytes`` it logs a warning (once per crossing), and when
full :meth:`append` raises :class:`SpoolFullError` and counts the rejected
notifications.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from core.ble.bed_profile import decode_bed_frame
from core.ble.device_records import BedFramer, FramerCounts, OpenFrame, strap_sample
from core.ble.device_status import decode_status, status_record
from core.ble.hrm import decode_hrm
from core.contract import SCHEMA_VERSION, Record, to_wire, validate
from core.errors import ContractError, DecodeError, SleepstackError
from core.registry import Window, in_windows

__all__ = ["KINDS", "Notification", "OutboxEntry", "Spool", "SpoolFullError"]

log = logging.getLogger(__name__)

KINDS: Final = ("strap", "bed")
_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS notifications (
  id INTEGER PRIMARY KEY AUTOINCREMENT, device_id TEXT NOT NULL, subject_id TEXT NOT NULL,
  kind TEXT NOT NULL, receive_ms INTEGER NOT NULL, payload BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
  id INTEGER PRIMARY KEY AUTOINCREMENT, partition_key TEXT NOT NULL, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS open_frames (
  device_id TEXT PRIMARY KEY, subject_id TEXT NOT NULL, start_ms INTEGER NOT NULL, fs_hz INTEGER NOT NULL,
  samples BLOB NOT NULL, next_seq INTEGER NOT NULL, next_ms REAL NOT NULL, gap_samples INTEGER NOT NULL,
  last_receive_ms INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS quarantine (
  id INTEGER PRIMARY KEY AUTOINCREMENT, device_id TEXT NOT NULL, kind TEXT NOT NULL,
  receive_ms INTEGER NOT NULL, payload BLOB NOT NULL, reason TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS devices (device_id TEXT PRIMARY KEY, last_receive_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


class SpoolFullError(SleepstackError):
    """The spool reached its size bound; the notification was not stored."""


@dataclass(frozen=True, slots=True)
class Notification:
    """One BLE notification as received: raw payload plus who sent it and when."""

    device_id: str
    subject_id: str
    kind: str  # "strap" (0x2A37), "bed" (bed-sensor frame) or "status" (the collector's device status)
    receive_ms: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    id: int
    partition_key: str
    data: bytes


@dataclass
class _FrameResult:
    records: list[tuple[str, bytes]] = field(default_factory=list)
    quarantined: list[tuple[str, str, int, bytes, str]] = field(default_factory=list)
    rr_zero: int = 0


class Spool:
    """The durable spool at ``path`` (created if missing); safe to share between threads."""

    def __init__(
        self,
        path: Path,
        *,
        max_bytes: int = 2 << 30,
        warn_fraction: float = 0.8,
        synchronous: str = "FULL",
    ) -> None:
        if synchronous not in ("FULL", "NORMAL", "EXTRA"):
            raise ValueError(f"synchronous must be FULL, NORMAL or EXTRA, not {synchronous!r}")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.max_bytes = max_bytes
        self.warn_fraction = warn_fraction
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={synchronous}")
        self._db.executescript(_SCHEMA)
        self._migrate()
        self._page_size = int(self._db.execute("PRAGMA page_size").fetchone()[0])
        self._lock = threading.RLock()
        self._warned = False

    def _migrate(self) -> None:
        """Bring a spool written by an older collector up to the current schema."""
        cols = {r[1] for r in self._db.execute("PRAGMA table_info(open_frames)")}
        if "last_receive_ms" not in cols:  # before frames were stamped with their last notification
            self._db.execute("ALTER TABLE open_frames ADD COLUMN last_receive_ms INTEGER NOT NULL DEFAULT 0")
            # best estimate for a frame already open: the device time its samples reach
            self._db.execute("UPDATE open_frames SET last_receive_ms = CAST(next_ms AS INTEGER)")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # ------------------------------------------------------------------ size bound

    def used_bytes(self) -> int:
        """Bytes the spool's live pages occupy (freed pages are reused, so not counted)."""
        pages = int(self._db.execute("PRAGMA page_count").fetchone()[0])
        free = int(self._db.execute("PRAGMA freelist_count").fetchone()[0])
        return (pages - free) * self._page_size

    def _check_room(self, incoming: int) -> None:
        used = self.used_bytes() + incoming
        if used >= self.max_bytes:
            self._bump({"rejected_spool_full": 1})
            raise SpoolFullError(
                f"spool {self.path} is full ({used} of {self.max_bytes} bytes): is the sender reaching Kinesis?"
            )
        if used >= self.warn_fraction * self.max_bytes:
            if not self._warned:
                log.warning(
                    "spool %s is %.0f%% full (%d of %d bytes); it rejects new samples at 100%%",
                    self.path,
                    100 * used / self.max_bytes,
                    used,
                    self.max_bytes,
                )
                self._warned = True
        else:
            self._warned = False

    @property
    def nearly_full(self) -> bool:
        return self._warned

    # ------------------------------------------------------------------ writes

    def append(self, notes: Sequence[Notification]) -> None:
        """Store notifications durably (one transaction); only then do they count as received."""
        if not notes:
            return
        with self._lock:
            try:
                self._check_room(sum(len(n.payload) + 64 for n in notes))
            except SpoolFullError:
                self._bump({"rejected_spool_full": len(notes) - 1})
                raise
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    "INSERT INTO notifications (device_id, subject_id, kind, receive_ms, payload) VALUES (?,?,?,?,?)",
                    [(n.device_id, n.subject_id, n.kind, n.receive_ms, n.payload) for n in notes],
                )
                last: dict[str, int] = {}
                measured = [n for n in notes if n.kind != "status"]  # statuses are the collector's, not the radio's
                for n in measured:
                    last[n.device_id] = max(n.receive_ms, last.get(n.device_id, n.receive_ms))
                self._db.executemany(
                    "INSERT INTO devices VALUES (?, ?) ON CONFLICT(device_id)"
                    " DO UPDATE SET last_receive_ms = max(last_receive_ms, excluded.last_receive_ms)",
                    list(last.items()),
                )
                self._bump({"received": len(measured), "statuses": len(notes) - len(measured)}, in_tx=True)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def last_receive_ms(self, device_id: str) -> int | None:
        """The receive time of the newest notification ever spooled from ``device_id`` (a replay resumes after it)."""
        with self._lock:
            row = self._db.execute("SELECT last_receive_ms FROM devices WHERE device_id = ?", (device_id,)).fetchone()
        return None if row is None else int(row[0])

    def meta(self, key: str, default: int | None = None) -> int | None:
        """A small integer kept with the spool (e.g. a replay's time shift), or ``default``."""
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else int(row[0])

    def set_meta(self, key: str, value: int) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def append_records(self, records: Iterable[Record], *, version: int = SCHEMA_VERSION) -> int:
        """Put already-built records straight into the outbox (e.g. a file upload), in wire ``version``."""
        rows = [(r.device_id, to_wire(validate(r), version=version)) for r in records]
        with self._lock:
            self._check_room(sum(len(d) + 32 for _, d in rows))
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("INSERT INTO outbox (partition_key, data) VALUES (?, ?)", rows)
            self._bump({"records": len(rows)}, in_tx=True)
            self._db.execute("COMMIT")
        return len(rows)

    def _bump(self, deltas: dict[str, int], *, in_tx: bool = False) -> None:
        rows = [(k, v) for k, v in deltas.items() if v]
        if not rows:
            return
        sql = "INSERT INTO counters VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = value + excluded.value"
        if in_tx:
            self._db.executemany(sql, rows)
        else:
            with self._lock:
                self._db.executemany(sql, rows)

    # ------------------------------------------------------------------ framing

    def frame(self, limit: int = 5_000, *, now_ms: int | None = None, end_of_stream: bool = False) -> int:
        """Decode up to ``limit`` spooled notifications into outbox records; returns how many.

        Once every spooled notification is framed, the open bed frames idle at ``now_ms``
        are closed (:meth:`core.ble.device_records.BedFramer.close_idle`), and with
        ``end_of_stream`` (a recording has ended) every open frame is. Never otherwise: a
        collector that stops keeps its open frames for the next run, so framing stays a
        pure function of the notifications (same stream, same frames, one content per id).
        """
        with self._lock:
            rows = self._db.execute(
                "SELECT id, device_id, subject_id, kind, receive_ms, payload FROM notifications ORDER BY id LIMIT ?",
                (limit,),
            ).fetchall()
            caught_up = len(rows) < limit
            closing = caught_up and (now_ms is not None or end_of_stream)
            if not rows and not closing:
                return 0
            framer = BedFramer(open=self._load_open_frames())
            result = _FrameResult()
            for _, device, subject, kind, receive_ms, payload in rows:
                self._frame_one(framer, result, device, subject, kind, int(receive_ms), bytes(payload))
            if closing:
                closed = (
                    [f for device in list(framer.open) for f in framer.flush(device)]
                    if end_of_stream
                    else framer.close_idle(int(now_ms or 0))
                )
                result.records.extend((f.device_id, to_wire(f)) for f in closed)
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany("INSERT INTO outbox (partition_key, data) VALUES (?, ?)", result.records)
                self._db.executemany(
                    "INSERT INTO quarantine (device_id, kind, receive_ms, payload, reason) VALUES (?,?,?,?,?)",
                    result.quarantined,
                )
                if rows:
                    self._db.execute("DELETE FROM notifications WHERE id <= ?", (rows[-1][0],))
                self._store_open_frames(framer.open)
                self._bump(_counter_deltas(framer.counts, result, len(rows)), in_tx=True)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            return len(rows)

    def frame_all(self, *, now_ms: int | None = None, end_of_stream: bool = False, batch: int = 5_000) -> int:
        """Frame every spooled notification, then close idle frames (or all, at ``end_of_stream``)."""
        total = 0
        while True:
            n = self.frame(batch, now_ms=now_ms, end_of_stream=end_of_stream)
            total += n
            if n < batch:
                return total

    def _frame_one(
        self, framer: BedFramer, result: _FrameResult, device: str, subject: str, kind: str, t_ms: int, payload: bytes
    ) -> None:
        try:
            if kind == "strap":
                sample, dropped = strap_sample(
                    decode_hrm(payload), device_id=device, subject_id=subject, receive_ms=t_ms
                )
                if dropped:
                    result.rr_zero += dropped
                    log.warning("strap notification: dropped %d RR interval(s) of 0", dropped)
                result.records.append((device, to_wire(validate(sample))))
            elif kind == "bed":
                for f in framer.feed(device, subject, decode_bed_frame(payload), t_ms):
                    result.records.append((device, to_wire(validate(f))))
            elif kind == "status":
                status = status_record(decode_status(payload), device_id=device, subject_id=subject, receive_ms=t_ms)
                result.records.append((device, to_wire(validate(status))))
            else:
                raise DecodeError(kind, "unknown notification kind", payload)
        except (DecodeError, ContractError) as exc:
            reason = f"{exc.what}: {exc.reason}" if isinstance(exc, DecodeError) else str(exc)
            # device and payload go to the quarantine table only (health data: not into logs)
            log.warning(
                "quarantined a %s notification: %s", kind, exc.what if isinstance(exc, DecodeError) else exc.field
            )
            result.quarantined.append((device, kind, t_ms, payload, reason))

    def _load_open_frames(self) -> dict[str, OpenFrame]:
        names = [f.name for f in dataclasses.fields(OpenFrame)]  # the columns after device_id
        frames = {}
        for device, *values in self._db.execute("SELECT * FROM open_frames").fetchall():
            frame = OpenFrame(**dict(zip(names, values, strict=True)))
            frame.samples = bytearray(frame.samples)
            frames[device] = frame
        return frames

    def _store_open_frames(self, frames: dict[str, OpenFrame]) -> None:
        self._db.execute("DELETE FROM open_frames")
        self._db.executemany(
            "INSERT INTO open_frames VALUES (?,?,?,?,?,?,?,?,?)",
            [(d, *dataclasses.astuple(f)) for d, f in frames.items()],  # columns in field order
        )

    # ------------------------------------------------------------------ outbox

    def pending(self, max_records: int = 500, max_bytes: int = 5 * 1024 * 1024) -> list[OutboxEntry]:
        """The oldest outbox records that fit one PutRecords call."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, partition_key, data FROM outbox ORDER BY id LIMIT ?", (max_records,)
            ).fetchall()
        out: list[OutboxEntry] = []
        size = 0
        for i, key, data in rows:
            n = len(data) + len(key.encode())
            if out and size + n > max_bytes:
                break
            out.append(OutboxEntry(int(i), key, bytes(data)))
            size += n
        return out

    def ack(self, ids: Sequence[int]) -> None:
        """Delete records Kinesis accepted."""
        if not ids:
            return
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(
                "DELETE FROM outbox WHERE id IN (SELECT value FROM json_each(?))", (json.dumps(list(ids)),)
            )
            self._bump({"sent": len(ids)}, in_tx=True)
            self._db.execute("COMMIT")

    # ------------------------------------------------------------------ erasure

    def erase(self, subject_id: str, windows: Sequence[Window], *, dry_run: bool = False) -> dict[str, int]:
        """Delete what the spool holds of ``subject_id`` (``sleepstack erase``): notifications and
        open frames under it or from a window's device in the window (receive time, open
        frame's start), outbox records under it or of a window's device in the window (device
        time), quarantined payloads of a window's device in the window. One transaction; a
        rerun deletes nothing. How many per table (``dry_run``: would be; nothing deleted)."""

        def hit(subject: object, device: str, t_ms: int) -> bool:
            return subject == subject_id or in_windows(windows, device, t_ms)

        with self._lock:
            gone: dict[str, list[tuple[object]]] = {
                "notifications": [
                    (i,)
                    for i, s, d, t in self._db.execute(
                        "SELECT id, subject_id, device_id, receive_ms FROM notifications"
                    )
                    if hit(s, d, t)
                ],
                "open_frames": [
                    (d,)
                    for d, s, t in self._db.execute("SELECT device_id, subject_id, start_ms FROM open_frames")
                    if hit(s, d, t)
                ],
                "outbox": [
                    (i,)
                    for i, key, data in self._db.execute("SELECT id, partition_key, data FROM outbox")
                    if _outbox_names(bytes(data), key, subject_id, windows)
                ],
                "quarantine": [
                    (i,)
                    for i, d, t in self._db.execute("SELECT id, device_id, receive_ms FROM quarantine")
                    if in_windows(windows, d, t)
                ],
            }
            if dry_run:
                return {f"spool_{table}": len(keys) for table, keys in gone.items()}
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for table, keys in gone.items():
                    column = "device_id" if table == "open_frames" else "id"
                    self._db.executemany(f"DELETE FROM {table} WHERE {column} = ?", keys)  # noqa: S608 - names from code
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return {f"spool_{table}": len(keys) for table, keys in gone.items()}

    # ------------------------------------------------------------------ status

    def backlog(self) -> dict[str, int]:
        with self._lock:
            notes = int(self._db.execute("SELECT count(*) FROM notifications").fetchone()[0])
            outbox = int(self._db.execute("SELECT count(*) FROM outbox").fetchone()[0])
            open_frames = int(self._db.execute("SELECT count(*) FROM open_frames").fetchone()[0])
        return {"notifications": notes, "outbox": outbox, "open_frames": open_frames}

    def counters(self) -> dict[str, int]:
        with self._lock:
            return {k: int(v) for k, v in self._db.execute("SELECT name, value FROM counters ORDER BY name")}

    def quarantined(self) -> list[dict[str, object]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT device_id, kind, receive_ms, payload, reason FROM quarantine ORDER BY id"
            ).fetchall()
        return [
            {"device_id": d, "kind": k, "receive_ms": t, "payload_hex": bytes(p).hex(), "reason": r}
            for d, k, t, p, r in rows
        ]


def _outbox_names(data: bytes, partition_key: str, subject_id: str, windows: Sequence[Window]) -> bool:
    """Whether an outbox record is ``subject_id``'s or its device's in a window (an undecodable
    one: whether its partition key, the device, has a window at all)."""
    from core.contract import from_wire

    try:
        rec = from_wire(data)
    except ContractError:
        return any(d == partition_key for d, _, _ in windows) or subject_id.encode() in data
    return rec.subject_id == subject_id or in_windows(windows, rec.device_id, rec.device_time_ms)


def _counter_deltas(c: FramerCounts, r: _FrameResult, consumed: int) -> dict[str, int]:
    return {
        "framed_notifications": consumed,
        "records": len(r.records),
        "quarantined": len(r.quarantined),
        "rr_zero_dropped": r.rr_zero,
        "bed_frames": c.frames,
        "bed_gaps": c.gaps,
        "bed_gap_samples": c.gap_samples,
        "bed_duplicates": c.duplicates,
        "bed_discontinuities": c.discontinuities,
        "bed_idle_closes": c.idle_closes,
    }
