"""When a service stops: SIGTERM or SIGINT, or its supervisor gone."""

from __future__ import annotations

import signal
import threading

from local.supervisor import orphaned

__all__ = ["Stop"]


class Stop:
    """Call it to ask whether to stop (after the work in hand); :meth:`wait` sleeps until then."""

    def __init__(self, parent_pid: int) -> None:
        self.parent_pid = parent_pid
        self.event = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: self.event.set())
        signal.signal(signal.SIGINT, lambda *_: self.event.set())

    def __call__(self) -> bool:
        if orphaned(self.parent_pid):
            self.event.set()
        return self.event.is_set()

    def wait(self, seconds: float) -> None:
        self.event.wait(seconds)
