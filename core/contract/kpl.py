"""The Kinesis Producer Library's aggregation format: many user records in one Kinesis record.

Format (amazon-kinesis-producer, ``aggregation-format.md``)::

    magic  F3 89 9A C2 | protobuf AggregatedRecord | MD5 of the protobuf bytes (16 bytes)

    message AggregatedRecord {
      repeated string partition_key_table     = 1;
      repeated string explicit_hash_key_table = 2;
      repeated Record records                 = 3;
    }
    message Record {
      required uint64 partition_key_index     = 1;
      optional uint64 explicit_hash_key_index = 2;
      required bytes  data                    = 3;
      repeated Tag    tags                    = 4;   // Tag { required string key = 1; optional string value = 2; }
    }

Lambda hands a function the aggregated record as it is; Firehose de-aggregates it itself.
Records that do not start with the magic are plain user records (every sleepstack wire
record is JSON, which starts with ``{``), so aggregated and plain records mix on a shard.

This module is the pure codec (the protobuf wire rules for these two messages, written
out: the core imports no protobuf runtime). :func:`aggregate` packs one partition key's
user records; :func:`deaggregate` accepts any conforming producer's records (several
partition keys, explicit hash keys, tags, unknown fields skipped) and raises
:class:`AggregateError` naming what is wrong with a corrupt one: a bad checksum (which a
truncated record also has) or a malformed message. :func:`packed_size` is the exact size
of an aggregate, so a sender can fill Kinesis records to a budget.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from core.errors import ContractError

__all__ = [
    "DEFAULT_LINGER_MS",
    "MAGIC",
    "AggregateError",
    "UserRecord",
    "aggregate",
    "deaggregate",
    "header_size",
    "is_aggregated",
    "key_size",
    "packed_size",
    "record_size",
    "unpack",
]

#: How long a sender may hold records to fill an aggregate (ms). A home collector (one
#: strap, one bed) puts 7.8x fewer PUT units with it than one record a notification;
#: records that complete an epoch do not wait (:func:`ingest.aggregation.epoch_of`). Here,
#: not in ``ingest``, because the settings (and so the Lambda zip, which ships no ``ingest``) read it.
DEFAULT_LINGER_MS: Final = 10_000
MAGIC: Final = b"\xf3\x89\x9a\xc2"
_DIGEST_BYTES: Final = 16
_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5


class AggregateError(ContractError):
    """An aggregated Kinesis record cannot be unpacked; ``field`` is ``"<aggregate>"``."""

    def __init__(self, reason: str) -> None:
        super().__init__("<aggregate>", reason)


@dataclass(frozen=True, slots=True)
class UserRecord:
    """One user record of an aggregate: its partition key, data and index in the aggregate."""

    partition_key: str
    data: bytes
    sub_sequence: int
    explicit_hash_key: str | None = None


_SMALL_VARINTS: Final = tuple(bytes((n,)) for n in range(0x80))


def _varint(n: int) -> bytes:
    if n < 0x80:
        return _SMALL_VARINTS[n]
    if n < 0x4000:
        return bytes(((n & 0x7F) | 0x80, n >> 7))
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _varint_len(n: int) -> int:
    if n < 0x80:
        return 1
    if n < 0x4000:
        return 2
    return (n.bit_length() + 6) // 7


def _inner_len(key_index: int, data_len: int) -> int:
    # Record: key 0x08 + varint pk index, key 0x1A + varint len + data
    return 1 + _varint_len(key_index) + 1 + _varint_len(data_len) + data_len


def header_size() -> int:
    """Bytes of an empty aggregate: the magic and the MD5."""
    return len(MAGIC) + _DIGEST_BYTES


def key_size(partition_key: str) -> int:
    """Bytes a new partition key adds to an aggregate's key table."""
    n = len(partition_key.encode())
    return 1 + _varint_len(n) + n


def record_size(key_index: int, data_len: int) -> int:
    """Bytes one user record of ``data_len`` bytes (key ``key_index`` of the table) adds to an aggregate."""
    inner = _inner_len(key_index, data_len)
    return 1 + _varint_len(inner) + inner


def packed_size(records: Sequence[tuple[str, int]]) -> int:
    """Exact size in bytes of :func:`aggregate` of records given as (partition key, data length)."""
    keys: dict[str, int] = {}
    size = header_size()
    for key, n in records:
        if key not in keys:
            keys[key] = len(keys)
            size += key_size(key)
        size += record_size(keys[key], n)
    return size


