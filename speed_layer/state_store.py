"""Where the speed layer keeps each device's state between invocations.

Lambda's tumbling windows were considered and not used: their windows follow arrival
time, not the clock-aligned epochs; their state is dropped at every window end (an
epoch or an alert run straddling the end would be cut in two); and it is capped at 1 MB
per shard. Instead each device's state (a few KB: the open strap epoch and the alert
runs, :mod:`core.live.epochs`) is read at the start of an invocation and written after
its documents are stored. Kinesis delivers a partition key (the device) to one
invocation at a time and in order, so there is exactly one writer per device.

* AWS: a DynamoDB table (partition key ``device_id``; ``state`` as binary in the compact
  form of :mod:`core.live.state_codec`, so a state fits one write unit — a string attribute
  holds the JSON of a stack before it, still read; ``expires_at`` for DynamoDB TTL, so idle
  devices' state ages out).
* Local: a SQLite table next to the embedded live store (:mod:`local.state_store`), same
  encoding.

The handler writes only the states an invocation changed (ADR 0007).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from typing import Any, Final

from core.errors import SleepstackError
from core.live.state_codec import decode_state, encode_state

__all__ = ["DynamoStateStore", "StateStore", "StateStoreError", "item_bytes"]

#: Idle devices' state expires after this long (a week: longer than any night).
STATE_TTL_S: Final = 7 * 24 * 3600


def item_bytes(item: Mapping[str, Mapping[str, Any]]) -> int:
    """The size DynamoDB bills an item by: attribute names plus values (UTF-8 strings,
    binary as is, numbers as their digits, roughly); one write unit per started 1,024 bytes."""
    size = 0
    for name, value in item.items():
        ((kind, v),) = value.items()
        size += len(name.encode()) + (len(v) if kind == "B" else len(str(v).encode()))
    return size


class StateStoreError(SleepstackError):
    """Device state could not be read or written; the batch must be retried."""


class StateStore(ABC):
    @abstractmethod
    def get_many(self, device_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The stored state of each device that has one."""

    @abstractmethod
    def put_many(self, states: Mapping[str, dict[str, Any]]) -> None: ...

    @abstractmethod
    def delete_many(self, device_ids: Iterable[str]) -> int:
        """Forget the devices' state (a subject's erasure); how many were deleted (absent: none)."""


class DynamoStateStore(StateStore):
    """Device state in DynamoDB through an injected boto3 client."""

    def __init__(self, client: Any, table: str, *, clock: Any = time.time, max_attempts: int = 5) -> None:
        self.client, self.table, self.clock, self.max_attempts = client, table, clock, max_attempts

    def get_many(self, device_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        ids = list(dict.fromkeys(device_ids))
        out: dict[str, dict[str, Any]] = {}
        for i in range(0, len(ids), 100):  # BatchGetItem takes at most 100 keys
            keys: list[dict[str, Any]] = [{"device_id": {"S": d}} for d in ids[i : i + 100]]
            for attempt in range(self.max_attempts):
                resp = self.client.batch_get_item(RequestItems={self.table: {"Keys": keys, "ConsistentRead": True}})
                for item in resp.get("Responses", {}).get(self.table, []):
                    device = item["device_id"]["S"]
                    stored = item["state"]
                    out[device] = decode_state(device, stored["B"] if "B" in stored else stored["S"])
                keys = resp.get("UnprocessedKeys", {}).get(self.table, {}).get("Keys", [])
                if not keys:
                    break
                time.sleep(min(1.0, 0.05 * 2**attempt))
            else:
                raise StateStoreError(f"DynamoDB left {len(keys)} state reads unprocessed")
        return out

    def put_many(self, states: Mapping[str, dict[str, Any]]) -> None:
        expires = int(self.clock()) + STATE_TTL_S
        items = [
            {
                "PutRequest": {
                    "Item": {
                        "device_id": {"S": d},
                        "state": {"B": encode_state(d, s)},
                        "expires_at": {"N": str(expires)},
                    }
                }
            }
            for d, s in states.items()
        ]
        for i in range(0, len(items), 25):  # BatchWriteItem takes at most 25 requests
            pending = items[i : i + 25]
            for attempt in range(self.max_attempts):
                resp = self.client.batch_write_item(RequestItems={self.table: pending})
                pending = resp.get("UnprocessedItems", {}).get(self.table, [])
                if not pending:
                    break
                time.sleep(min(1.0, 0.05 * 2**attempt))
            else:
                raise StateStoreError(f"DynamoDB left {len(pending)} state writes unprocessed")

    def delete_many(self, device_ids: Iterable[str]) -> int:
        """``DeleteItem`` per device that has state (BatchWriteItem would not say which existed)."""
        from botocore.exceptions import BotoCoreError, ClientError

        deleted = 0
        for d in dict.fromkeys(device_ids):
            try:
                resp = self.client.delete_item(
                    TableName=self.table, Key={"device_id": {"S": d}}, ReturnValues="ALL_OLD"
                )
            except (BotoCoreError, ClientError) as exc:
                raise StateStoreError(f"deleting a device's state in {self.table} failed: {exc}") from exc
            deleted += "Attributes" in resp
        return deleted
