"""The AWS Lambda entry points: the speed layer (``Handler: sleepstack.lambda_entry.lambda_handler``),
the raw delivery's record transformation (``firehose_transform_handler``) and the notifier
(``notifier_handler``, :mod:`sleepstack.notify.aws`).

It wires the handler from the environment once per execution environment (on the first
invocation) and delegates every event to it; the handler itself is
:class:`speed_layer.handler.SpeedLayerHandler`. Observability is aws-lambda-powertools':

* structured JSON logs (``Logger``; the project's module loggers get the same formatter),
  with the invocation's request id and cold start, never record contents;
* one CloudWatch EMF document per invocation (``Metrics``, namespace ``sleepstack``):
  ``Records``, ``Documents``, ``Quarantined``, ``Rejected``, ``Behind``, ``Alerts``,
  ``StateWrites``, ``Takeovers`` and ``Replayed`` (epoch writes, ADR 7: a steady rate of
  takeovers means containers keep losing their shards, each a rebuild) and ``DurationMs``.
  The local stack's services report the same figures in ``stack status``.
"""

from __future__ import annotations

import time
from typing import Any, Final

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.metrics import MetricUnit

from speed_layer.handler import SpeedLayerHandler

__all__ = ["firehose_transform_handler", "lambda_handler", "logger", "metrics", "notifier_handler"]

SERVICE: Final = "sleepstack-speed-layer"
logger = Logger(service=SERVICE)
metrics = Metrics(namespace="sleepstack", service=SERVICE)

_handler: SpeedLayerHandler | None = None
_notifier: Any = None  # sleepstack.notify.engine.Notifier, wired at the notifier's first invocation
_COUNTS: Final = (
    ("Records", "records"),
    ("KinesisRecords", "kinesis_records"),
    ("Documents", "documents"),
    ("Quarantined", "quarantined"),
    ("Rejected", "rejected"),
    ("Behind", "behind"),
    ("Alerts", "alerts"),
    ("StateWrites", "state_writes"),
    ("Takeovers", "takeovers"),
    ("Replayed", "replayed"),
)


@metrics.log_metrics
@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """AWS entry point: wires the handler from the environment on the first invocation."""
    global _handler  # noqa: PLW0603 - one wiring per Lambda execution environment
    if _handler is None:
        from sleepstack.settings import Settings
        from sleepstack.wiring import speed_layer_handler

        # the project's module loggers write the same structured JSON (set once, not at import)
        copy_config_to_registered_loggers(source_logger=logger, include={"speed_layer", "dead_letters", "core"})
        _handler = speed_layer_handler(Settings.from_env())
    before = {attr: getattr(_handler.stats, attr) for _, attr in _COUNTS}
    t0 = time.perf_counter()
    response = _handler(event, context)
    for name, attr in _COUNTS:
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=getattr(_handler.stats, attr) - before[attr])
    metrics.add_metric(name="DurationMs", unit=MetricUnit.Milliseconds, value=1000 * (time.perf_counter() - t0))
    logger.info("batch processed", extra={"failures": len(response.get("batchItemFailures") or [])})
    return response


def firehose_transform_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Firehose's data-transformation Lambda (``Handler: sleepstack.lambda_entry.firehose_transform_handler``).

    Each de-aggregated user record, contract v1 or v2, becomes its raw-lake row
    (:func:`batch_layer.raw_landing.firehose_transform`); it needs no settings.
    """
    from batch_layer.raw_landing import firehose_transform

    return firehose_transform(event)


def notifier_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The notifier's entry point (``Handler: sleepstack.lambda_entry.notifier_handler``): the
    schedule's event carries nothing it needs; it polls until its time is nearly up."""
    global _notifier  # noqa: PLW0603 - one wiring per Lambda execution environment
    from sleepstack.notify.aws import run_invocation
    from sleepstack.settings import Settings

    settings = Settings.from_env()
    if _notifier is None:
        from sleepstack.wiring import notifier

        copy_config_to_registered_loggers(source_logger=logger, include={"sleepstack", "core"})
        _notifier = notifier(settings)
        if _notifier is None:
            logger.warning("notifier: no routes (set SLEEPSTACK_CLINICAL_TOPIC_ARN or a routes file); idle")
            return {"passes": 0}
    figures = run_invocation(_notifier, lambda: context.get_remaining_time_in_millis() / 1000, settings.notify_poll_s)
    logger.info("notifier invocation", extra=figures)  # counts and channel names only
    return figures