def aggregate(records: Sequence[tuple[str, bytes]]) -> bytes:
    """One aggregated Kinesis record holding ``records`` ((partition key, data), in order)."""
    if not records:
        raise ValueError("an aggregate needs at least one user record")
    keys: dict[str, int] = {}
    for key, _ in records:
        keys.setdefault(key, len(keys))
    parts: list[bytes] = []
    for key in keys:
        pk = key.encode()
        parts += [b"\x0a", _varint(len(pk)), pk]
    for key, d in records:
        index = keys[key]
        head = b"\x08" + _varint(index) + b"\x1a" + _varint(len(d))
        parts += [b"\x1a", _varint(len(head) + len(d)), head, d]
    body = b"".join(parts)
    return MAGIC + body + hashlib.md5(body, usedforsecurity=False).digest()


def is_aggregated(data: bytes) -> bool:
    """Whether ``data`` claims to be an aggregate (starts with the magic)."""
    return data[:4] == MAGIC


def _read_varint(buf: bytes, i: int, end: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        if i >= end:
            raise AggregateError("truncated varint in the protobuf message")
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, i
        shift += 7
        if shift > 63:
            raise AggregateError("varint longer than 64 bits in the protobuf message")


def _skip(buf: bytes, i: int, end: int, wire: int) -> int:
    if wire == _VARINT:
        return _read_varint(buf, i, end)[1]
    if wire == _I64:
        i += 8
    elif wire == _I32:
        i += 4
    elif wire == _LEN:
        n, i = _read_varint(buf, i, end)
        i += n
    else:
        raise AggregateError(f"unsupported protobuf wire type {wire}")
    if i > end:
        raise AggregateError("a field runs past the end of its message")
    return i


def _read_len(buf: bytes, i: int, end: int) -> tuple[int, int]:
    n, i = _read_varint(buf, i, end)
    if i + n > end:
        raise AggregateError("a field runs past the end of its message")
    return i, i + n


def _parse_record(buf: bytes, i: int, end: int) -> tuple[int, int | None, bytes]:
    pk_index: int | None = None
    ehk_index: int | None = None
    data: bytes | None = None
    while i < end:
        key, i = _read_varint(buf, i, end)
        field, wire = key >> 3, key & 7
        if field == 1 and wire == _VARINT:
            pk_index, i = _read_varint(buf, i, end)
        elif field == 2 and wire == _VARINT:
            ehk_index, i = _read_varint(buf, i, end)
        elif field == 3 and wire == _LEN:
            a, i = _read_len(buf, i, end)
            data = buf[a:i]
        else:
            i = _skip(buf, i, end, wire)  # tags (4) and unknown fields
    if pk_index is None or data is None:
        raise AggregateError("a user record lacks its partition key index or its data")
    return pk_index, ehk_index, data


def deaggregate(data: bytes) -> list[UserRecord]:
    """The user records of an aggregated Kinesis record, in order.

    Raises :class:`AggregateError` when ``data`` does not start with the magic, its MD5
    does not match (corrupt or truncated), the message is malformed, or a user record
    points outside the key tables.
    """
    if not is_aggregated(data):
        raise AggregateError("no KPL magic number")
    if len(data) < len(MAGIC) + _DIGEST_BYTES:
        raise AggregateError(f"{len(data)} bytes is shorter than the magic and checksum")
    body = data[len(MAGIC) : -_DIGEST_BYTES]
    if hashlib.md5(body, usedforsecurity=False).digest() != data[-_DIGEST_BYTES:]:
        raise AggregateError("MD5 checksum does not match (the record is corrupt or truncated)")
    pks: list[str] = []
    ehks: list[str] = []
    raw: list[tuple[int, int | None, bytes]] = []
    i, end = 0, len(body)
    while i < end:
        key, i = _read_varint(body, i, end)
        field, wire = key >> 3, key & 7
        if field in (1, 2) and wire == _LEN:
            a, i = _read_len(body, i, end)
            try:
                text = body[a:i].decode()
            except UnicodeDecodeError:
                raise AggregateError("a partition or hash key is not UTF-8") from None
            (pks if field == 1 else ehks).append(text)
        elif field == 3 and wire == _LEN:
            a, i = _read_len(body, i, end)
            raw.append(_parse_record(body, a, i))
        else:
            i = _skip(body, i, end, wire)
    out = []
    for sub, (pk_index, ehk_index, payload) in enumerate(raw):
        if pk_index >= len(pks):
            raise AggregateError(f"user record {sub} names partition key {pk_index} of {len(pks)}")
        if ehk_index is not None and ehk_index >= len(ehks):
            raise AggregateError(f"user record {sub} names explicit hash key {ehk_index} of {len(ehks)}")
        out.append(UserRecord(pks[pk_index], payload, sub, None if ehk_index is None else ehks[ehk_index]))
    return out


def unpack(data: bytes) -> list[tuple[int | None, bytes]]:
    """The user records a Kinesis record carries, as (sub-sequence number, data).

    A plain record is its own single user record (sub-sequence None); an aggregate gives
    its records in order, or raises :class:`AggregateError` when it cannot be unpacked.
    """
    if not is_aggregated(data):
        return [(None, data)]
    return [(u.sub_sequence, u.data) for u in deaggregate(data)]
