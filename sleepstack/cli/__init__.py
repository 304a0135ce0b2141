"""``sleepstack`` command line: the composition root of the local stack and the jobs.

Commands are grouped by who uses them, each group a module with its parsers next to
their handlers: :mod:`~sleepstack.cli.pipeline` (simulate, demo, batch, sql, catalog),
:mod:`~sleepstack.cli.devices` (collect, ble), :mod:`~sleepstack.cli.operations` (stack,
live, opensearch, package), :mod:`~sleepstack.cli.dashboard` (dashboard, report),
:mod:`~sleepstack.cli.model` (evaluate, train) and
:mod:`~sleepstack.cli.bench`.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from core.errors import SleepstackError
from sleepstack.cli import bench, dashboard, devices, model, operations, pipeline
from sleepstack.settings import Settings

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sleepstack", description=__doc__.splitlines()[0])
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="command", required=True)
    for group in (pipeline, devices, operations, dashboard, model, bench):
        group.register(sub)
    return p


#: Files and folders this process creates are its owner's alone (health data), whatever
#: umask the caller runs with; child processes (kinesalite, Spark's JVM) inherit it.
PRIVATE_UMASK = 0o077


def main(argv: list[str] | None = None) -> int:
    os.umask(PRIVATE_UMASK)
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        return int(args.func(args, Settings.from_env()))
    except SleepstackError as exc:  # anything else is a bug: its traceback shows
        print(f"sleepstack: error: {exc}", file=sys.stderr)
        return exc.exit_code
