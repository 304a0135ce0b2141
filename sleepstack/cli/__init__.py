"""``sleepstack`` command line: the composition root of the local stack and the jobs.

Commands are grouped by who uses them, each group a module with its parsers next to
their handlers: :mod:`~sleepstack.cli.pipeline` (simulate, demo, batch, sql, catalog),
:mod:`~sleepstack.cli.devices` (collect, ble), :mod:`~sleepstack.cli.operations` (stack,
live, opensearch, package), :mod:`~sleepstack.cli.dashboard` (dashboard, report),
:mod:`~sleepstack.cli.people` (users, audit),
:mod:`~sleepstack.cli.export` (export), :mod:`~sleepstack.cli.erase` (erase),
:mod:`~sleepstack.cli.model` (evaluate, train) and
:mod:`~sleepstack.cli.bench`.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import NoReturn

from core.errors import SleepstackError
from sleepstack.cli import (
    alerts,
    bench,
    dashboard,
    devices,
    erase,
    export,
    model,
    operations,
    people,
    pipeline,
    registry,
)
from sleepstack.cli.errors import UsageError, exit_code
from sleepstack.settings import Settings

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    """argparse's parser whose refusals are :class:`UsageError`: one sentence and exit 2, like every bad input.

    The usage goes to ``-h``; the error names the command and what is wrong, e.g.
    ``sleepstack: error: sleepstack stack stage: the following arguments are required: --night``.
    """

    def error(self, message: str) -> NoReturn:
        raise UsageError(self.prog, message)


def _parser() -> argparse.ArgumentParser:
    from importlib.metadata import version

    p = _Parser(prog="sleepstack", description=__doc__.splitlines()[0])
    p.add_argument("-v", "--verbose", action="store_true", help="log at INFO (counts and positions, never health data)")
    p.add_argument("--version", action="version", version=f"%(prog)s {version('sleepstack')}")
    sub = p.add_subparsers(dest="command", required=True)
    for group in (pipeline, registry, devices, operations, dashboard, people, export, erase, model, bench, alerts):
        group.register(sub)
    return p


#: Files and folders this process creates are its owner's alone (health data), whatever
#: umask the caller runs with; child processes (kinesalite, Spark's JVM) inherit it.
PRIVATE_UMASK = 0o077


def main(argv: list[str] | None = None) -> int:
    os.umask(PRIVATE_UMASK)
    try:
        args = _parser().parse_args(argv)
    except UsageError as exc:
        print(f"sleepstack: error: {exc} (-h for help)", file=sys.stderr)
        return exit_code(exc)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        return int(args.func(args, Settings.from_env()))
    except SleepstackError as exc:  # anything else is a bug: its traceback shows
        print(f"sleepstack: error: {exc}", file=sys.stderr)
        return exit_code(exc)
