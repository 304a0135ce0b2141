"""The one epoch grid shared by the speed and batch layers, and night assignment.

Epochs are 30 s long and aligned to the Unix clock (an epoch starts at a multiple of
30,000 ms since 1970-01-01T00:00Z); each holds three 10-s windows. A night runs from
noon to noon in the subject's time zone and is named by the date of its first noon.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Final
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from core.errors import InputError

__all__ = [
    "EPOCH_MS",
    "EPOCH_S",
    "WINDOWS_PER_EPOCH",
    "WINDOW_S",
    "epoch_start_ms",
    "night_bounds_ms",
    "night_of",
    "night_range",
    "resolve_nights",
]

EPOCH_S: Final = 30
EPOCH_MS: Final = EPOCH_S * 1000
WINDOW_S: Final = 10
WINDOWS_PER_EPOCH: Final = EPOCH_S // WINDOW_S


def epoch_start_ms(t_ms: int | npt.NDArray[np.int64]) -> int | npt.NDArray[np.int64]:
    """Start (ms UTC) of the clock-aligned 30-s epoch holding ``t_ms``."""
    return t_ms - t_ms % EPOCH_MS


def night_of(t_ms: int, tz: str = "UTC") -> str:
    """Night (``YYYY-MM-DD`` of its starting noon) that instant ``t_ms`` belongs to."""
    local = datetime.fromtimestamp(t_ms / 1000, tz=UTC).astimezone(ZoneInfo(tz))
    return (local - timedelta(hours=12)).date().isoformat()


def night_bounds_ms(night: str, tz: str = "UTC") -> tuple[int, int]:
    """[start, end) of a night in ms UTC: noon of ``night`` to noon of the next day, local."""
    zone = ZoneInfo(tz)
    day = date.fromisoformat(night)
    start = datetime.combine(day, time(12), tzinfo=zone)
    end = datetime.combine(day + timedelta(days=1), time(12), tzinfo=zone)
    return int(start.timestamp() * 1000), int(end.timestamp() * 1000)


_DATE: Final = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _night_date(value: str, arg: str) -> date:
    if not _DATE.match(value):
        raise InputError(arg, f"{value!r} is not a date; give YYYY-MM-DD (the night's evening)")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InputError(arg, f"{value!r} is not a calendar date") from None


def resolve_nights(spec: str, tz: str, now: datetime, *, arg: str = "--NIGHTS") -> list[str]:
    """Nights (``YYYY-MM-DD`` of their evening) named by ``spec``.

    ``yesterday``: the last night that has ended at ``now`` (a night runs noon to noon in
    ``tz``); otherwise a comma-separated list of dates, each checked. ``arg`` names the
    argument in errors (``--NIGHTS`` for the Glue job, ``--night`` for the CLI).
    """
    if spec.strip() == "yesterday":
        local = now.astimezone(ZoneInfo(tz))
        ended = local.date() - timedelta(days=1 if local.hour >= 12 else 2)
        return [ended.isoformat()]
    nights = [n.strip() for n in spec.split(",") if n.strip()]
    if not nights:
        raise InputError(arg, f"{spec!r} names no night; give 'yesterday' or YYYY-MM-DD[,YYYY-MM-DD...]")
    return [_night_date(n, arg).isoformat() for n in nights]


def night_range(start: str, end: str, *, start_arg: str = "--from", end_arg: str = "--to") -> list[str]:
    """Every night from ``start`` to ``end`` inclusive (``YYYY-MM-DD``), checked."""
    first, last = _night_date(start, start_arg), _night_date(end, end_arg)
    if last < first:
        raise InputError(end_arg, f"{end} is before {start_arg} {start}")
    return [(first + timedelta(days=k)).isoformat() for k in range((last - first).days + 1)]
