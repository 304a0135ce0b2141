"""One row per record id, chosen deterministically where copies of a record differ.

A record id names one content (kind | device | device time, :func:`core.contract.make_record_id`):
replays and redeliveries repeat records byte for byte, and the collector's framing is a
pure function of the notifications (:mod:`core.ble.device_records`). A lake written before
that held, or a bug, can still hold two contents under one id; whoever meets them keeps
the same one whatever the order they arrived in, and counts the conflict:

1. the most complete copy (most bed samples: a whole frame beats a cut one);
2. then the latest ``ingest_time_ms``;
3. then the smallest canonical content (the row's values as sorted JSON), a total order.
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Mapping

import numpy as np
import pandas as pd

__all__ = ["drop_duplicate_records"]


def _canonical(row: Mapping[Hashable, object]) -> str:
    return json.dumps(row, sort_keys=True, default=lambda v: v.tolist() if isinstance(v, np.ndarray) else str(v))


def drop_duplicate_records(raw: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """``raw`` (raw-lake rows, shape (n, fields)) with one row per ``record_id``, and the number of
    ids whose copies differed in content (conflicts). Row order of the kept rows is preserved."""
    repeated = raw["record_id"].duplicated(keep=False).to_numpy()
    if not repeated.any():
        return raw, 0
    dups = raw[repeated]
    canon = [_canonical(r) for r in dups.to_dict("records")]
    n_samples = [
        len(s) if isinstance(s, list | tuple | np.ndarray) else 0 for s in dups.get("samples", [None] * len(dups))
    ]
    ranked = pd.DataFrame(
        {
            "record_id": dups["record_id"].to_numpy(),
            "n_samples": n_samples,
            "ingest": dups["ingest_time_ms"].to_numpy(),
            "canon": canon,
            "pos": np.flatnonzero(repeated),
        }
    )
    conflicts = int(ranked.drop_duplicates(["record_id", "canon"])["record_id"].duplicated().sum())
    ranked = ranked.sort_values(["record_id", "n_samples", "ingest", "canon"], ascending=[True, False, False, True])
    keep = np.ones(len(raw), dtype=bool)
    keep[repeated] = False
    keep[ranked.drop_duplicates("record_id")["pos"].to_numpy()] = True
    return raw[keep], conflicts
