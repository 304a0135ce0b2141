"""The local stack's services, each a process the supervisor runs (``python -m sleepstack.services NAME``).

* ``supervisor`` — starts the others and keeps them running (:mod:`sleepstack.services.supervisor`,
  :mod:`local.supervisor`);
* ``stream`` — kinesalite on disk, its port kept across restarts (:mod:`local.kinesis`);
* ``opensearch`` — with ``SLEEPSTACK_LIVE_STORE=opensearch`` (``stack up --live-store
  opensearch``): a local OpenSearch node (:mod:`local.opensearch_node`), the live store the
  speed layer writes and the dashboard reads instead of the embedded one;
* ``speed_layer`` — the event-source mapping invoking the real Lambda handler on every
  shard, continuously, with the template's mapping settings, checkpointed; a ledger of the
  record ids it applied serves ``reconcile`` (:mod:`sleepstack.services.speed_layer`);
* ``delivery`` — the Firehose delivery, buffering by size and interval (the template's
  hints), writing and compacting the raw lake; flushes at once when asked (``stack wait``)
  and on SIGTERM (:mod:`sleepstack.services.delivery`);
* ``scheduler`` — stages each night once it has closed, at ``SLEEPSTACK_BATCH_AT`` local
  time (late data re-staged by the job itself), and whatever ``stack stage`` asks for, by
  running ``sleepstack batch run`` in a child process (Spark's JVM is freed after)
  (:mod:`sleepstack.services.scheduler`);
* ``dashboard`` — the web dashboard and its JSON API on 127.0.0.1 (:mod:`sleepstack.dashboard`),
  its address (token included) in ``stack status`` (:mod:`sleepstack.services.dashboard`).

Every service reports a :class:`local.control.Heartbeat` each step, retries a failing step
with backoff (:func:`sleepstack.services.loop.run_loop`), and stops after the batch in
hand on SIGTERM or when its supervisor is gone (:class:`sleepstack.services.stop.Stop`).
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Final

__all__ = ["PYTHON_SERVICES", "SERVICES", "main"]

PYTHON_SERVICES: Final = ("speed_layer", "delivery", "scheduler", "dashboard", "notifier")
SERVICES: Final = ("stream", *PYTHON_SERVICES)


def _structured_logs(name: str) -> None:
    """JSON log lines (aws-lambda-powertools' formatter) for this service and every module it runs."""
    from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

    handler = logging.StreamHandler()
    handler.setFormatter(LambdaPowertoolsFormatter(service=f"sleepstack-{name.replace('_', '-')}"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)


def main(argv: list[str] | None = None) -> int:
    """Run one service (or the supervisor) in this process until it is stopped."""
    from sleepstack.services.dashboard import DashboardService
    from sleepstack.services.delivery import DeliveryService
    from sleepstack.services.notifier import NotifierService
    from sleepstack.services.scheduler import SchedulerService
    from sleepstack.services.speed_layer import SpeedLayerService
    from sleepstack.services.stop import Stop
    from sleepstack.services.supervisor import run_supervisor
    from sleepstack.settings import Settings

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] not in ("supervisor", *PYTHON_SERVICES):
        print(f"usage: python -m sleepstack.services {{supervisor|{'|'.join(PYTHON_SERVICES)}}}", file=sys.stderr)
        return 2
    os.umask(0o077)
    _structured_logs(args[0])
    settings = Settings.from_env()
    if args[0] == "supervisor":
        run_supervisor(settings)
        return 0
    services = {
        s.name: s for s in (SpeedLayerService, DeliveryService, SchedulerService, DashboardService, NotifierService)
    }
    services[args[0]](settings, Stop(os.getppid())).run()
    return 0
