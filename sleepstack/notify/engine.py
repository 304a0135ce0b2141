"""The notifier: plan outbox rows from the live store's alert episodes, then drain the outbox.

:meth:`Notifier.plan` reads the episodes the live store wrote since its watermark (minus
:data:`LOOKBACK_MS`; the watermark follows the stores' write stamps, ``indexed_ms``, not the
episodes' own times: the speed layer may write one shard's later episodes before another's
earlier ones) and every open one, derives their transitions
(:func:`core.notify.transitions`), routes them and queues one row per idempotency key;
unacknowledged open episodes get the next tier's rows once ``escalate_after_min`` has
passed since the notifier first saw them, on the injected clock. :meth:`Notifier.send`
drains due rows: attempt marked, sent, marked sent; a failure is retried after
:data:`BACKOFF_S` and dead-lettered after the last; a failing channel raises a technical
``notifier_failing`` alert and never holds up the other rows.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from access.ack_links import sign_link
from access.acks import AckStore
from core.live.alerts import INDEXED_FIELD, AlertKind, alert_id
from core.notify import Route, idempotency_key, message, transitions
from core.outbox import OutboxStore
from serving.live_queries import LiveQueries
from sleepstack.notify.channels import Channel, ChannelError
from speed_layer.store import LiveStore

__all__ = ["BACKOFF_S", "LOOKBACK_MS", "Notifier", "SubjectInfo"]

log = logging.getLogger(__name__)

#: How far behind its watermark the notifier looks again (writes made visible late: an
#: OpenSearch refresh, a bulk request in flight, writers' clocks apart).
LOOKBACK_MS: Final = 15 * 60_000
#: Pause before each retry of a message; its length is the number of tries (then the dead letter).
BACKOFF_S: Final = (1.0, 2.0, 4.0, 8.0, 16.0)
#: How long an acknowledgement link stays valid.
LINK_TTL_MS: Final = 24 * 3600_000

#: (groups, label, time zone) of a subject's device: who the alert is about, as little as possible.
SubjectInfo = Callable[[Mapping[str, Any]], tuple[Sequence[str], str, str]]


class Notifier:
    def __init__(
        self,
        routes: Sequence[Route],
        queries: LiveQueries,
        outbox: OutboxStore,
        channels: Mapping[str, Channel],
        *,
        acks: AckStore | None = None,
        subject_info: SubjectInfo | None = None,
        dashboard_base: str = "",
        link_key: bytes = b"",
        alerts_store: LiveStore | None = None,
        clock: Callable[[], float] = time.time,
        backoff_s: Sequence[float] = BACKOFF_S,
        crash_after_send: Callable[[], None] | None = None,
    ) -> None:
        self.routes, self.queries, self.outbox, self.channels = list(routes), queries, outbox, channels
        self.acks, self.dashboard_base, self.link_key = acks, dashboard_base.rstrip("/"), link_key
        self.subject_info = subject_info or (lambda d: ((), str(d.get("subject_id", "")), "UTC"))
        self.alerts_store, self.clock, self.backoff_s = alerts_store, clock, tuple(backoff_s)
        self.crash_after_send = crash_after_send  # fault injection (tests): called between send and commit
        self._failing: dict[str, int] = {}
        self.planned = self.sent = self.errors = 0

    @property
    def failing_channels(self) -> list[str]:
        """The channels whose last attempt failed (a ``notifier_failing`` alert is open for each)."""
        return sorted(self._failing)

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    # --- planning ---------------------------------------------------------------------

    def plan(self) -> int:
        """Queue the messages the episodes call for; returns how many rows were new."""
        now = self.now_ms()
        mark = self.outbox.get_mark("watermark_ms")
        docs = self.queries.alerts_changed_since(max(0, mark - LOOKBACK_MS))
        if not docs:
            return 0
        seen = self.outbox.first_seen([str(d["doc_id"]) for d in docs], now)
        open_ids = [str(d["doc_id"]) for d in docs if d.get("status") == "open"]
        acked = set(self.acks.acknowledged(open_ids)) if self.acks is not None and open_ids else set()
        rows: list[dict[str, Any]] = []
        for doc in docs:
            groups, label, tz = self.subject_info(doc)
            for route in self.routes:
                if route.matches(doc, groups):
                    rows += self._rows_for(doc, route, label, tz, seen[str(doc["doc_id"])], now, acked)
        new = self.outbox.add(rows, now) if rows else 0
        self.planned += new
        high = max(_written(d) for d in docs)
        if high > mark:
            self.outbox.set_mark("watermark_ms", high)
        return new

    def _rows_for(
        self, doc: Mapping[str, Any], route: Route, label: str, tz: str, first_seen: int, now: int, acked: set[str]
    ) -> list[dict[str, Any]]:
        out = []
        for tr in transitions(doc):
            if tr.transition == "close" and not route.notify_close:
                continue
            tiers = [0]
            if tr.transition == "open" and doc.get("status") == "open" and tr.alert_id not in acked:
                tiers += [
                    k
                    for k in range(1, len(route.tiers))
                    if now >= first_seen + route.tiers[k].escalate_after_min * 60_000
                ]
            for k in tiers:
                due = first_seen + int(route.tiers[k].escalate_after_min * 60_000) if k else first_seen
                for r in route.tiers[k].recipients:
                    key = idempotency_key(tr.alert_id, tr.transition, route.name, r, k)
                    link = ""
                    if self.dashboard_base and self.link_key:
                        token = sign_link(tr.alert_id, r.ident, now + LINK_TTL_MS, self.link_key)
                        link = f"{self.dashboard_base}/ack/{token}"
                    m = message(
                        doc, tr, label=label, tz=tz, link=link, include_values=route.include_values, tier=k, key=key
                    )
                    out.append(
                        {
                            "key": key,
                            "alert_id": tr.alert_id,
                            "transition": tr.transition,
                            "route": route.name,
                            "tier": k,
                            "channel": r.channel,
                            "address": r.address,
                            "due_ms": route.due_ms(due),
                            "subject_id": doc.get("subject_id"),  # kept for erasure, never sent
                            "device_id": doc.get("device_id"),
                            "event_ms": doc.get("start_ms"),
                            "message": {
                                "subject": m.subject,
                                "text": m.text,
                                "payload": m.payload,
                                "route": route.name,
                            },
                        }
                    )
        return out

    # --- sending ----------------------------------------------------------------------

    def send(self, limit: int = 100) -> int:
        """Send the due rows; returns how many were sent. One failing row or channel never stops the others."""
        done = 0
        failed_now: set[str] = set()  # a channel that failed in this pass waits for the next: one timeout per pass
        for row in self.outbox.due(self.now_ms(), limit):
            if row.channel in failed_now:
                continue
            tries = len(self.backoff_s) + 1
            retry_at = self.now_ms() + int(self.backoff_s[min(row.attempts, len(self.backoff_s) - 1)] * 1000)
            self.outbox.mark_attempt(row.key, retry_at)
            channel = self.channels.get(row.channel)
            try:
                if channel is None:
                    raise ChannelError(f"{row.channel}: not configured")
                channel.send(row.address, row.key, row.message)
            except ChannelError as exc:
                self.errors += 1
                failed_now.add(row.channel)
                last = row.attempts + 1 >= tries
                self.outbox.mark_error(row.key, str(exc), failed=last)
                log.warning("notifier: %s failed (attempt %d of %d)", row.channel, row.attempts + 1, tries)
                self._channel_failing(row.channel)
                continue
            if self.crash_after_send is not None:
                self.crash_after_send()
            self.outbox.mark_sent(row.key, self.now_ms())
            self.sent += 1
            done += 1
            self._channel_ok(row.channel)
        return done

    def _failing_doc(self, channel: str, start_ms: int, end_ms: int | None) -> dict[str, Any]:
        device = f"notifier-{channel}"
        return {
            "doc_id": alert_id(device, AlertKind.NOTIFIER_FAILING, start_ms),
            "subject_id": "notifier",
            "device_id": device,
            "source": "notifier",
            "kind": str(AlertKind.NOTIFIER_FAILING),
            "category": "technical",
            "status": "open" if end_ms is None else "closed",
            "start_ms": start_ms,
            "end_ms": end_ms,
            "raised_ms": start_ms,
            "duration_s": 0.0 if end_ms is None else round((end_ms - start_ms) / 1000, 3),
            "value": None,
            "threshold": None,
        }

    def _channel_failing(self, channel: str) -> None:
        if channel in self._failing:
            return
        self._failing[channel] = self.now_ms()
        if self.alerts_store is not None:
            self.alerts_store.index([("alerts", self._failing_doc(channel, self._failing[channel], None))])

    def _channel_ok(self, channel: str) -> None:
        start = self._failing.pop(channel, None)
        if start is not None and self.alerts_store is not None:
            self.alerts_store.index([("alerts", self._failing_doc(channel, start, self.now_ms()))])

    def step(self) -> dict[str, Any]:
        """Plan then send; the figures a heartbeat reports."""
        queued = self.plan()
        self.send()
        return {"planned": queued, **self.outbox.counts(self.now_ms()), "failing_channels": sorted(self._failing)}

    def run_until(self, stop: Callable[[], bool], poll_s: float, sleep: Callable[[float], None] = time.sleep) -> int:
        """Plan and send every ``poll_s`` until ``stop()`` (the AWS notifier's invocation:
        ``stop`` when too little of it is left for another pass). Returns the passes made."""
        passes = 0
        while True:
            self.plan()
            self.send()
            passes += 1
            if stop():
                return passes
            sleep(poll_s)


def _written(doc: Mapping[str, Any]) -> int:
    """When the store wrote ``doc`` (its ``indexed_ms``): the cursor over changes. A document
    written before stores stamped it counts by its latest event time, as the cursor once did."""
    written = doc.get(INDEXED_FIELD)
    if written is not None:
        return int(written)
    return max(int(doc.get(f) or 0) for f in ("start_ms", "raised_ms", "end_ms"))
