"""Read real RR-interval files: the li2024 CSV layout or one interval (ms) per line."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import numpy.typing as npt

__all__ = ["read_rr_ms"]


def read_rr_ms(path: Path) -> npt.NDArray[np.float64]:
    """RR intervals in ms, shape (n,). li2024 CSV (``RR Interval in seconds`` column) or plain ms."""
    with path.open(newline="") as fh:
        first = fh.readline()
        fh.seek(0)
        if "RR Interval" in first:
            col = next(c for c in next(csv.reader([first])) if c.strip().startswith("RR Interval"))
            rr = [float(row[col]) * 1000.0 for row in csv.DictReader(fh) if row.get(col, "").strip()]
        else:
            rr = [float(line) for line in fh if line.strip()]
    return np.asarray(rr, dtype=float)
