"""What the commands print: measured figures and times, one way for all of them."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

__all__ = ["print_figures", "utc"]


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
