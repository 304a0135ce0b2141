"""The access audit: who saw or changed which subject's data, in a hash chain.

Every request that returns or changes subject data appends one entry: when, who, their
role and how they signed in, the method and the route's template, which subjects, and
the outcome (the HTTP status). Nothing else: no values, no query strings, no tokens.

Entries are JSON lines in one owner-only file, appended under an exclusive file lock (the
dashboard and the CLI may both write). Each entry carries ``seq`` (1, 2, ...), ``prev``
(the previous entry's hash; 64 zeros for the first) and ``hash`` = SHA-256 of the entry's
canonical JSON without ``hash``. :meth:`AuditLog.verify` recomputes the chain: an entry
changed, removed or moved breaks it at that point, and says where. Truncating the newest
entries leaves a valid shorter chain; the ``head`` file (the last ``seq`` and hash,
rewritten at each append) catches that unless both are rewritten together, which is what
the write-once copy on AWS is for (an S3 bucket with Object Lock, ``AuditBucket`` in the
template; docs/security.md).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

__all__ = ["GENESIS", "AuditLog", "Verification"]

GENESIS: Final = "0" * 64
_FIELDS: Final = ("seq", "at_ms", "user", "role", "via", "method", "route", "subjects", "outcome", "prev")


def _digest(entry: dict[str, Any]) -> str:
    body = {k: entry[k] for k in _FIELDS}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@dataclass(frozen=True)
class Verification:
    entries: int
    ok: bool
    problems: tuple[str, ...] = ()


class AuditLog:
    """The chain at ``path`` (created owner-only at the first append), and its ``head`` beside it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.head = path.with_name(path.name + ".head")

    def append(
        self,
        *,
        at_ms: int,
        user: str,
        role: str,
        via: str,
        method: str,
        route: str,
        subjects: Iterable[str],
        outcome: int,
    ) -> dict[str, Any]:
        """Append one entry (durably: fsync) and return it."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            last = _last_line(fd)
            prev_seq, prev_hash = (0, GENESIS) if last is None else (int(last["seq"]), str(last["hash"]))
            entry: dict[str, Any] = {
                "seq": prev_seq + 1,
                "at_ms": int(at_ms),
                "user": user,
                "role": role,
                "via": via,
                "method": method,
                "route": route,
                "subjects": sorted(set(subjects)),
                "outcome": int(outcome),
                "prev": prev_hash,
            }
            entry["hash"] = _digest(entry)
            os.write(fd, (json.dumps(entry, sort_keys=True, separators=(",", ":")) + "\n").encode())
            os.fsync(fd)
            tmp = self.head.with_name(self.head.name + ".tmp")
            tmp.write_text(json.dumps({"seq": entry["seq"], "hash": entry["hash"]}))
            tmp.chmod(0o600)
            tmp.replace(self.head)
            return entry
        finally:
            os.close(fd)  # releases the lock

    def entries(self) -> Iterator[dict[str, Any]]:
        """Every entry, oldest first (a line that is not JSON is yielded as ``{"line": text}``)."""
        if not self.path.exists():
            return
        with self.path.open(encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    try:
                        yield json.loads(line)
                    except json.JSONDecodeError:
                        yield {"line": line.rstrip("\n")}

    def find(self, *, subject: str | None = None, user: str | None = None) -> list[dict[str, Any]]:
        """Entries naming ``subject`` and/or made by ``user``, oldest first."""
        return [
            e
            for e in self.entries()
            if (subject is None or subject in e.get("subjects", ())) and (user is None or e.get("user") == user)
        ]

    def ship(self, put: Callable[[str, bytes], object]) -> tuple[int, int]:
        """Copy the entries not copied yet to a write-once store: ``put(key, body)`` for one
        object ``audit/<first>-<last>.jsonl`` of them and one ``audit/head-<last>.json``.

        The last shipped ``seq`` is kept beside the log (``.shipped``), written after both
        puts; a crash between them ships the same entries again under the same keys (Object
        Lock keeps both versions). Returns (first, last) shipped, (0, 0) when nothing was new."""
        marker = self.path.with_name(self.path.name + ".shipped")
        done = int(marker.read_text()) if marker.exists() else 0
        new = [e for e in self.entries() if isinstance(e.get("seq"), int) and e["seq"] > done]
        if not new:
            return 0, 0
        first, last = new[0]["seq"], new[-1]["seq"]
        body = "".join(json.dumps(e, sort_keys=True, separators=(",", ":")) + "\n" for e in new).encode()
        put(f"audit/{first:012d}-{last:012d}.jsonl", body)
        put(f"audit/head-{last:012d}.json", json.dumps({"seq": last, "hash": new[-1]["hash"]}).encode())
        tmp = marker.with_name(marker.name + ".tmp")
        tmp.write_text(str(last))
        tmp.chmod(0o600)
        tmp.replace(marker)
        return first, last

    def verify(self) -> Verification:
        """Recompute the chain; each problem names the entry (line) where the chain breaks."""
        problems: list[str] = []
        prev, n = GENESIS, 0
        for n, e in enumerate(self.entries(), start=1):
            if "line" in e or any(k not in e for k in (*_FIELDS, "hash")):
                problems.append(f"line {n}: not an audit entry")
                prev = GENESIS
                continue
            if e["seq"] != n:
                problems.append(f"line {n}: seq {e['seq']} where {n} was expected (an entry removed or moved)")
            if e["prev"] != prev:
                problems.append(f"line {n}: does not follow the entry before it (removed, moved or changed)")
            if _digest(e) != e["hash"]:
                problems.append(f"line {n}: its content does not match its hash (changed)")
            prev = e["hash"]
        if self.head.exists():
            head = json.loads(self.head.read_text())
            if head.get("seq") != n or head.get("hash") != prev:
                problems.append(f"the head says {head.get('seq')} entries ending in another hash: entries cut off")
        elif n:
            problems.append("the head file is missing")
        return Verification(n, not problems, tuple(problems))


def _last_line(fd: int) -> dict[str, Any] | None:
    """The last entry of the open file (read backwards from its end)."""
    size = os.lseek(fd, 0, os.SEEK_END)
    if size == 0:
        return None
    chunk, pos, tail = 4096, size, b""
    while pos > 0:
        step = min(chunk, pos)
        pos -= step
        tail = os.pread(fd, step, pos) + tail
        lines = tail.rstrip(b"\n").split(b"\n")
        if len(lines) > 1 or pos == 0:
            last: dict[str, Any] = json.loads(lines[-1])
            return last
    return None
