"""Packing a device's user records into KPL-aggregated Kinesis records, sized for cost and latency.

Kinesis bills PUT payload units of 25 KB and Firehose rounds every record up to 5 KB, so
one record per 1-Hz strap notification (~290 bytes) pays mostly for rounding. The sender
packs each device's records, in order, into aggregates (:mod:`core.kpl`) of at most
``max_bytes`` (default :data:`PUT_UNIT_BYTES`, one PUT payload unit), and holds a device's
records back for at most ``linger_ms`` while its aggregate is not full, so no record waits
in the sender much longer than that. The partition key of an aggregate is its device, so a
device's records stay in order on one shard. A group of a single record is sent as the
plain record (as the KPL does): aggregating it would only add bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from core.kpl import aggregate, packed_size, record_overhead

__all__ = ["DEFAULT_LINGER_MS", "PUT_UNIT_BYTES", "Packed", "pack", "put_units"]

#: One Kinesis PUT payload unit (25 KB); a record up to this size costs one unit.
PUT_UNIT_BYTES: Final = 25_000
#: How long the sender may hold a device's records to fill an aggregate (ms).
DEFAULT_LINGER_MS: Final = 1_000


class Entry(Protocol):
    """What :func:`pack` needs of an outbox row."""

    @property
    def id(self) -> int: ...
    @property
    def partition_key(self) -> str: ...
    @property
    def data(self) -> bytes: ...


@dataclass(frozen=True, slots=True)
class Packed:
    """One Kinesis record to put: an aggregate (or one plain record) and the outbox ids it carries."""

    partition_key: str
    data: bytes
    ids: tuple[int, ...]

    @property
    def user_records(self) -> int:
        return len(self.ids)


def put_units(nbytes: int) -> int:
    """Kinesis PUT payload units a record of ``nbytes`` (data + partition key) costs."""
    return max(1, -(-nbytes // PUT_UNIT_BYTES))


def pack(entries: Sequence[Entry], max_bytes: int = PUT_UNIT_BYTES) -> list[Packed]:
    """Pack ``entries`` (oldest first) into Kinesis records, per partition key, in order.

    Each aggregate holds consecutive records of one key and is at most ``max_bytes``
    including its key; a record too large to share one goes alone, as a plain record.
    Records of different keys keep their relative order within each key only.
    """
    groups: dict[str, list[Entry]] = {}
    for e in entries:
        groups.setdefault(e.partition_key, []).append(e)
    out: list[Packed] = []
    for key, group in groups.items():
        key_len = len(key.encode())
        base = packed_size(key, [])
        run: list[Entry] = []
        size = base
        for e in group:
            add = len(e.data) + record_overhead(len(e.data))
            if run and size + add + key_len > max_bytes:
                out.append(_seal(key, run))
                run, size = [], base
            run.append(e)
            size += add
        if run:
            out.append(_seal(key, run))
    return out


def _seal(key: str, run: list[Entry]) -> Packed:
    if len(run) == 1:
        return Packed(key, run[0].data, (run[0].id,))
    return Packed(key, aggregate(key, [e.data for e in run]), tuple(e.id for e in run))
