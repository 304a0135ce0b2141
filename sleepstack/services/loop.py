"""The one loop every polling service runs: step, report, and retry a failing step with backoff."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Final

from local.control import ControlPlane
from sleepstack.services.stop import Stop

__all__ = ["POLL_S", "run_loop"]

log = logging.getLogger(__name__)

#: Pause between steps that found their work done.
POLL_S: Final = 0.2
#: Longest pause before retrying a failing step.
MAX_BACKOFF_S: Final = 30.0


def run_loop(step: Callable[[], dict[str, Any]], service: str, control: ControlPlane, stop: Stop) -> None:
    """Run ``step`` until stopped, reporting its figures in a heartbeat after each.

    A failing step is logged (its type only: messages may name data) and reported
    ``stalled`` with the error, then retried after 1, 2, 4 ... 30 s; it is never fatal and
    nothing is dropped: a consumer's checkpoint does not move past what failed.
    """
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
        stop.wait(POLL_S)
