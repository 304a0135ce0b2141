"""A subject's erasure in a local stack's files (``sleepstack erase``, :mod:`sleepstack.erase`).

What is the subject's: every row, document or letter under its id, and every record of a
device during one of its assignments (its *windows*, device time), whoever it was filed
under. Here, for the stores that are files of the home:

* the lake's Parquet (raw and curated tables, every object under ``lake/``): each object
  holding such rows is rewritten without them by :func:`local.compaction.replace_objects`
  (new object written and renamed, then the old one deleted; an object left with no rows is
  deleted), the new name derived from the old one and the operation, so a rerun after a
  crash between the two rewrites the same object and deletes the old one;
* dead letters (JSON files under ``dead-letters/`` and the lake's ``errors/``): a letter
  naming the subject anywhere (its payload decoded from base64 too), a payload that parses
  as a record or document of a window's device in the window, and an undecodable payload
  whose partition key is a window's device and that was written (its file's time) in the
  window are deleted whole;
* the export index (``exports.jsonl``): the files of the subject's exports still there are
  deleted, their lines removed;
* the speed layer's ledger: the record ids of the subject's records.

:func:`scan` is the proof: it reads every store of the home (read-only; nothing is created)
and counts what still names the subject or holds its devices' records in its windows.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from core.live.state_codec import decode_state
from core.registry import Window, in_windows
from local.compaction import replace_objects
from local.home import Home
from registry.store import RegistryStore, redact
from speed_layer.processing import TIME_FIELD

__all__ = [
    "ERASED_PREFIX",
    "Scan",
    "erase_dead_letters",
    "erase_exports",
    "erase_lake",
    "lake_record_ids",
    "letter_is_subjects",
    "record_export",
    "registry_hits",
    "scan",
    "state_hits",
    "subject_mask",
    "token",
]

ERASED_PREFIX: Final = "sleepstack-erased-"
#: Fields that place a record or a document in device time (a dead letter's payload).
_TIME_FIELDS: Final = ("device_time_ms", *sorted(set(TIME_FIELD.values())))


def token(subject_id: str) -> re.Pattern[str]:
    """``subject_id`` as a whole word (``s001`` is not in ``s0011``)."""
    return re.compile(rf"(?<![\w.-]){re.escape(subject_id)}(?![\w.-])")


# ---------------------------------------------------------------------------- the lake
def _parquet(lake: Path) -> list[Path]:
    return sorted(p for p in lake.rglob("*.parquet") if p.is_file())


def subject_mask(table: pa.Table, subject_id: str, windows: Sequence[Window]) -> pa.ChunkedArray | None:
    """Which rows of ``table`` are the subject's (None: the table cannot hold any)."""
    names = set(table.column_names)
    mask = None
    if "subject_id" in names:
        mask = pc.fill_null(pc.equal(table["subject_id"], subject_id), False)
    if {"device_id", "device_time_ms"} <= names:
        for device, start, end in windows:
            t = table["device_time_ms"]
            w = pc.and_(pc.equal(table["device_id"], device), pc.and_(pc.greater_equal(t, start), pc.less(t, end)))
            w = pc.fill_null(w, False)
            mask = w if mask is None else pc.or_(mask, w)
    return mask


def _in_subject_partition(path: Path, subject_id: str) -> bool:
    return f"subject_id={subject_id}" in path.parts


def _matching(path: Path, subject_id: str, windows: Sequence[Window]) -> tuple[pa.Table, pa.ChunkedArray] | None:
    """The object's table and the mask of its subject's rows, or None when it has none."""
    table = pq.ParquetFile(path).read()
    if _in_subject_partition(path, subject_id):
        return table, pa.chunked_array([pa.array([True] * table.num_rows, pa.bool_())])
    mask = subject_mask(table, subject_id, windows)
    if mask is None or not pc.any(mask).as_py():
        return None
    return table, mask


@dataclass
class LakeErasure:
    objects_rewritten: int = 0
    objects_deleted: int = 0
    rows_removed: int = 0


def erase_lake(
    lake: Path, subject_id: str, windows: Sequence[Window], *, op: str, written: Callable[[], None] | None = None
) -> LakeErasure:
    """Rewrite every Parquet object under ``lake`` without the subject's rows (module docstring).
    ``written``: called after a new object is renamed into place, before the old one is deleted."""
    stats = LakeErasure()
    for path in _parquet(lake):
        found = _matching(path, subject_id, windows)
        if found is None:
            continue
        table, mask = found
        kept = table.filter(pc.invert(mask))
        digest = hashlib.sha1(f"{op}|{path.name}".encode(), usedforsecurity=False).hexdigest()[:16]
        outputs = [(kept, path.parent / f"{ERASED_PREFIX}{digest}.parquet")] if kept.num_rows else []
        replace_objects(outputs, [path], written=written)
        path.with_name(f".{path.name}.crc").unlink(missing_ok=True)  # Spark's checksum of the old object
        stats.rows_removed += table.num_rows - kept.num_rows
        stats.objects_rewritten += bool(outputs)
        stats.objects_deleted += not outputs
    return stats


