"""How a wire record lands in the raw lake: one row, one partition, from either contract version.

On AWS, Firehose de-aggregates the KPL records of its Kinesis source and passes each user
record to a transformation Lambda (:func:`firehose_transform`, wired in
``sleepstack.lambda_entry.firehose_transform_handler``) that decodes it (v1 or v2) and
returns its lake row as one JSON line for the Parquet conversion (OpenX JSON SerDe against
the Glue raw table), with its dynamic-partitioning key ``dt`` (``!{partitionKeyFromLambda:dt}``).
A v2 bed frame's packed samples thus become the same ``array<smallint>`` column a v1
frame's JSON array did. A record that breaks the contract is returned as
``ProcessingFailed`` and Firehose writes it under the error prefix. The local delivery
(``local.firehose``) lands rows through the same :func:`partition_keys`.
"""

from __future__ import annotations

import base64
import json
import logging
from datetime import UTC, datetime
from typing import Any

from core.contract import Record, from_wire, to_row
from core.errors import ContractError

__all__ = ["firehose_transform", "partition_keys"]

log = logging.getLogger(__name__)


def partition_keys(rec: Record) -> dict[str, str]:
    """The dynamic-partitioning keys of a record: ``dt`` (UTC event date), ``kind``, ``subject_id``."""
    dt = datetime.fromtimestamp(rec.event_time_ms / 1000, tz=UTC).strftime("%Y-%m-%d")
    return {"dt": dt, "kind": rec.kind, "subject_id": rec.subject_id}


def firehose_transform(event: dict[str, Any]) -> dict[str, Any]:
    """A Firehose data-transformation response: each record's lake row, or ProcessingFailed."""
    out = []
    failed = 0
    for r in event.get("records", []):
        try:
            rec = from_wire(base64.b64decode(r["data"]))
        except ContractError:
            failed += 1
            out.append({"recordId": r["recordId"], "result": "ProcessingFailed", "data": r["data"]})
            continue
        line = json.dumps(to_row(rec), separators=(",", ":"), allow_nan=False).encode() + b"\n"
        out.append(
            {
                "recordId": r["recordId"],
                "result": "Ok",
                "data": base64.b64encode(line).decode(),
                "metadata": {"partitionKeys": {"dt": partition_keys(rec)["dt"]}},
            }
        )
    if failed:
        log.warning("%d of %d records break the contract; Firehose writes them to the error prefix", failed, len(out))
    return {"records": out}
