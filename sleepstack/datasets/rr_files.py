"""Read real RR-interval files: the li2024 CSV layout or one interval (ms) per line."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import numpy.typing as npt

from core.errors import DatasetError

__all__ = ["read_rr_ms"]


def read_rr_ms(path: Path) -> npt.NDArray[np.float64]:
    """RR intervals in ms, shape (n,). li2024 CSV (``RR Interval in seconds`` column) or plain ms.

    A missing, unreadable or non-numeric file raises :class:`DatasetError` naming it.
    """
    if not path.is_file():
        raise DatasetError(str(path), "no such RR file" if not path.exists() else "is not a file")
    try:
        with path.open(newline="") as fh:
            first = fh.readline()
            fh.seek(0)
            if "RR Interval" in first:
                col = next(c for c in next(csv.reader([first])) if c.strip().startswith("RR Interval"))
                rr = [float(row[col]) * 1000.0 for row in csv.DictReader(fh) if row.get(col, "").strip()]
            else:
                rr = [float(line) for line in fh if line.strip()]
    except (ValueError, UnicodeDecodeError):  # the offending text is not repeated: it may be anything
        raise DatasetError(str(path), "not an RR series (li2024 CSV, or one interval in ms per line)") from None
    if not rr:
        raise DatasetError(str(path), "holds no RR intervals")
    return np.asarray(rr, dtype=float)
