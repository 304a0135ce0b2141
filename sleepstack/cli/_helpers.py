"""What several commands share: printing figures and times, reading an ``--rr`` file."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.errors import DatasetError
from sleepstack.cli.errors import UsageError

#: ``--night``'s help wherever a command names nights.
NIGHT_HELP = (
    "YYYY-MM-DD[,...] (a night's evening; nights run noon to noon in SLEEPSTACK_TZ), or 'yesterday': "
    "the most recent night that has closed"
)

__all__ = ["NIGHT_HELP", "operator", "print_figures", "rr_argument", "utc"]


def print_figures(figures: dict[str, Any], *, as_json: bool) -> None:
    """A command's measured figures: one JSON object, or aligned ``name: value`` lines."""
    if as_json:
        print(json.dumps(figures))
        return
    width = max(map(len, figures))
    for k, v in figures.items():
        print(f"{k:>{width}}: {v}")


def utc(t_ms: int) -> str:
    """``t_ms`` (ms since the epoch) as a UTC time stamp for people."""
    return datetime.fromtimestamp(t_ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def rr_argument(path: str | None) -> Any:
    """``--rr FILE`` read as RR intervals (ms), or None; a bad file is a usage error naming the flag."""
    from sleepstack.datasets.rr_files import read_rr_ms

    if path is None:
        return None
    try:
        return read_rr_ms(Path(path))
    except DatasetError as exc:
        raise UsageError("--rr", str(exc)) from None


def operator(by: str | None) -> str:
    """Who runs an operation the history keeps (``--by``; default: the OS user)."""
    import getpass

    try:
        return by or getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
