"""The one loop every polling service runs: step, report, back off while idle, and retry a failing step.

Polling an empty stream every 0.2 s kept the idle stack at about 12 % of a core. As
Lambda's event-source mapping polls an idle shard about once a second, a service now
polls every :data:`POLL_S` while work flows and for :data:`BUSY_GRACE_S` (12 s: a home
sender's linger and 2 s) after the last work, then doubles its pause up to
``idle_poll_s`` (``SLEEPSTACK_IDLE_POLL_S``, 1 s); the first work found returns it to
fast polling (:class:`IdlePoll`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Final

from core.contract.kpl import DEFAULT_LINGER_MS
from local.control import ControlPlane
from sleepstack.services.stop import Stop

__all__ = ["BUSY_GRACE_S", "IDLE_POLL_S", "POLL_S", "IdlePoll", "run_loop"]

log = logging.getLogger(__name__)

#: Pause between steps while work flows.
POLL_S: Final = 0.2
#: Longest pause between steps of an idle service (Lambda polls an idle shard about once a second).
IDLE_POLL_S: Final = 1.0
#: How long after the last work a service keeps polling fast: longer than a home sender's linger (it puts at
#: least every DEFAULT_LINGER_MS while its devices notify, and at once when an epoch completes), so a stream fed by
#: even one collector is polled fast all night and an epoch's record is read within POLL_S; with 2 s, the poller
#: backed off between a sender's puts and an epoch's record waited up to IDLE_POLL_S (bench idle: p95 0.49 s
#: against 0.26 s polling fixed). A stream silent for longer is idle.
BUSY_GRACE_S: Final = DEFAULT_LINGER_MS / 1000 + 2.0
#: Longest pause before retrying a failing step.
MAX_BACKOFF_S: Final = 30.0


class IdlePoll:
    """The pause before the next poll: :data:`POLL_S` while ``progress`` moves and for
    ``grace_s`` after, then doubling up to ``idle_s``; fast again as soon as it moves."""

    def __init__(
        self,
        progress: Callable[[], int] | None = None,
        *,
        fast_s: float = POLL_S,
        idle_s: float = IDLE_POLL_S,
        grace_s: float = BUSY_GRACE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.progress, self.fast_s, self.idle_s, self.grace_s, self.clock = progress, fast_s, idle_s, grace_s, clock
        self.pause_s = fast_s
        self._seen: int | None = None
        self._busy_at = clock()

    def next_pause(self) -> float:
        """Called after each step: how long to wait before the next."""
        now = self.clock()
        seen = self.progress() if self.progress is not None else None
        if seen != self._seen:
            self._seen, self._busy_at = seen, now
        if now - self._busy_at < self.grace_s:
            self.pause_s = self.fast_s
        else:
            self.pause_s = min(self.idle_s, max(self.fast_s, self.pause_s * 2))
        return self.pause_s


def run_loop(
    step: Callable[[], dict[str, Any]],
    service: str,
    control: ControlPlane,
    stop: Stop,
    *,
    poll: IdlePoll | None = None,
) -> None:
    """Run ``step`` until stopped, reporting its figures in a heartbeat after each.

    A failing step is logged (its type only: messages may name data) and reported
    ``stalled`` with the error, then retried after 1, 2, 4 ... 30 s; it is never fatal and
    nothing is dropped: a consumer's checkpoint does not move past what failed.
    """
    poll = poll or IdlePoll(idle_s=POLL_S)  # without a progress measure: the fast poll always
    failures = 0
    while not stop():
        try:
            figures = step()
            failures = 0
            control.beat(service, "running", **figures)
        except Exception as exc:  # noqa: BLE001 - stall (checkpoint not moved) and retry; never drop records
            failures += 1
            log.warning("%s: step failed (%s); retrying", service, type(exc).__name__)
            control.beat(service, "stalled", error=f"{type(exc).__name__}: {exc}")
            stop.wait(min(MAX_BACKOFF_S, 0.5 * 2**failures))
            continue
        stop.wait(poll.next_pause())
