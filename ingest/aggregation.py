"""Packing user records into KPL-aggregated Kinesis records, sized for cost and latency.

Kinesis bills PUT payload units of 25 KB and Firehose rounds every record up to 5 KB, so
one Kinesis record per 1-Hz strap notification (~290 bytes) pays mostly for rounding. As
the Kinesis Producer Library does, the sender packs the records bound for one shard — of
one device or of several, each user record keeping its device as its partition key — in
order, into aggregates (:mod:`core.contract.kpl`) of at most ``max_bytes`` (default
:data:`PUT_UNIT_BYTES`, one PUT payload unit). The aggregate's own partition key is its
first record's device, whose hash lands on that shard, so every device's records stay in
order on its one shard. Which shard a key hashes to comes from :class:`ShardMap` (the
stream's open shards and their hash-key ranges; Kinesis hashes a partition key with MD5
into a 128-bit integer). Without a map each device is packed alone. A group of a single
record is sent as the plain record (as the KPL does): aggregating it only adds bytes.

The sender holds records back for at most ``linger_ms`` while their aggregate is not
full, so no record waits in the sender much longer than that, except the records that
complete an epoch (:func:`epoch_of`): a strap notification of a later epoch than the
others held for its shard (it is what closes the strap's open epoch in the speed layer)
and a bed frame (it completes its epochs by itself) go at once with what is held, so the
linger delays the per-notification trace, never an epoch's vitals (ADR 7).
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple, Protocol

import orjson

from core.contract import Record, to_wire
from core.contract.epochs import EPOCH_MS
from core.contract.kpl import DEFAULT_LINGER_MS, aggregate, header_size, key_size, record_size

__all__ = [
    "DEFAULT_LINGER_MS",
    "PUT_UNIT_BYTES",
    "Packed",
    "Pending",
    "ShardMap",
    "epoch_of",
    "pack",
    "pack_records",
    "put_units",
]

#: One Kinesis PUT payload unit (25 KB); a record up to this size costs one unit.
PUT_UNIT_BYTES: Final = 25_000


def epoch_of(data: bytes) -> int | None:
    """The 30-s epoch a wire record's event time falls in (its start, ms); None for a bed
    frame (it completes its epochs by itself) or a record that does not parse: these are
    sent without lingering."""
    try:
        rec = orjson.loads(data)
        if rec.get("kind") == "bed":
            return None
        t_ms = int(rec["event_time_ms"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
        return None
    return t_ms - t_ms % EPOCH_MS


class Entry(Protocol):
    """What :func:`pack` needs of an outbox row."""

    @property
    def id(self) -> int: ...
    @property
    def partition_key(self) -> str: ...
    @property
    def data(self) -> bytes: ...


class Pending(NamedTuple):
    """A user record to pack that is not in a spool: its position, partition key and wire bytes."""

    id: int
    partition_key: str
    data: bytes


@dataclass(frozen=True, slots=True)
class Packed:
    """One Kinesis record to put: an aggregate (or one plain record) and the outbox ids it carries."""

    partition_key: str
    data: bytes
    ids: tuple[int, ...]


@dataclass(frozen=True)
class ShardMap:
    """Which open shard of a stream a partition key hashes to."""

    starts: tuple[int, ...]
    shard_ids: tuple[str, ...]
    _known: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_shards(cls, shards: Sequence[dict[str, Any]]) -> ShardMap:
        """From a ListShards response's ``Shards``; closed shards (with an ending sequence number) are left out."""
        open_ = sorted(
            (int(s["HashKeyRange"]["StartingHashKey"]), str(s["ShardId"]))
            for s in shards
            if "EndingSequenceNumber" not in s.get("SequenceNumberRange", {})
        )
        return cls(tuple(a for a, _ in open_), tuple(b for _, b in open_))

    @classmethod
    def of_stream(cls, client: Any, stream: str) -> ShardMap:
        """The map of ``stream``'s open shards (ListShards, every page)."""
        shards: list[dict[str, Any]] = []
        resp = client.list_shards(StreamName=stream)
        shards += resp["Shards"]
        while resp.get("NextToken"):
            resp = client.list_shards(NextToken=resp["NextToken"])
            shards += resp["Shards"]
        return cls.from_shards(shards)

    def shard_of(self, partition_key: str) -> str:
        """The shard whose hash-key range holds MD5(partition key) (remembered per key)."""
        shard = self._known.get(partition_key)
        if shard is None:
            h = int.from_bytes(hashlib.md5(partition_key.encode(), usedforsecurity=False).digest(), "big")
            shard = self._known[partition_key] = self.shard_ids[max(0, bisect.bisect_right(self.starts, h) - 1)]
        return shard


def put_units(nbytes: int) -> int:
    """Kinesis PUT payload units a record of ``nbytes`` (data + partition key) costs."""
    return max(1, -(-nbytes // PUT_UNIT_BYTES))


def pack(
    entries: Sequence[Entry], max_bytes: int = PUT_UNIT_BYTES, shard_of: Callable[[str], str] | None = None
) -> list[Packed]:
    """Pack ``entries`` (oldest first) into Kinesis records, per shard (or per key without ``shard_of``), in order.

    Each aggregate holds consecutive records of one shard's keys and is at most
    ``max_bytes`` including its own partition key; a record too large to share one goes
    alone, as a plain record. ``max_bytes`` of 0 sends every record plain.
    """
    groups: dict[str, list[Entry]] = {}
    for e in entries:
        groups.setdefault(shard_of(e.partition_key) if shard_of else e.partition_key, []).append(e)
    out: list[Packed] = []
    for group in groups.values():
        run: list[Entry] = []
        keys: dict[str, int] = {}
        size = 0
        for e in group:
            index = keys.get(e.partition_key, len(keys))
            add = record_size(index, len(e.data)) + (key_size(e.partition_key) if e.partition_key not in keys else 0)
            if run and size + add > max_bytes:
                out.append(_seal(run))
                run, keys, size = [], {}, 0
                index, add = 0, record_size(0, len(e.data)) + key_size(e.partition_key)
            if not run:
                size = header_size() + len(e.partition_key.encode())  # the aggregate's own key counts too
            run.append(e)
            keys.setdefault(e.partition_key, index)
            size += add
        if run:
            out.append(_seal(run))
    return out


def pack_records(
    records: Iterable[Record], max_bytes: int = PUT_UNIT_BYTES, shard_of: Callable[[str], str] | None = None
) -> list[Packed]:
    """:func:`pack` of ``records`` encoded on the current wire, each keyed by its device."""
    return pack([Pending(i, r.device_id, to_wire(r)) for i, r in enumerate(records)], max_bytes, shard_of)


def _seal(run: list[Entry]) -> Packed:
    first = run[0]
    if len(run) == 1:
        return Packed(first.partition_key, first.data, (first.id,))
    return Packed(first.partition_key, aggregate([(e.partition_key, e.data) for e in run]), tuple(e.id for e in run))