def lake_record_ids(lake: Path, subject_id: str, windows: Sequence[Window]) -> set[str]:
    """The record ids of the subject's raw rows (what the speed layer's ledger holds of them)."""
    ids: set[str] = set()
    for path in _parquet(lake / "raw"):
        found = _matching(path, subject_id, windows)
        if found is not None and "record_id" in found[0].column_names:
            ids.update(found[0].filter(found[1])["record_id"].to_pylist())
    return ids


# ---------------------------------------------------------------------------- dead letters
def _letter_files(home: Home) -> list[Path]:
    return sorted(p for root in (home.dead_letters, home.lake / "errors") for p in root.rglob("*.json") if p.is_file())


def _names(value: Any, subject_id: str) -> bool:
    if isinstance(value, dict):
        return any(_names(k, subject_id) or _names(v, subject_id) for k, v in value.items())
    if isinstance(value, list):
        return any(_names(v, subject_id) for v in value)
    return isinstance(value, str) and token(subject_id).search(value) is not None


def letter_is_subjects(raw: bytes, written_ms: int, subject_id: str, windows: Sequence[Window]) -> bool:
    """Whether the dead letter ``raw`` (one JSON letter) is the subject's: it names the subject
    anywhere (its payload decoded from base64 too: ``payload_b64`` of the speed layer's and the
    delivery's letters, ``rawData`` of Firehose's error records), its payload parses as a record
    or document of a window's device in the window, or its payload cannot be decoded and its
    partition key is a window's device and it was written (``written_ms``: its file's or S3
    object's time, within seconds of the arrival) in the window."""
    if subject_id.encode() in raw and token(subject_id).search(raw.decode("utf-8", "replace")):
        return True
    try:
        letter = json.loads(raw)
    except ValueError:
        return False
    encoded = letter.get("payload_b64", letter.get("rawData")) if isinstance(letter, dict) else None
    if not isinstance(encoded, str):
        return False
    try:
        payload = base64.b64decode(encoded)
    except ValueError:
        payload = b""
    if token(subject_id).search(payload.decode("utf-8", "replace")):
        return True
    try:
        body = json.loads(payload)
    except ValueError:
        body = None
    if isinstance(body, dict) and "device_id" in body:
        return any(in_windows(windows, body["device_id"], body.get(f)) for f in _TIME_FIELDS)
    # undecodable: attributed to its device (the partition key) at the time it was written
    device = (letter.get("source") or {}).get("partitionKey")
    return in_windows(windows, device, written_ms)


def _letter_is_subjects(path: Path, subject_id: str, windows: Sequence[Window]) -> bool:
    return letter_is_subjects(path.read_bytes(), int(path.stat().st_mtime * 1000), subject_id, windows)


def erase_dead_letters(home: Home, subject_id: str, windows: Sequence[Window]) -> int:
    """Delete the subject's dead letters (module docstring); how many."""
    gone = [p for p in _letter_files(home) if _letter_is_subjects(p, subject_id, windows)]
    for p in gone:
        p.unlink(missing_ok=True)
    return len(gone)


# ---------------------------------------------------------------------------- exports
def record_export(home: Home, subject_id: str, fmt: str, out: Path, at_ms: int) -> None:
    """Add an export to the home's index (so that erasing its subject can delete it): its
    subject, format, when, and every file it wrote."""
    files = sorted(str(p) for p in out.rglob("*") if p.is_file()) if out.is_dir() else [str(out)]
    line = json.dumps({"at_ms": at_ms, "subject_id": subject_id, "format": fmt, "out": str(out), "files": files})
    path = home.exports_index
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a") as f:
        f.write(line + "\n")


