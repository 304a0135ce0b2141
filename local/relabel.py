"""Refile a device's raw-lake rows under another subject (a corrected assignment).

``sleepstack reassign`` (:mod:`sleepstack.reassign`) moves the records a device sent
over ``[from_ms, to_ms)`` of *device time* (the time the registry resolves a record's
subject by) to the subject it was really worn by. Only the ``subject_id`` column changes;
a record's id (kind, device, device time) does not, so the lake still holds each record
once.

Which objects: every Parquet object under the ``dt`` partitions that can hold such a
record (its event date, UTC, from the day before ``from_ms`` to the day after ``to_ms``:
event time is device time corrected by at most seconds) whose rows name the device in
the window under another subject. Each is rewritten whole by
:func:`local.compaction.replace_objects` (new object written and renamed, then the old
one deleted) under a name derived from the old object's name and the operation, so a
rerun after a crash between the two rewrites the same object with the same rows and
deletes the old one: nothing doubled, nothing lost. A layout that partitions by subject
(``subject_id=...`` in the path, as the Firehose prefix may) gets the moved rows under
the new subject's partition.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from batch_layer.lake_schema import RAW_SCHEMA
from local.compaction import replace_objects

__all__ = ["RELABELLED_PREFIX", "RelabelStats", "relabel_device"]

RELABELLED_PREFIX = "sleepstack-raw-reassigned-"
_RESCANS = 5


@dataclass(frozen=True)
class RelabelStats:
    objects_rewritten: int
    rows_moved: int


def _dates(from_ms: int, to_ms: int) -> list[str]:
    first = datetime.fromtimestamp(from_ms / 1000, tz=UTC).date() - timedelta(days=1)
    last = datetime.fromtimestamp((to_ms - 1) / 1000, tz=UTC).date() + timedelta(days=1)
    return [(first + timedelta(days=k)).isoformat() for k in range((last - first).days + 1)]


def _moving(table: pa.Table, device: str, from_ms: int, to_ms: int, subject_id: str) -> pa.ChunkedArray:
    """Which rows are the device's in the window under another subject."""
    t = table["device_time_ms"]
    mask = pc.and_(
        pc.and_(pc.equal(table["device_id"], device), pc.greater_equal(t, from_ms)),
        pc.and_(pc.less(t, to_ms), pc.not_equal(table["subject_id"], subject_id)),
    )
    return pc.fill_null(mask, False)


def _with_subject(path: Path, subject_id: str) -> Path:
    """``path`` with a ``subject_id=...`` partition segment set to ``subject_id`` (if it has one)."""
    return Path(*(f"subject_id={subject_id}" if p.startswith("subject_id=") else p for p in path.parts))


def relabel_device(
    raw: Path,
    device: str,
    from_ms: int,
    to_ms: int,
    subject_id: str,
    *,
    op: str,
    written: Callable[[], None] | None = None,
) -> RelabelStats:
    """File the rows of ``device`` with device time in ``[from_ms, to_ms)`` under ``subject_id``.

    ``raw``: the raw table's root (``<lake>/raw``); ``op``: the operation's id (names the
    rewritten objects); ``written``: called after each new object is renamed into place,
    before the old one is deleted (a test stops the process there). Idempotent: a second
    call finds nothing to move.
    """
    objects = rows = 0
    for dt in _dates(from_ms, to_ms):
        for _ in range(_RESCANS):
            try:
                for path in sorted((raw / f"dt={dt}").rglob("*.parquet")):
                    n = _relabel_object(path, device, from_ms, to_ms, subject_id, op, written)
                    objects, rows = objects + (n > 0), rows + n
                break
            except FileNotFoundError:  # an object compacted away under us: scan the partition again
                continue
        else:
            raise OSError(f"the raw partition dt={dt} kept changing while its rows were refiled; run it again")
    return RelabelStats(objects, rows)


def _relabel_object(
    path: Path, device: str, from_ms: int, to_ms: int, subject_id: str, op: str, written: Callable[[], None] | None
) -> int:
    """Rewrite one object with the device's window under ``subject_id``; how many rows moved (0: untouched)."""
    probe = pq.read_table(path, columns=["device_id", "device_time_ms", "subject_id"])
    if not pc.any(_moving(probe, device, from_ms, to_ms, subject_id)).as_py():
        return 0
    table = pq.read_table(path, schema=RAW_SCHEMA)
    mask = _moving(table, device, from_ms, to_ms, subject_id)
    n = int(pc.sum(mask.cast(pa.int64())).as_py() or 0)
    digest = hashlib.sha1(f"{op}|{path.name}".encode(), usedforsecurity=False).hexdigest()[:16]
    name = f"{RELABELLED_PREFIX}{digest}.parquet"
    moved_dir = _with_subject(path.parent, subject_id)
    column = RAW_SCHEMA.get_field_index("subject_id")
    if moved_dir == path.parent:
        relabelled = pc.if_else(mask, pa.scalar(subject_id), table["subject_id"])
        outputs = [(table.set_column(column, RAW_SCHEMA.field(column), relabelled), path.parent / name)]
    else:
        moved = table.filter(mask)
        moved = moved.set_column(column, RAW_SCHEMA.field(column), pa.array([subject_id] * moved.num_rows))
        outputs = [(moved, moved_dir / name)]
        if n < table.num_rows:
            outputs.append((table.filter(pc.invert(mask)), path.parent / name))
    replace_objects(outputs, [path], written=written)
    return n
