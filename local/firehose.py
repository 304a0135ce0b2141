"""Local delivery with Firehose semantics: Kinesis stream -> raw lake (Parquet).

What it reproduces of a Firehose delivery stream with a Kinesis source, record format
conversion to Parquet and dynamic partitioning:

* buffering by size (``buffer_bytes``) and time (``buffer_interval_s``); whatever is
  buffered is also flushed when the stream is caught up (drain mode);
* the S3 prefix expressions ``!{timestamp:<pattern>}`` (arrival time, Java date
  pattern) and ``!{partitionKeyFromLambda:<key>}`` / ``!{partitionKeyFromQuery:<key>}``
  (keys extracted from the record, as the transformation Lambda or a JQ query would:
  ``dt`` = event date, ``kind``, ``subject_id``; :mod:`batch_layer.raw_landing`);
* de-aggregation of KPL records (:mod:`core.contract.kpl`), as Firehose does for a Kinesis source:
  each user record becomes its own row;
* an error output prefix with ``!{firehose:error-output-type}``: a user record the
  Parquet conversion cannot read (it breaks the contract) lands there with its reason
  (``format-conversion-failed``), alone; an aggregate that cannot be unpacked lands whole
  (``processing-failed``);
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
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import pyarrow as pa
import pyarrow.parquet as pq

from batch_layer.lake_schema import RAW_SCHEMA
from batch_layer.raw_landing import partition_keys
from core.contract import from_wire, to_row
from core.contract.kpl import AggregateError, unpack
from core.errors import ContractError
from dead_letters import DeadLetterSink, dead_letter
from local.compaction import compact_partition
from local.shard_reader import Checkpoints, StreamShards

__all__ = ["DEFAULT_PREFIX", "FirehoseDelivery", "render_prefix"]

log = logging.getLogger(__name__)

DEFAULT_PREFIX: Final = "raw/dt=!{partitionKeyFromLambda:dt}/"
DEFAULT_ERROR_PREFIX: Final = "errors/!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd}/"
_JAVA_TO_STRFTIME: Final = {"yyyy": "%Y", "MM": "%m", "dd": "%d", "HH": "%H", "mm": "%M", "ss": "%S"}
_EXPR: Final = re.compile(r"!\{([A-Za-z:-]+?):([^}]*)\}")


def render_prefix(prefix: str, *, arrival: datetime, keys: dict[str, str], error_type: str = "") -> str:
    """Evaluate Firehose prefix expressions; unknown keys raise ``KeyError``."""

    def sub(m: re.Match[str]) -> str:
        namespace, arg = m.group(1), m.group(2)
        if namespace == "timestamp":
            fmt = re.sub("|".join(_JAVA_TO_STRFTIME), lambda t: _JAVA_TO_STRFTIME[t.group(0)], arg)
            return arrival.strftime(fmt)
        if namespace in ("partitionKeyFromQuery", "partitionKeyFromLambda"):
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
    checkpoint_resets: int = 0  # shards whose checkpoint the stream no longer held (read from the oldest)


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
    _open: dict[str, dict[str, _Buffer]] = field(default_factory=dict)
    _read_through: dict[str, str] = field(default_factory=dict)
    _covered: dict[str, dict[str, list[tuple[int, int]]]] = field(default_factory=dict)
    _shards: StreamShards | None = None

    def drain(self) -> DeliveryStats:
        """Deliver everything now in the stream and flush all buffers."""
        return self.poll(flush=True)

    @property
    def buffered_records(self) -> int:
        """Records read but not yet written to the lake (their shard's checkpoint waits for them)."""
        return sum(len(b.rows) for bufs in self._open.values() for b in bufs.values())

    def poll(self, *, flush: bool = False, stop: Callable[[], bool] | None = None) -> DeliveryStats:
        """Read what is new in every shard into the buffers; write them when due, or all with ``flush``.

        Buffers live across polls, as a running Firehose's do, flushed by size or age. A
        shard's buffers are written together and only then is its checkpoint moved to the
        last record read, so after a crash the shard is read again from the checkpoint;
        records an object already holds (from its name's sequence range) are skipped, so a
        redelivery neither loses nor duplicates rows.
        """
        try:
            self._poll_shards(flush, stop)
        except BaseException:
            # a write failed (e.g. the disk is full): forget what was read since the checkpoints,
            # so the next poll reads it again; objects already written are skipped by their range
            self._open.clear()
            self._read_through.clear()
            self._covered.clear()
            if self._shards is not None:
                self._shards.forget()
            raise
        for directory in sorted(self._touched):
            c = compact_partition(directory, target_bytes=self.compact_target_bytes, min_files=self.compact_min_files)
            self.stats.compacted += c.files_before - c.files_after
            self.stats.conflicts += c.conflicts
        self._touched.clear()
        return self.stats

    def _poll_shards(self, flush: bool, stop: Callable[[], bool] | None) -> None:
        if self._shards is None:
            self._shards = StreamShards(self.client, self.stream, self.checkpoints)
        for reader in self._shards.readers():
            shard = reader.shard_id
            buffers = self._open.setdefault(shard, defaultdict(_Buffer))
            covered = self._covered_ranges(shard)
            for page in reader.pages(after=self._read_through.get(shard)):
                if stop is not None and stop():
                    break
                for r in page:
                    self._add(shard, r, buffers, covered)
                self._read_through[shard] = page[-1]["SequenceNumber"]
                if any(self._due(b) for b in buffers.values()):
                    self._flush_shard(shard)
            if reader.reset_reason:
                self.stats.checkpoint_resets += 1
            if flush or any(self._due(b) for b in buffers.values()):
                self._flush_shard(shard)

    def _flush_shard(self, shard: str) -> None:
        buffers = self._open.get(shard, {})
        for key, buf in list(buffers.items()):
            self._flush(shard, key, buf)
        buffers.clear()
        if shard in self._read_through:
            self.checkpoints.commit(shard, self._read_through[shard])

    def _covered_ranges(self, shard: str) -> dict[str, list[tuple[int, int]]]:
        """Sequence ranges of this shard's objects written after its checkpoint, by prefix (once per run)."""
        if shard not in self._covered:
            after = int(self.checkpoints.get(shard) or -1)
            found: dict[str, list[tuple[int, int]]] = {}
            for path in self.lake.rglob(f"sleepstack-raw-{shard}-*.parquet"):
                first, last = (int(x) for x in path.stem.removeprefix(f"sleepstack-raw-{shard}-").split("-"))
                if last > after:
                    found.setdefault(path.parent.relative_to(self.lake).as_posix() + "/", []).append((first, last))
            self._covered[shard] = found
        return self._covered[shard]

    def _due(self, buf: _Buffer) -> bool:
        return buf.size >= self.buffer_bytes or self.clock() - buf.opened >= self.buffer_interval_s

    def _add(
        self, shard: str, r: dict[str, Any], buffers: dict[str, _Buffer], covered: dict[str, list[tuple[int, int]]]
    ) -> None:
        """Buffer one Kinesis record's user records: a KPL aggregate is unpacked, as Firehose does."""
        done = self._read_through.get(shard)
        if done is not None and int(r["SequenceNumber"]) <= int(done):
            return  # read again after the stream restarted: already in a buffer (or written and checkpointed)
        data: bytes = r["Data"]
        try:
            users = unpack(data)
        except AggregateError as exc:
            self._error(shard, r, data, None, exc, "processing-failed")
            return
        for sub, payload in users:
            self._add_user(shard, r, payload, sub, buffers, covered)

    def _add_user(
        self,
        shard: str,
        r: dict[str, Any],
        data: bytes,
        sub: int | None,
        buffers: dict[str, _Buffer],
        covered: dict[str, list[tuple[int, int]]],
    ) -> None:
        seq = r["SequenceNumber"]
        try:
            rec = from_wire(data)
        except ContractError as exc:
            self._error(shard, r, data, sub, exc, "format-conversion-failed")
            return
        key = render_prefix(self.prefix, arrival=r["ApproximateArrivalTimestamp"], keys=partition_keys(rec))
        if any(a <= int(seq) <= b for a, b in covered.get(key, ())):
            return  # an object written before a crash already holds it
        buf = buffers[key]
        if not buf.rows:
            buf.first_seq, buf.opened = seq, self.clock()
        buf.rows.append(to_row(rec))
        buf.size += len(data)
        buf.last_seq = seq
        self.stats.records += 1

    def _error(
        self, shard: str, r: dict[str, Any], data: bytes, sub: int | None, exc: ContractError, error_type: str
    ) -> None:
        self.stats.errors += 1
        seq = r["SequenceNumber"]
        key = render_prefix(self.error_prefix, arrival=r["ApproximateArrivalTimestamp"], keys={}, error_type=error_type)
        source: dict[str, Any] = {"shard": shard, "sequenceNumber": seq, "partitionKey": r["PartitionKey"]}
        if sub is not None:
            source["subSequenceNumber"] = sub
        where = seq if sub is None else f"{seq}-{sub}"
        self.errors.put(f"{key}{shard}-{where}", dead_letter(data, reason=str(exc), field=exc.field, source=source))

    def _flush(self, shard: str, key: str, buf: _Buffer) -> None:
        if not buf.rows:
            return
        path = self.lake / key / f"sleepstack-raw-{shard}-{buf.first_seq}-{buf.last_seq}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        table = pa.Table.from_pylist(buf.rows, schema=RAW_SCHEMA)
        tmp = path.with_suffix(".tmp")
        try:
            pq.write_table(table, tmp, compression="zstd")
        except BaseException:
            tmp.unlink(missing_ok=True)  # a partial object (e.g. the disk filled up) never lands
            raise
        tmp.replace(path)
        self._touched.add(path.parent)
        self.stats.objects += 1
        self.stats.bytes += path.stat().st_size