def _exports(home: Home) -> list[dict[str, Any]]:
    path = home.exports_index
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def erase_exports(home: Home, subject_id: str) -> dict[str, int]:
    """Delete the files of the subject's exports still present (and their folders once empty;
    a file someone added keeps its folder) and remove them from the index."""
    entries = _exports(home)
    mine = [e for e in entries if e.get("subject_id") == subject_id]
    files = 0
    for e in mine:
        for f in e.get("files", []):
            p = Path(f)
            if p.is_file():
                p.unlink()
                files += 1
        out = Path(e["out"])
        if out.is_dir():
            for d in sorted((p for p in (out, *out.rglob("*")) if p.is_dir()), key=lambda p: -len(p.parts)):
                if not any(d.iterdir()):
                    d.rmdir()
    if mine:
        path = home.exports_index
        tmp = path.with_name(f".{path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.writelines(json.dumps(e) + "\n" for e in entries if e.get("subject_id") != subject_id)
        os.replace(tmp, path)
    return {"exports": len(mine), "export_files": files}


# ---------------------------------------------------------------------------- the proof
@dataclass
class Scan:
    """What the stores still hold of a subject: hits per place (all 0: erased), the devices its
    data was seen from, and what is kept on purpose (the access audit's entries)."""

    hits: dict[str, int] = field(default_factory=dict)
    devices: set[str] = field(default_factory=set)
    kept: dict[str, int] = field(default_factory=dict)

    @property
    def clean(self) -> bool:
        return not any(self.hits.values())

    @property
    def total(self) -> int:
        return sum(self.hits.values())


def _read_only(path: Path) -> Iterator[sqlite3.Connection]:
    """A read-only connection to ``path`` if it exists (nothing is created)."""
    if path.exists():
        db = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
        try:
            yield db
        finally:
            db.close()


def scan(home: Home, subject_id: str, windows: Sequence[Window]) -> Scan:
    """Every store of the home, read for the subject (module docstring); creates nothing."""
    from ingest.spool import Spool
    from local.registry import LocalRegistry

    out = Scan()
    _scan_live(home, subject_id, windows, out)
    _scan_lake(home, subject_id, windows, out)
    if home.spool.exists():
        spool = Spool(home.spool)
        try:
            out.hits.update(spool.erase(subject_id, windows, dry_run=True))
        finally:
            spool.close()
    out.hits["dead_letters"] = sum(_letter_is_subjects(p, subject_id, windows) for p in _letter_files(home))
    if home.registry_db.exists():
        reg = LocalRegistry(home.registry_db)
        try:
            out.hits.update(registry_hits(reg, subject_id))
        finally:
            reg.close()
    quoted = json.dumps(subject_id)
    for db in _read_only(home.state_db):
        rows = db.execute("SELECT device_id, state FROM device_state")
        out.hits["device_state"] = sum(quoted in json.dumps(decode_state(d, s)) for d, s in rows)
    out.hits["notifier_outbox"] = _scan_outbox(home, subject_id, windows)
    mine = [e for e in _exports(home) if e.get("subject_id") == subject_id]
    out.hits["export_index"] = len(mine)
    out.hits["export_files"] = sum(Path(f).is_file() for e in mine for f in e.get("files", []))
    if home.audit_log.exists():
        lines = [json.loads(line) for line in home.audit_log.read_text().splitlines() if line.strip()]
        out.kept["access_audit_entries"] = sum(subject_id in e.get("subjects", []) for e in lines)
    return out


def _scan_outbox(home: Home, subject_id: str, windows: Sequence[Window]) -> int:
    """The notifier's outbox rows about the subject (read-only: an outbox made before rows
    kept whose episode they were is read as it is, not migrated)."""
    from core.outbox import is_subjects

    n = 0
    for db in _read_only(home.outbox_db):
        cur = db.execute("SELECT * FROM outbox")
        names = [c[0] for c in cur.description]
        for values in cur:
            row = dict(zip(names, values, strict=True))
            row["message"] = json.loads(row["message"])
            n += is_subjects(row, subject_id, windows)
    return n


def registry_hits(reg: RegistryStore, subject_id: str) -> dict[str, int]:
    """What a registry (either adapter) still holds of the subject: its record, its
    assignments, the history entries naming it (the id as a word)."""
    return {
        "registry_subject": int(reg.get_subject(subject_id) is not None),
        "registry_assignments": sum(a.subject_id == subject_id for a in reg.assignments()),
        "registry_history": sum(
            redact([h["why"], h["detail"]], subject_id, "") != [h["why"], h["detail"]] for h in reg.history()
        ),
    }


def state_hits(states: Mapping[str, dict[str, Any]], subject_id: str) -> list[str]:
    """The devices whose speed-layer state names the subject."""
    quoted = json.dumps(subject_id)
    return [d for d, s in states.items() if quoted in json.dumps(s)]


def _scan_live(home: Home, subject_id: str, windows: Sequence[Window], out: Scan) -> None:
    quoted = json.dumps(subject_id)
    for db in _read_only(home.live_db):
        n = 0
        for t_ms, body in db.execute("SELECT t_ms, body FROM docs"):
            if quoted in body or (t_ms is not None and any(start <= t_ms < end for _, start, end in windows)):
                doc = json.loads(body)
                mine = _names(doc, subject_id) or in_windows(windows, doc.get("device_id"), t_ms)
                n += mine
                if mine and doc.get("subject_id") == subject_id and doc.get("device_id"):
                    out.devices.add(str(doc["device_id"]))
        out.hits["live_store"] = n


def _scan_lake(home: Home, subject_id: str, windows: Sequence[Window], out: Scan) -> None:
    rows = 0
    for path in _parquet(home.lake):
        found = _matching(path, subject_id, windows)
        if found is not None:
            rows += int(pc.sum(found[1].cast(pa.int64())).as_py() or 0)
            if "device_id" in found[0].column_names:
                out.devices.update(d for d in found[0].filter(found[1])["device_id"].to_pylist() if d)
        elif token(subject_id).search(str(path.relative_to(home.lake))):
            rows += 1  # a file named after the subject
    out.hits["lake_rows"] = rows
