"""The notifier's outbox as an interface: one row per message, keyed by its idempotency key.

Two stores implement it — an owner-only SQLite file on the local stack
(:class:`local.outbox.Outbox`) and a DynamoDB table on AWS
(:class:`sleepstack.notify.dynamo_outbox.DynamoOutbox`) — and the notifier
(:mod:`sleepstack.notify.engine`) sees only this. The semantics both keep, and the pieces
of them that are not storage, live here:

* :meth:`OutboxStore.add` stores a row only if its key is new (SQLite's ``INSERT OR
  IGNORE``, DynamoDB's conditional put ``attribute_not_exists(key)``): a replanned
  transition adds nothing. New rows start as :func:`new_row` says.
* Sending marks the attempt *before* it sends and the success after, so a crash between
  leaves the row queued with its attempt counted and it is resent under the same key
  (receivers drop the duplicate, ADR 6). After the last attempt a row is ``failed`` with
  its reason (the dead letter).
* :func:`summarize` turns the rows' statuses into what ``stack status`` shows.
* Every row keeps whose episode it is (``subject_id``, ``device_id``, ``event_ms``: the
  episode's start), never sent, so that erasing a subject (``sleepstack erase``) finds its
  messages: :func:`is_subjects`, and :meth:`OutboxStore.erase_subject`.

Pure: no I/O here.
"""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from core.errors import SleepstackError
from core.registry import Window, in_windows

__all__ = [
    "ERROR_CHARS",
    "LISTED_COLUMNS",
    "STATUSES",
    "OutboxError",
    "OutboxRow",
    "OutboxStore",
    "is_subjects",
    "new_row",
    "summarize",
]

#: A row's states: waiting (maybe retried), delivered, dead-lettered.
STATUSES: Final = ("queued", "sent", "failed")
#: How much of a channel's error a row keeps.
ERROR_CHARS: Final = 500
#: The columns ``sleepstack alerts outbox`` lists (never the message bodies).
LISTED_COLUMNS: Final = (
    "key",
    "alert_id",
    "transition",
    "route",
    "tier",
    "channel",
    "status",
    "attempts",
    "due_ms",
    "sent_ms",
    "error",
)


class OutboxError(SleepstackError):
    """The outbox cannot be written (e.g. a full disk, a throttled table); the step is retried."""


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """A message due to be sent (what :meth:`OutboxStore.due` yields)."""

    key: str
    alert_id: str
    transition: str
    route: str
    tier: int
    channel: str
    address: str
    attempts: int
    message: dict[str, Any]


def new_row(planned: Mapping[str, Any], now_ms: int) -> dict[str, Any]:
    """A stored row for a planned message (``key, alert_id, transition, route, tier, channel,
    address, due_ms, message``): queued, no attempt yet, first try at its due time."""
    return {
        "key": str(planned["key"]),
        "alert_id": str(planned["alert_id"]),
        "transition": str(planned["transition"]),
        "route": str(planned["route"]),
        "tier": int(planned["tier"]),
        "channel": str(planned["channel"]),
        "address": str(planned["address"]),
        "created_ms": now_ms,
        "due_ms": int(planned["due_ms"]),
        "next_ms": int(planned["due_ms"]),
        "status": "queued",
        "attempts": 0,
        "sent_ms": None,
        "error": None,
        "subject_id": str(planned.get("subject_id") or ""),
        "device_id": str(planned.get("device_id") or ""),
        "event_ms": int(planned.get("event_ms") or 0),
        "message": planned["message"],
    }


def is_subjects(row: Mapping[str, Any], subject_id: str, windows: Sequence[Window]) -> bool:
    """Whether a stored row (``subject_id``, ``device_id``, ``event_ms``, ``message``) is about
    the subject: filed under it, or from one of its devices during its assignments
    (``windows``), or naming the subject's id as a word in its message (the label may be
    that id; and rows stored before rows kept whose episode they were have only that)."""
    if row.get("subject_id") == subject_id or in_windows(windows, row.get("device_id"), row.get("event_ms")):
        return True
    text = json.dumps(row.get("message"))
    return re.search(rf"(?<![\w-]){re.escape(subject_id)}(?![\w-])", text) is not None


def summarize(rows: Iterable[tuple[str, int]], now_ms: int) -> dict[str, Any]:
    """``queued``, ``sent``, ``failed`` and ``oldest_unsent_s`` (0 when nothing waits) from
    each row's ``(status, due_ms)``; a queued row counts as unsent once it is due."""
    out: dict[str, Any] = dict.fromkeys(STATUSES, 0)
    oldest: int | None = None
    for status, due_ms in rows:
        out[status] = out.get(status, 0) + 1
        if status == "queued" and due_ms <= now_ms and (oldest is None or due_ms < oldest):
            oldest = due_ms
    out["oldest_unsent_s"] = max(0, (now_ms - oldest) // 1000) if oldest else 0
    return out


class OutboxStore(ABC):
    """What the notifier needs of its outbox (module docstring: the semantics)."""

    @abstractmethod
    def erase_subject(self, subject_id: str, windows: Sequence[Window], *, dry_run: bool = False) -> int:
        """Delete the rows about the subject (:func:`is_subjects`); how many (only counted when ``dry_run``)."""

    @abstractmethod
    def add(self, rows: list[dict[str, Any]], now_ms: int) -> int:
        """Queue planned messages; a key already present is ignored. Returns how many were new."""

    @abstractmethod
    def first_seen(self, alert_ids: list[str], now_ms: int) -> dict[str, int]:
        """When the notifier first saw each episode (``now_ms`` for those it sees now)."""

    @abstractmethod
    def get_mark(self, name: str, default: int = 0) -> int:
        """A named watermark (milliseconds)."""

    @abstractmethod
    def set_mark(self, name: str, value: int) -> None: ...

    @abstractmethod
    def due(self, now_ms: int, limit: int = 100) -> list[OutboxRow]:
        """Queued rows whose time has come, oldest first."""

    @abstractmethod
    def mark_attempt(self, key: str, next_ms: int) -> None:
        """Count an attempt before sending; should it crash, the row is retried at ``next_ms``."""

    @abstractmethod
    def mark_sent(self, key: str, now_ms: int) -> None: ...

    @abstractmethod
    def mark_error(self, key: str, error: str, *, failed: bool) -> None:
        """Record a failed attempt (its first :data:`ERROR_CHARS`); ``failed`` makes it the dead letter."""

    @abstractmethod
    def counts(self, now_ms: int) -> dict[str, Any]:
        """:func:`summarize` of the rows."""

    @abstractmethod
    def rows(self, limit: int = 1000) -> list[dict[str, Any]]:
        """The newest rows' :data:`LISTED_COLUMNS` (no message bodies), newest first."""
