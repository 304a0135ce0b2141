"""Runs of consecutive True values in a boolean array (bouts, gaps, pauses)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["true_runs"]


def true_runs(mask: npt.ArrayLike) -> list[tuple[int, int]]:
    """Half-open ``(start, end)`` index pairs of each run of True in a 1-D ``mask``."""
    edges = np.flatnonzero(np.diff(np.r_[0, np.asarray(mask, dtype=np.int8), 0]))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))
