"""The ``alerts`` command group: one subcommand module each, registered from :data:`SUBCOMMANDS`.

A new ``sleepstack alerts ...`` command is a module with a ``register(sub)`` function,
added to the tuple below.
"""

from __future__ import annotations

from typing import Any

from sleepstack.cli import alerts_backtest, alerts_delivery

__all__ = ["SUBCOMMANDS", "register"]

SUBCOMMANDS: tuple[Any, ...] = (alerts_backtest, alerts_delivery)


def register(sub: Any) -> None:
    p = sub.add_parser(
        "alerts",
        help="clinical alerts: their delivery (routes, outbox) and their rules' measured burden",
        description=__doc__.splitlines()[0],
    )
    group = p.add_subparsers(dest="alerts_command", required=True, metavar="ACTION")
    for module in SUBCOMMANDS:
        module.register(group)
