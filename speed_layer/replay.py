"""Read a shard's records again, for a takeover's rebuild (:mod:`speed_layer.epoch_writes`).

:class:`KinesisReplay` reads ``GetShardIterator`` (``AFTER_SEQUENCE_NUMBER``) and
``GetRecords`` through an injected boto3 client (on AWS: Kinesis; locally: kinesalite)
up to a sequence number, and yields the records as the handler decoded them: KPL
aggregates unpacked (:mod:`core.contract.kpl`), records that break the contract skipped
(they were quarantined when they first came).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from core.contract import Record
from core.contract.kpl import AggregateError, unpack
from core.errors import ContractError
from speed_layer.processing import decode

__all__ = ["KinesisReplay", "decoded", "stream_name"]


def decoded(rows: Iterable[tuple[int, bytes]]) -> Iterator[tuple[int, Record]]:
    """The valid user records of Kinesis records ``(sequence number, data)``, in order."""
    for seq, data in rows:
        try:
            users = unpack(data)
        except AggregateError:
            continue
        for _sub, payload in users:
            try:
                yield seq, decode(payload)
            except ContractError:
                continue


def stream_name(source_arn: str) -> str:
    """The stream's name from its ARN (``arn:aws:kinesis:<region>:<account>:stream/<name>``)."""
    return source_arn.rsplit(":", 1)[-1].split("/", 1)[-1]


@dataclass
class KinesisReplay:
    """``replay(source, shard, after_seq, before_seq)`` through ``client`` (the stream named by
    the event source ARN ``source``)."""

    client: Any
    page_limit: int = 10_000

    def __call__(self, source: str, shard: str, after_seq: int, before_seq: int) -> Iterator[tuple[int, Record]]:
        return decoded(self._rows(stream_name(source), shard, after_seq, before_seq))

    def _rows(self, stream: str, shard: str, after_seq: int, before_seq: int) -> Iterator[tuple[int, bytes]]:
        it = self.client.get_shard_iterator(
            StreamName=stream,
            ShardId=shard,
            ShardIteratorType="AFTER_SEQUENCE_NUMBER",
            StartingSequenceNumber=str(after_seq),
        )["ShardIterator"]
        while it:
            page = self.client.get_records(ShardIterator=it, Limit=self.page_limit)
            for r in page["Records"]:
                seq = int(r["SequenceNumber"])
                if seq >= before_seq:
                    return
                yield seq, bytes(r["Data"])
            if not page["Records"] and not page.get("MillisBehindLatest"):
                return  # caught up without reaching before_seq: the batch is the stream's newest
            it = page.get("NextShardIterator")
