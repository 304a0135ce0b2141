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

The handler writes only the states an invocation changed (ADR 0007). With epoch writes
(:mod:`speed_layer.epoch_writes`) a state is stored with its position in the shard
(:class:`Persisted`: the sequence number its records reach) and each shard has a lease
item (:class:`Lease`, the KCL pattern: an owner and a counter, renewed by a conditional
write per invocation); on DynamoDB the lease is an item of the same table whose key is
``lease/`` and the shard id (device ids are addresses or serials, never that).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from core.errors import SleepstackError
from core.live.state_codec import decode_state, encode_state

__all__ = ["DynamoStateStore", "Lease", "LeaseTaken", "Persisted", "StateStore", "StateStoreError", "item_bytes"]

#: Idle devices' state expires after this long (a week: longer than any night).
STATE_TTL_S: Final = 7 * 24 * 3600
#: The key prefix of a shard's lease item in the DynamoDB state table.
LEASE_PREFIX: Final = "lease/"


@dataclass(frozen=True)
class Persisted:
    """A device's stored state and where in its shard it stands."""

    state: dict[str, Any]
    #: the state holds every applied record of the device up to this sequence number
    #: (None: written without a position, by ``put_many`` or a stack before epoch writes)
    after_seq: int | None


@dataclass(frozen=True)
class Lease:
    """A shard's lease: who holds it, how often it was written, and where a rebuild replays from."""

    owner: str
    counter: int
    #: a holder's cache is its devices' stored states plus the shard's records after this
    #: sequence number (None: nothing to replay)
    horizon: int | None


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


class LeaseTaken(StateStoreError):
    """Another container wrote the shard's lease between our read and our write; retry the batch."""


