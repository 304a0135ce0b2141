"""Compaction of a raw-lake partition: many small delivery objects -> a few large ones.

A delivery stream flushes on size *or* time, so a quiet night trickles in as many small
objects (Firehose: one per buffer interval per partition). Small files make every scan
pay per-object overhead, so once a partition has more than ``min_files`` small objects
they are merged: rows are read, duplicates by ``record_id`` dropped (a redelivery can
land a record twice; where copies differ a deterministic one is kept and the conflict
counted, :mod:`core.contract.conflicts`), sorted by subject and event time (better compression and
row-group pruning), and written as files of at most ``target_bytes`` of input each.
Objects already at least half the target are left alone.

Crash safety: the merged file is written under a temporary name and renamed, and only
then are its inputs deleted. A crash in between leaves duplicates, which the nightly job
drops by ``record_id`` and the next compaction folds away; nothing is lost. The merged
file's name is derived from its inputs' names, so a rerun rewrites the same object.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from batch_layer.lake_schema import RAW_SCHEMA
from core.contract.conflicts import drop_duplicate_records

__all__ = ["CompactionStats", "compact_partition", "replace_objects"]

COMPACTED_PREFIX = "sleepstack-raw-compacted-"


@dataclass(frozen=True)
class CompactionStats:
    files_before: int
    files_after: int
    rows: int
    duplicates_dropped: int
    #: record ids whose copies differed in content (a deterministic one kept)
    conflicts: int = 0


def _groups(files: list[Path], target_bytes: int) -> list[list[Path]]:
    groups: list[list[Path]] = [[]]
    size = 0
    for f in files:
        n = f.stat().st_size
        if groups[-1] and size + n > target_bytes:
            groups.append([])
            size = 0
        groups[-1].append(f)
        size += n
    return [g for g in groups if len(g) > 1]


def _dedupe(table: pa.Table) -> tuple[pa.Table, int]:
    """One row per record id (:func:`core.contract.conflicts.drop_duplicate_records` on the repeated ones)."""
    ids = table["record_id"].to_numpy(zero_copy_only=False)
    _, inverse, counts = np.unique(ids, return_inverse=True, return_counts=True)
    repeated = counts[inverse] > 1
    if not repeated.any():
        return table, 0
    kept, conflicts = drop_duplicate_records(table.filter(pa.array(repeated)).to_pandas())
    chosen = pa.Table.from_pandas(kept, schema=RAW_SCHEMA, preserve_index=False)
    return pa.concat_tables([table.filter(pa.array(~repeated)), chosen]), conflicts


def _merge(group: list[Path], directory: Path) -> tuple[int, int, int]:
    table = pa.concat_tables(pq.read_table(f, schema=RAW_SCHEMA) for f in group)
    before = table.num_rows
    table, conflicts = _dedupe(table)
    order = pc.sort_indices(table, sort_keys=[("subject_id", "ascending"), ("event_time_ms", "ascending")])
    table = table.take(order)
    digest = hashlib.sha1("\n".join(f.name for f in group).encode(), usedforsecurity=False).hexdigest()[:16]
    replace_objects([(table, directory / f"{COMPACTED_PREFIX}{digest}.parquet")], group)
    return table.num_rows, before - table.num_rows, conflicts


def replace_objects(
    outputs: Sequence[tuple[pa.Table, Path]],
    inputs: Sequence[Path],
    *,
    written: Callable[[], None] | None = None,
) -> None:
    """Replace lake objects ``inputs`` by ``outputs``: each output is written under a
    temporary name and renamed, and only then are the inputs deleted.

    A crash before the renames leaves the inputs as they were; a crash after them leaves
    inputs and outputs side by side, which a rerun that derives the same output names from
    the same inputs finishes (the caller's duty). ``written`` is called between the two
    (a test stops the process there).
    """
    for table, out in outputs:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".tmp")
        try:
            pq.write_table(table, tmp, compression="zstd", row_group_size=64 * 1024)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        tmp.replace(out)
    if written is not None:
        written()
    kept = {out for _, out in outputs}
    for f in inputs:
        if f not in kept:
            f.unlink(missing_ok=True)


def compact_partition(directory: Path, *, target_bytes: int = 128 * 1024 * 1024, min_files: int = 4) -> CompactionStats:
    """Merge the small Parquet objects of one partition directory (see module docstring)."""
    files = sorted(directory.glob("*.parquet"))
    small = [f for f in files if f.stat().st_size < target_bytes // 2]
    if len(small) <= min_files:
        return CompactionStats(len(files), len(files), 0, 0)
    rows = dropped = conflicts = 0
    for group in _groups(small, target_bytes):
        r, d, c = _merge(group, directory)
        rows, dropped, conflicts = rows + r, dropped + d, conflicts + c
    return CompactionStats(len(files), len(list(directory.glob("*.parquet"))), rows, dropped, conflicts)
