"""The notifier's outbox on AWS: :class:`core.outbox.OutboxStore` in one DynamoDB table.

The table (``infra/template.yaml``, ``NotifierOutboxTable``) has the string hash key
``key`` and holds three kinds of item:

* a message: ``key`` is its idempotency key (:func:`core.notify.idempotency_key`). It is
  written with a conditional put, ``attribute_not_exists(#k)`` — DynamoDB's form of
  SQLite's ``INSERT OR IGNORE``: two notifiers planning the same transition, or one
  retried after a crash, store it once. Queued messages are found through the sparse
  global secondary index ``queue`` (hash ``status``, range ``next_ms``);
* ``episode#<alert id>``: when the notifier first saw an episode (escalation clock), set
  with ``if_not_exists`` so the first sighting wins;
* ``mark#<name>``: a watermark.

Messages and sightings carry ``expires_at`` (epoch seconds, :data:`KEEP_DAYS` on) for the
table's TTL. Message bodies are stored as JSON text (no float-to-Decimal conversions).
The client is injected (a boto3 ``dynamodb`` client).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Final

import orjson

from core.outbox import (
    ERROR_CHARS,
    LISTED_COLUMNS,
    OutboxError,
    OutboxRow,
    OutboxStore,
    is_subjects,
    new_row,
    summarize,
)
from core.registry import Window

__all__ = ["KEEP_DAYS", "QUEUE_INDEX", "DynamoOutbox"]

#: How long messages and sightings are kept (the table's TTL on ``expires_at``).
KEEP_DAYS: Final = 30
#: The sparse index of queued messages (hash ``status``, range ``next_ms``).
QUEUE_INDEX: Final = "queue"
_NUMBERS: Final = frozenset(
    {"tier", "created_ms", "due_ms", "next_ms", "attempts", "sent_ms", "expires_at", "event_ms"}
)
_BATCH_GET: Final = 100  # BatchGetItem's limit


def _item(row: dict[str, Any]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for k, v in row.items():
        if v is None:
            continue
        if k == "message":
            out[k] = {"S": orjson.dumps(v).decode()}
        else:
            out[k] = {"N": str(int(v))} if k in _NUMBERS else {"S": str(v)}
    return out


def _value(attr: dict[str, str]) -> Any:
    if "N" in attr:
        return int(attr["N"])
    return attr.get("S")


def _plain(item: dict[str, dict[str, str]]) -> dict[str, Any]:
    return {k: _value(v) for k, v in item.items()}


class DynamoOutbox(OutboxStore):
    """The outbox in the DynamoDB table ``table`` (through ``client``)."""

    def __init__(self, client: Any, table: str) -> None:
        self.client, self.table = client, table

    def _call(self, op: str, **kwargs: Any) -> dict[str, Any]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            resp: dict[str, Any] = getattr(self.client, op)(TableName=self.table, **kwargs)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                raise
            code = exc.response.get("Error", {}).get("Code", "")
            raise OutboxError(f"the notifier's outbox table cannot be used: {code}") from exc
        except BotoCoreError as exc:
            raise OutboxError(f"the notifier's outbox table cannot be used: {type(exc).__name__}") from exc
        return resp

    def _existing(self, keys: list[str], attr: str = "key") -> dict[str, dict[str, Any]]:
        """The items of ``keys`` that exist (consistent reads), by key."""
        from botocore.exceptions import BotoCoreError, ClientError

        found: dict[str, dict[str, Any]] = {}
        for i in range(0, len(keys), _BATCH_GET):
            request: dict[str, Any] = {
                self.table: {"Keys": [{"key": {"S": k}} for k in keys[i : i + _BATCH_GET]], "ConsistentRead": True}
            }
            while request:
                try:
                    resp = self.client.batch_get_item(RequestItems=request)
                except (ClientError, BotoCoreError) as exc:
                    raise OutboxError(f"the notifier's outbox table cannot be used: {type(exc).__name__}") from exc
                for item in resp.get("Responses", {}).get(self.table, []):
                    found[item[attr]["S"]] = _plain(item)
                request = resp.get("UnprocessedKeys") or {}
        return found

    def add(self, rows: list[dict[str, Any]], now_ms: int) -> int:
        from botocore.exceptions import ClientError

        present = self._existing(list(dict.fromkeys(str(r["key"]) for r in rows)))  # most replans stop here
        expires = now_ms // 1000 + KEEP_DAYS * 86_400
        new = 0
        for r in rows:
            if str(r["key"]) in present:
                continue
            try:
                self._call(
                    "put_item",
                    Item=_item({**new_row(r, now_ms), "expires_at": expires}),
                    ConditionExpression="attribute_not_exists(#k)",
                    ExpressionAttributeNames={"#k": "key"},
                )
            except ClientError:  # the conditional put lost: another step stored this key first
                continue
            present[str(r["key"])] = {}
            new += 1
        return new

    def first_seen(self, alert_ids: list[str], now_ms: int) -> dict[str, int]:
        ids = list(dict.fromkeys(alert_ids))
        known = self._existing([f"episode#{a}" for a in ids])
        out = {k.removeprefix("episode#"): int(v["first_seen_ms"]) for k, v in known.items()}
        expires = now_ms // 1000 + KEEP_DAYS * 86_400
        for a in ids:
            if a in out:
                continue
            resp = self._call(
                "update_item",
                Key={"key": {"S": f"episode#{a}"}},
                UpdateExpression="SET first_seen_ms = if_not_exists(first_seen_ms, :now), expires_at = :exp",
                ExpressionAttributeValues={":now": {"N": str(now_ms)}, ":exp": {"N": str(expires)}},
                ReturnValues="ALL_NEW",
            )
            out[a] = int(resp["Attributes"]["first_seen_ms"]["N"])
        return out

    def get_mark(self, name: str, default: int = 0) -> int:
        resp = self._call("get_item", Key={"key": {"S": f"mark#{name}"}}, ConsistentRead=True)
        item = resp.get("Item")
        return int(item["v"]["N"]) if item else default

    def set_mark(self, name: str, value: int) -> None:
        self._call("put_item", Item={"key": {"S": f"mark#{name}"}, "v": {"N": str(int(value))}})

    def _queue(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        """Queued messages from the ``queue`` index, oldest ``next_ms`` first."""
        start: dict[str, Any] | None = None
        while True:
            page = self._call(
                "query",
                IndexName=QUEUE_INDEX,
                ExpressionAttributeNames={"#s": "status", "#n": "next_ms"},
                ScanIndexForward=True,
                **kwargs,
                **({"ExclusiveStartKey": start} if start else {}),
            )
            for item in page.get("Items", []):
                yield _plain(item)
            start = page.get("LastEvaluatedKey")
            if not start:
                return

    def due(self, now_ms: int, limit: int = 100) -> list[OutboxRow]:
        got: list[dict[str, Any]] = []
        for item in self._queue(
            KeyConditionExpression="#s = :q AND #n <= :now",
            ExpressionAttributeValues={":q": {"S": "queued"}, ":now": {"N": str(now_ms)}},
        ):
            got.append(item)
            if len(got) >= limit:
                break
        got.sort(key=lambda i: (i["next_ms"], i["key"]))
        return [
            OutboxRow(
                i["key"],
                i["alert_id"],
                i["transition"],
                i["route"],
                int(i["tier"]),
                i["channel"],
                i["address"],
                int(i["attempts"]),
                orjson.loads(i["message"]),
            )
            for i in got
        ]

    def _update(self, key: str, expression: str, values: dict[str, Any], names: dict[str, str]) -> None:
        self._call(
            "update_item",
            Key={"key": {"S": key}},
            UpdateExpression=expression,
            ConditionExpression="attribute_exists(#k)",
            ExpressionAttributeNames={"#k": "key", **names},
            **({"ExpressionAttributeValues": values} if values else {}),
        )

    def mark_attempt(self, key: str, next_ms: int) -> None:
        self._update(
            key, "SET attempts = attempts + :one, next_ms = :n", {":one": {"N": "1"}, ":n": {"N": str(next_ms)}}, {}
        )

    def mark_sent(self, key: str, now_ms: int) -> None:
        self._update(
            key, "SET #s = :sent, sent_ms = :t REMOVE #e", {":sent": {"S": "sent"}, ":t": {"N": str(now_ms)}},
            {"#s": "status", "#e": "error"},
        )  # fmt: skip

    def mark_error(self, key: str, error: str, *, failed: bool) -> None:
        values = {":e": {"S": error[:ERROR_CHARS]}}
        expression = "SET #e = :e"
        if failed:
            values[":f"] = {"S": "failed"}
            expression += ", #s = :f"
        self._update(key, expression, values, {"#e": "error", **({"#s": "status"} if failed else {})})

    def _messages(self, names: str) -> Iterator[dict[str, Any]]:
        """Every message item's ``names`` (a projection), by scan (``counts`` and ``rows`` only)."""
        start: dict[str, Any] | None = None
        attr_names = {f"#{c}": c for c in names.split(",")}
        while True:
            page = self._call(
                "scan",
                ProjectionExpression=",".join(attr_names),
                FilterExpression="attribute_exists(#status)",
                ExpressionAttributeNames=attr_names,
                **({"ExclusiveStartKey": start} if start else {}),
            )
            for item in page.get("Items", []):
                yield _plain(item)
            start = page.get("LastEvaluatedKey")
            if not start:
                return

    def counts(self, now_ms: int) -> dict[str, Any]:
        return summarize(((str(i["status"]), int(i["due_ms"])) for i in self._messages("status,due_ms")), now_ms)

    def rows(self, limit: int = 1000) -> list[dict[str, Any]]:
        items = list(self._messages(",".join((*LISTED_COLUMNS, "created_ms"))))
        items.sort(key=lambda i: (-int(i["created_ms"]), i["key"]))
        return [{c: i.get(c) for c in LISTED_COLUMNS} for i in items[:limit]]

    def erase_subject(self, subject_id: str, windows: Sequence[Window], *, dry_run: bool = False) -> int:
        mine = [
            str(i["key"])
            for i in self._messages("key,status,subject_id,device_id,event_ms,message")
            if is_subjects({**i, "message": orjson.loads(i["message"] or "null")}, subject_id, windows)
        ]
        for key in mine if not dry_run else ():
            self._call("delete_item", Key={"key": {"S": key}})
        return len(mine)
