"""The notifier service: delivers alert episodes to people (:mod:`sleepstack.notify.engine`)."""

from __future__ import annotations

from typing import Any

from core.errors import SleepstackError
from sleepstack import wiring
from sleepstack.services.base import Service
from sleepstack.services.loop import IdlePoll, run_loop

__all__ = ["NotifierService"]


class NotifierService(Service):
    """Plans and sends every step. Without ``SLEEPSTACK_ALERT_ROUTES`` it idles and its
    heartbeat says ``routes: none`` (never a default recipient).

    Figures: ``queued``, ``sent``, ``failed``, ``oldest_unsent_s``, ``planned``, ``failing_channels``.
    """

    name = "notifier"

    def run(self) -> None:
        while True:  # a bad routes file stalls the service, saying why, until it is fixed
            try:
                notifier = wiring.notifier(self.settings)
                break
            except SleepstackError as exc:
                self.control.beat(self.name, "stalled", error=str(exc))
                if self.stop():
                    return
                self.stop.wait(5.0)
        if notifier is None:
            while not self.stop():
                self.control.beat(self.name, "running", routes="none", queued=0, sent=0, failed=0, oldest_unsent_s=0)
                self.stop.wait(self.settings.idle_poll_s * 5)
            self.control.beat(self.name, "stopped", routes="none")
            return
        routes = self.settings.alert_routes.name if self.settings.alert_routes else ""

        def step() -> dict[str, Any]:
            return {"routes": routes, **notifier.step()}

        # fast while messages are planned or sent, backing off to settings.idle_poll_s when quiet
        poll = IdlePoll(lambda: notifier.planned + notifier.sent + notifier.errors, idle_s=self.settings.idle_poll_s)
        try:
            run_loop(step, self.name, self.control, self.stop, poll=poll)
        finally:
            self.control.beat(self.name, "stopped", **notifier.outbox.counts(notifier.now_ms()))
