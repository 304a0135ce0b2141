"""The notifier on AWS: a scheduled Lambda that loops with short polls inside its invocation.

``Handler: sleepstack.lambda_entry.notifier_handler``, run by an EventBridge schedule every
minute with one reserved execution (``infra/template.yaml``, ``NotifierFunction``). Each
invocation wires :func:`sleepstack.wiring.notifier` once per execution environment, then
plans and sends every ``SLEEPSTACK_NOTIFY_POLL_S`` (2 s) until less than
:data:`STOP_MARGIN_S` of its time is left, so an episode that opens waits at most one poll
plus the speed layer's refresh — and, in the gap between one invocation's end and the
next's start (:data:`STOP_MARGIN_S` plus a warm start), up to about 12 s (docs/alerts.md).

:func:`topic_route` is the route the AWS notifier always has when the clinical topic is
set: every alert transition (opens and closes, clinical and technical) to the topic, once;
who hears of what is the subscriptions' filter policies on the message attributes
(:class:`sleepstack.notify.channels.SnsChannel`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from core.notify import Recipient, Route, Tier
from sleepstack.notify.engine import Notifier

__all__ = ["STOP_MARGIN_S", "TOPIC_ROUTE", "run_invocation", "topic_route"]

#: Stop polling when less than this is left of the invocation (a pass, its sends and their
#: SNS timeouts fit in it).
STOP_MARGIN_S: Final = 10.0
#: The built-in route's name (a message attribute subscriptions can filter on).
TOPIC_ROUTE: Final = "clinical-topic"


def topic_route(topic_arn: str) -> Route:
    """Every alert transition, opens and closes, to the SNS topic ``topic_arn``."""
    return Route(name=TOPIC_ROUTE, tiers=(Tier((Recipient("sns", topic_arn),)),), notify_close=True)


def run_invocation(
    notifier: Notifier,
    remaining_s: Callable[[], float],
    poll_s: float,
    sleep: Callable[[float], None] | None = None,
) -> dict[str, Any]:
    """Poll until fewer than :data:`STOP_MARGIN_S` + ``poll_s`` seconds of the invocation are
    left (``remaining_s``: the Lambda context's remaining time); the figures it reports."""
    planned, sent, errors = notifier.planned, notifier.sent, notifier.errors
    kwargs = {"sleep": sleep} if sleep is not None else {}
    passes = notifier.run_until(lambda: remaining_s() < STOP_MARGIN_S + poll_s, poll_s, **kwargs)
    return {
        "passes": passes,
        "planned": notifier.planned - planned,
        "sent": notifier.sent - sent,
        "errors": notifier.errors - errors,
        "failing_channels": sorted(notifier.failing_channels),
    }