class StateStore(ABC):
    @abstractmethod
    def get_many(self, device_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The stored state of each device that has one."""

    @abstractmethod
    def put_many(self, states: Mapping[str, dict[str, Any]]) -> None: ...

    @abstractmethod
    def delete_many(self, device_ids: Iterable[str]) -> int:
        """Forget the devices' state (a subject's erasure); how many were deleted (absent: none).

        Every shard's lease loses its owner too (its horizon kept), so no container's cache
        writes an erased state back: each rebuilds, and a rebuild folds no records of a device
        without a stored state."""

    @abstractmethod
    def get_positioned(self, device_ids: Iterable[str]) -> dict[str, Persisted]:
        """The stored state and position of each device that has one."""

    @abstractmethod
    def put_positioned(self, states: Mapping[str, Persisted]) -> None: ...

    @abstractmethod
    def renew_lease(self, shard: str, owner: str, counter: int, horizon: int | None) -> Lease | None:
        """Conditional write: if ``owner`` still holds ``shard`` at ``counter``, the lease at
        ``counter + 1`` with ``horizon``; otherwise None and nothing is written."""

    @abstractmethod
    def take_lease(self, shard: str, owner: str, horizon: int) -> tuple[Lease, Lease | None]:
        """Take ``shard`` over, keeping its horizon, or with ``horizon`` if it had none: the new
        lease and the one it replaced (None: the shard had none). Raises :class:`LeaseTaken`
        if it changed meanwhile."""


class DynamoStateStore(StateStore):
    """Device state in DynamoDB through an injected boto3 client."""

    def __init__(self, client: Any, table: str, *, clock: Any = time.time, max_attempts: int = 5) -> None:
        self.client, self.table, self.clock, self.max_attempts = client, table, clock, max_attempts

    def get_many(self, device_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        return {d: p.state for d, p in self.get_positioned(device_ids).items()}

    def put_many(self, states: Mapping[str, dict[str, Any]]) -> None:
        self.put_positioned({d: Persisted(s, None) for d, s in states.items()})

    def get_positioned(self, device_ids: Iterable[str]) -> dict[str, Persisted]:
        ids = list(dict.fromkeys(device_ids))
        out: dict[str, Persisted] = {}
        for i in range(0, len(ids), 100):  # BatchGetItem takes at most 100 keys
            keys: list[dict[str, Any]] = [{"device_id": {"S": d}} for d in ids[i : i + 100]]
            for attempt in range(self.max_attempts):
                resp = self.client.batch_get_item(RequestItems={self.table: {"Keys": keys, "ConsistentRead": True}})
                for item in resp.get("Responses", {}).get(self.table, []):
                    device = item["device_id"]["S"]
                    stored = item["state"]
                    state = decode_state(device, stored["B"] if "B" in stored else stored["S"])
                    after = int(item["after_seq"]["S"]) if "after_seq" in item else None
                    out[device] = Persisted(state, after)
                keys = resp.get("UnprocessedKeys", {}).get(self.table, {}).get("Keys", [])
                if not keys:
                    break
                time.sleep(min(1.0, 0.05 * 2**attempt))
            else:
                raise StateStoreError(f"DynamoDB left {len(keys)} state reads unprocessed")
        return out

    def put_positioned(self, states: Mapping[str, Persisted]) -> None:
        expires = int(self.clock()) + STATE_TTL_S
        items = []
        for d, p in states.items():
            item: dict[str, Any] = {
                "device_id": {"S": d},
                "state": {"B": encode_state(d, p.state)},
                "expires_at": {"N": str(expires)},
            }
            if p.after_seq is not None:  # Kinesis sequence numbers exceed DynamoDB's 38 digits: a string
                item["after_seq"] = {"S": str(p.after_seq)}
            items.append({"PutRequest": {"Item": item}})
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

    def _lease_item(self, shard: str, lease: Lease) -> dict[str, Any]:
        item: dict[str, Any] = {
            "device_id": {"S": LEASE_PREFIX + shard},
            "lease_owner": {"S": lease.owner},
            "lease_counter": {"N": str(lease.counter)},
            "expires_at": {"N": str(int(self.clock()) + STATE_TTL_S)},
        }
        if lease.horizon is not None:
            item["horizon"] = {"S": str(lease.horizon)}
        return item

    def renew_lease(self, shard: str, owner: str, counter: int, horizon: int | None) -> Lease | None:
        from botocore.exceptions import ClientError

        lease = Lease(owner, counter + 1, horizon)
        try:
            self.client.put_item(
                TableName=self.table,
                Item=self._lease_item(shard, lease),
                ConditionExpression="lease_owner = :o AND lease_counter = :c",
                ExpressionAttributeValues={":o": {"S": owner}, ":c": {"N": str(counter)}},
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return None
            raise StateStoreError(f"renewing the lease of {shard} failed: {exc}") from exc
        return lease

    def take_lease(self, shard: str, owner: str, horizon: int) -> tuple[Lease, Lease | None]:
        from botocore.exceptions import ClientError

        resp = self.client.get_item(
            TableName=self.table, Key={"device_id": {"S": LEASE_PREFIX + shard}}, ConsistentRead=True
        )
        old_item = resp.get("Item")
        old = None
        if old_item is not None:
            kept = old_item.get("horizon")
            old = Lease(
                old_item["lease_owner"]["S"],
                int(old_item["lease_counter"]["N"]),
                int(kept["S"]) if kept else None,
            )
        lease = Lease(
            owner, (old.counter if old else 0) + 1, old.horizon if old and old.horizon is not None else horizon
        )
        condition: dict[str, Any] = (
            {"ConditionExpression": "attribute_not_exists(device_id)"}
            if old is None
            else {
                "ConditionExpression": "lease_counter = :c",
                "ExpressionAttributeValues": {":c": {"N": str(old.counter)}},
            }
        )
        try:
            self.client.put_item(TableName=self.table, Item=self._lease_item(shard, lease), **condition)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                raise LeaseTaken(f"the lease of {shard} changed while it was taken over") from exc
            raise StateStoreError(f"taking the lease of {shard} failed: {exc}") from exc
        return lease, old

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
        self._drop_leases()
        return deleted

    def _drop_leases(self) -> None:
        """Every shard's lease to no owner, its horizon kept (a Scan of the ``lease/`` keys;
        erasure is rare): each holder's next renewal fails and it rebuilds from the store."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            pages = self.client.get_paginator("scan").paginate(
                TableName=self.table,
                ProjectionExpression="device_id",
                FilterExpression="begins_with(device_id, :p)",
                ExpressionAttributeValues={":p": {"S": LEASE_PREFIX}},
            )
            for page in pages:
                for item in page.get("Items", []):
                    self.client.update_item(
                        TableName=self.table,
                        Key={"device_id": item["device_id"]},
                        UpdateExpression="SET lease_owner = :none ADD lease_counter :one",
                        ExpressionAttributeValues={":none": {"S": ""}, ":one": {"N": "1"}},
                    )
        except (BotoCoreError, ClientError) as exc:
            raise StateStoreError(f"dropping the shard leases of {self.table} failed: {exc}") from exc
