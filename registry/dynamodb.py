"""The registry in one DynamoDB table (``RegistryTable`` of ``infra/template.yaml``).

Single-table layout (partition key ``pk``, sort key ``sk``, both strings)::

    pk = subject#<id>      sk = subject               body (JSON)
    pk = device#<address>  sk = device                body (JSON), version (N)
    pk = device#<address>  sk = assign#<from_ms>      subject_id, from_ms, to_ms (absent: open)
    pk = history           sk = <at_ms>#<uuid>        action, why, detail (JSON)

A device's assignments are replaced in one transaction with its item's ``version``
checked and bumped, so concurrent assignments of one device cannot both land.
Listing subjects, devices and all assignments scans the table (a registry holds a study's
or a ward's people and devices: thousands of items, not millions).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

from core.registry import Assignment, Device, RegistryError, Subject
from registry.store import HistoryEntry, RegistryStore, RegistryUnavailable, VersionConflict, redact

__all__ = ["DynamoRegistry"]


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _n(value: int) -> dict[str, str]:
    return {"N": str(value)}


def _assignment(item: dict[str, Any]) -> Assignment:
    to = item.get("to_ms")
    return Assignment(
        device=item["pk"]["S"].removeprefix("device#"),
        from_ms=int(item["from_ms"]["N"]),
        subject_id=item["subject_id"]["S"],
        to_ms=int(to["N"]) if to else None,
    )


class DynamoRegistry(RegistryStore):
    """The registry through an injected boto3 DynamoDB client."""

    def __init__(self, client: Any, table: str) -> None:
        self.client, self.table = client, table

    def _call(self, op: str, **kw: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return (
                getattr(self.client, op)(TableName=self.table, **kw)
                if op != "transact_write_items"
                else (self.client.transact_write_items(**kw))
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("ConditionalCheckFailedException", "TransactionCanceledException"):
                raise
            raise RegistryUnavailable(f"the registry table {self.table}: {code or exc}") from exc
        except BotoCoreError as exc:
            raise RegistryUnavailable(f"the registry table {self.table}: {exc}") from exc

    def _scan(self, **kw: Any) -> Iterator[dict[str, Any]]:
        start: dict[str, Any] | None = None
        while True:
            page = self._call("scan", ConsistentRead=True, **kw, **({"ExclusiveStartKey": start} if start else {}))
            yield from page.get("Items", [])
            start = page.get("LastEvaluatedKey")
            if not start:
                return

    def _get(self, pk: str, sk: str) -> dict[str, Any] | None:
        item: dict[str, Any] | None = self._call("get_item", Key={"pk": _s(pk), "sk": _s(sk)}, ConsistentRead=True).get(
            "Item"
        )
        return item

    def _put_new_or_replace(self, item: dict[str, Any], *, new: bool, what: str, name: str) -> None:
        from botocore.exceptions import ClientError

        try:
            if new:
                self._call("put_item", Item=item, ConditionExpression="attribute_not_exists(pk)")
            else:
                self._call("put_item", Item=item)
        except ClientError:
            raise RegistryError(what, f"{name} is already registered") from None

    # subjects
    def get_subject(self, subject_id: str) -> Subject | None:
        item = self._get(f"subject#{subject_id}", "subject")
        return Subject.from_dict(json.loads(item["body"]["S"])) if item else None

    def subjects(self) -> list[Subject]:
        items = self._scan(FilterExpression="sk = :k", ExpressionAttributeValues={":k": _s("subject")})
        return sorted((Subject.from_dict(json.loads(i["body"]["S"])) for i in items), key=lambda s: s.subject_id)

    def _put_subject(self, subject: Subject, *, new: bool) -> None:
        item = {
            "pk": _s(f"subject#{subject.subject_id}"),
            "sk": _s("subject"),
            "body": _s(json.dumps(subject.to_dict(), sort_keys=True)),
        }
        self._put_new_or_replace(item, new=new, what="subject_id", name=subject.subject_id)

    # devices
    def get_device(self, address: str) -> Device | None:
        item = self._get(f"device#{address}", "device")
        return Device(**json.loads(item["body"]["S"])) if item else None

    def devices(self) -> list[Device]:
        items = self._scan(FilterExpression="sk = :k", ExpressionAttributeValues={":k": _s("device")})
        return sorted((Device(**json.loads(i["body"]["S"])) for i in items), key=lambda d: d.address)

    def _put_device(self, device: Device, *, new: bool) -> None:
        if new:
            item = {
                "pk": _s(f"device#{device.address}"),
                "sk": _s("device"),
                "body": _s(json.dumps(device.to_dict(), sort_keys=True)),
                "version": _n(0),
            }
            self._put_new_or_replace(item, new=True, what="address", name=device.address)
            return
        self._call(
            "update_item",
            Key={"pk": _s(f"device#{device.address}"), "sk": _s("device")},
            UpdateExpression="SET body = :b",
            ExpressionAttributeValues={":b": _s(json.dumps(device.to_dict(), sort_keys=True))},
        )

    # assignments
    def _device_assignments(self, address: str) -> tuple[int, list[Assignment]]:
        device = self._get(f"device#{address}", "device")
        version = int(device["version"]["N"]) if device else 0
        return version, self.assignments(address)

    def _write_assignments(
        self,
        address: str,
        version: int,
        writes: Sequence[Assignment],
        *,
        deletes: Sequence[Assignment] = (),
        log: HistoryEntry | None = None,
    ) -> None:
        from botocore.exceptions import ClientError

        ops: list[dict[str, Any]] = [
            {
                "Update": {
                    "TableName": self.table,
                    "Key": {"pk": _s(f"device#{address}"), "sk": _s("device")},
                    "UpdateExpression": "SET version = :next",
                    "ConditionExpression": "version = :seen",
                    "ExpressionAttributeValues": {":seen": _n(version), ":next": _n(version + 1)},
                }
            }
        ]
        for a in writes:
            item = {
                "pk": _s(f"device#{a.device}"),
                "sk": _s(f"assign#{a.from_ms:015d}"),
                "subject_id": _s(a.subject_id),
                "from_ms": _n(a.from_ms),
            }
            if a.to_ms is not None:
                item["to_ms"] = _n(a.to_ms)
            ops.append({"Put": {"TableName": self.table, "Item": item}})
        for a in deletes:
            key = {"pk": _s(f"device#{a.device}"), "sk": _s(f"assign#{a.from_ms:015d}")}
            ops.append({"Delete": {"TableName": self.table, "Key": key}})
        if log is not None:
            ops.append({"Put": {"TableName": self.table, "Item": self._history_item(log)}})
        try:
            self._call("transact_write_items", TransactItems=ops)
        except ClientError:
            raise VersionConflict(address) from None

    def assignments(self, device: str | None = None) -> list[Assignment]:
        if device is not None:
            items: list[dict[str, Any]] = []
            start: dict[str, Any] | None = None
            while True:
                page = self._call(
                    "query",
                    ConsistentRead=True,
                    KeyConditionExpression="pk = :p AND begins_with(sk, :a)",
                    ExpressionAttributeValues={":p": _s(f"device#{device}"), ":a": _s("assign#")},
                    **({"ExclusiveStartKey": start} if start else {}),
                )
                items += page.get("Items", [])
                start = page.get("LastEvaluatedKey")
                if not start:
                    break
        else:
            items = list(
                self._scan(FilterExpression="begins_with(sk, :a)", ExpressionAttributeValues={":a": _s("assign#")})
            )
        return sorted(_assignment(i) for i in items)

    # history
    def history(self) -> list[dict[str, Any]]:
        items = self._scan(FilterExpression="pk = :h", ExpressionAttributeValues={":h": _s("history")})
        rows = sorted(items, key=lambda i: i["sk"]["S"])
        return [
            {
                "at_ms": int(i["at_ms"]["N"]),
                "action": i["action"]["S"],
                "why": i["why"]["S"],
                "detail": json.loads(i["detail"]["S"]),
            }
            for i in rows
        ]

    def _log(self, at_ms: int, action: str, why: str, detail: dict[str, Any]) -> None:
        self._call("put_item", Item=self._history_item(HistoryEntry(at_ms, action, why, detail)))

    def _delete_subject(self, subject_id: str) -> bool:
        resp = self._call(
            "delete_item", Key={"pk": _s(f"subject#{subject_id}"), "sk": _s("subject")}, ReturnValues="ALL_OLD"
        )
        return "Attributes" in resp

    def _redact_history(self, subject_id: str, key: str) -> int:
        """Each history item naming the subject is put again, redacted, under its own key."""
        changed = 0
        for item in self._scan(FilterExpression="pk = :h", ExpressionAttributeValues={":h": _s("history")}):
            why, detail = item["why"]["S"], item["detail"]["S"]
            new_why = redact(why, subject_id, key)
            new_detail = json.dumps(redact(json.loads(detail), subject_id, key), sort_keys=True)
            if (new_why, new_detail) != (why, json.dumps(json.loads(detail), sort_keys=True)):
                self._call("put_item", Item=item | {"why": _s(new_why), "detail": _s(new_detail)})
                changed += 1
        return changed

    @staticmethod
    def _history_item(entry: HistoryEntry) -> dict[str, Any]:
        return {
            "pk": _s("history"),
            "sk": _s(f"{entry.at_ms:015d}#{uuid.uuid4().hex}"),
            "at_ms": _n(entry.at_ms),
            "action": _s(entry.action),
            "why": _s(entry.why),
            "detail": _s(json.dumps(entry.detail, sort_keys=True)),
        }
