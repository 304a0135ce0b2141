"""Local delivery with Firehose semantics: Kinesis stream -> raw lake (Parquet).

What it reproduces of a Firehose delivery stream with a Kinesis source, record format
conversion to Parquet and dynamic partitioning:

* buffering by size (``buffer_bytes``) and time (``buffer_interval_s``); whatever is
  buffered is also flushed when the stream is caught up (drain mode);
* the S3 prefix expressions ``!{timestamp:<pattern>}`` (arrival time, Java date
  pattern) and ``!{partitionKeyFromQuery:<key>}`` (keys extracted from the record, as a
  JQ query would: ``dt`` = event date, ``kind``, ``subject_id``);
* an error output prefix with ``!{firehose:error-output-type}``: a record the Parquet
  conversion cannot read (it breaks the contract) lands there with its reason;
* object names derived from the shard and sequence range, so a redelivery after a crash
  overwrites the same object instead of duplicating it;
* compaction (which Firehose leaves to the user): after each drain, every partition it
  wrote to with more than ``compact_min_files`` small objects is merged
  (:mod:`local.compaction`), so a night is a few files, not one per flush.
"""

from __future__ import annotations

import logging
import re
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import pyarrow as pa
import pyarrow.parquet as pq

from batch_layer.lake_schema import RAW_SCHEMA
from core.contract import Record, from_wire, to_row
from core.errors import ContractError
from dead_letters import DeadLetterSink, dead_letter
from local.compaction import compact_partition
from local.shard_reader import Checkpoints, ShardReader, shard_ids

__all__ = ["DEFAULT_PREFIX", "FirehoseDelivery", "render_prefix"]

log = logging.getLogger(__name__)

DEFAULT_PREFIX: Final = "raw/dt=!{partitionKeyFromQuery:dt}/"
DEFAULT_ERROR_PREFIX: Final = "errors/!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd}/"
_JAVA_TO_STRFTIME: Final = {"yyyy": "%Y", "MM": "%m", "dd": "%d", "HH": "%H", "mm": "%M", "ss": "%S"}
_EXPR: Final = re.compile(r"!\{([A-Za-z:-]+?):([^}]*)\}")


def partition_keys(rec: Record) -> dict[str, str]:
    """The dynamic-partitioning keys of a record (Firehose's JQ query, in Python)."""
    dt = datetime.fromtimestamp(rec.event_time_ms / 1000, tz=UTC).strftime("%Y-%m-%d")
    return {"dt": dt, "kind": rec.kind, "subject_id": rec.subject_id}


def render_prefix(prefix: str, *, arrival: datetime, keys: dict[str, str], error_type: str = "") -> str:
    """Evaluate Firehose prefix expressions; unknown keys raise ``KeyError``."""

    def sub(m: re.Match[str]) -> str:
        namespace, arg = m.group(1), m.group(2)
        if namespace == "timestamp":
            fmt = re.sub("|".join(_JAVA_TO_STRFTIME), lambda t: _JAVA_TO_STRFTIME[t.group(0)], arg)
            return arrival.strftime(fmt)
        if namespace == "partitionKeyFromQuery":
            return keys[arg]
        if namespace == "firehose" and arg == "error-output-type":
            return error_type
        raise KeyError(f"unsupported prefix expression !{{{namespace}:{arg}}}")

    return _EXPR.sub(sub, prefix)


@dataclass
class DeliveryStats:
    records: int = 0
    errors: int = 0
    objects: int = 0
    bytes: int = 0
    compacted: int = 0  # small objects folded away by compaction
    conflicts: int = 0  # record ids met with two contents while compacting (one kept)


@dataclass
class _Buffer:
    rows: list[dict[str, Any]] = field(default_factory=list)
    size: int = 0
    first_seq: str = ""
    last_seq: str = ""
    opened: float = 0.0


@dataclass
class FirehoseDelivery:
    client: Any
    stream: str
    lake: Path
    checkpoints: Checkpoints
    errors: DeadLetterSink
    prefix: str = DEFAULT_PREFIX
    error_prefix: str = DEFAULT_ERROR_PREFIX
    buffer_bytes: int = 64 * 1024 * 1024  # Parquet conversion's minimum buffer size
    buffer_interval_s: float = 300.0
    clock: Callable[[], float] = time.time
    compact_min_files: int = 4
    compact_target_bytes: int = 128 * 1024 * 1024
    stats: DeliveryStats = field(default_factory=DeliveryStats)
    _touched: set[Path] = field(default_factory=set)

    def drain(self) -> DeliveryStats:
        """Deliver everything now in the stream and flush all buffers."""
        for shard in shard_ids(self.client, self.stream):
            buffers: dict[str, _Buffer] = defaultdict(_Buffer)
            for page in ShardReader(self.client, self.stream, shard, self.checkpoints).pages():
                for r in page:
                    self._add(shard, r, buffers)
                for key in [k for k, b in buffers.items() if self._due(b)]:
                    self._flush(shard, key, buffers.pop(key))
                if not buffers:
                    self.checkpoints.commit(shard, page[-1]["SequenceNumber"])
            for key, buf in list(buffers.items()):
                self._flush(shard, key, buf)
            if buffers:
                self.checkpoints.commit(shard, max((b.last_seq for b in buffers.values()), key=int))
        for directory in sorted(self._touched):
            c = compact_partition(directory, target_bytes=self.compact_target_bytes, min_files=self.compact_min_files)
            self.stats.compacted += c.files_before - c.files_after
            self.stats.conflicts += c.conflicts
        self._touched.clear()
        return self.stats

    def _due(self, buf: _Buffer) -> bool:
        return buf.size >= self.buffer_bytes or self.clock() - buf.opened >= self.buffer_interval_s

    def _add(self, shard: str, r: dict[str, Any], buffers: dict[str, _Buffer]) -> None:
        arrival: datetime = r["ApproximateArrivalTimestamp"]
        seq = r["SequenceNumber"]
        try:
            rec = from_wire(r["Data"])
        except ContractError as exc:
            self.stats.errors += 1
            key = render_prefix(self.error_prefix, arrival=arrival, keys={}, error_type="format-conversion-failed")
            self.errors.put(
                f"{key}{shard}-{seq}",
                dead_letter(
                    r["Data"],
                    reason=str(exc),
                    field=exc.field,
                    source={"shard": shard, "sequenceNumber": seq, "partitionKey": r["PartitionKey"]},
                ),
            )
            return
        key = render_prefix(self.prefix, arrival=arrival, keys=partition_keys(rec))
        buf = buffers[key]
        if not buf.rows:
            buf.first_seq, buf.opened = seq, self.clock()
        buf.rows.append(to_row(rec))
        buf.size += len(r["Data"])
        buf.last_seq = seq
        self.stats.records += 1

    def _flush(self, shard: str, key: str, buf: _Buffer) -> None:
        if not buf.rows:
            return
        path = self.lake / key / f"sleepstack-raw-{shard}-{buf.first_seq}-{buf.last_seq}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        table = pa.Table.from_pylist(buf.rows, schema=RAW_SCHEMA)
        tmp = path.with_suffix(".tmp")
        pq.write_table(table, tmp, compression="zstd")
        tmp.replace(path)
        self._touched.add(path.parent)
        self.stats.objects += 1
        self.stats.bytes += path.stat().st_size
