"""OpenSearch index layout of the live store: names, mappings, templates and lifecycle.

Every mapping is rendered from the core's field definitions (one definition of each
document type): strings are ``keyword``, numbers their exact width, ``*_ms`` instants
are ``date`` (``epoch_millis``) so Dashboards can use them as time fields, and
``dynamic: strict`` rejects any field the definition does not name.

Indices are daily, named by each document's own time (see :mod:`speed_layer.store`);
the daily index plays the part of a rollover (one bounded index per day) while keeping
replays idempotent. The ISM policy moves indices from ``hot`` to ``warm`` (force-merged
to one segment, one replica) after two days and deletes them after the retention period.
Warm indices stay writable: a replay from the stream's retention may still overwrite.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

from core.contract import FieldSpec, FieldType
from core.live.alerts import ALERT_FIELDS
from core.live.device_health import STATUS_FIELDS
from core.signals.vitals import EPOCH_VITALS_FIELDS, STRAP_SAMPLE_FIELDS
from speed_layer.processing import DOC_KINDS, TIME_FIELD

__all__ = [
    "FIELDS",
    "RETENTION_DAYS",
    "index_for",
    "index_pattern",
    "index_template",
    "ism_policy",
    "mapping",
    "policy_id",
    "template_name",
]

#: The field definitions behind each document kind.
FIELDS: Final[dict[str, tuple[FieldSpec, ...]]] = {
    "vitals": EPOCH_VITALS_FIELDS,
    "alerts": ALERT_FIELDS,
    "samples": STRAP_SAMPLE_FIELDS,
    "status": STATUS_FIELDS,
}
#: Default retention (days) per kind; the per-second strap trace is kept shortest.
RETENTION_DAYS: Final = {"vitals": 90, "alerts": 365, "samples": 14, "status": 30}

_OS_TYPES: Final = {
    FieldType.STRING: "keyword",
    FieldType.INT16: "short",
    FieldType.INT32: "integer",
    FieldType.INT64: "long",
    FieldType.FLOAT64: "double",
    FieldType.BOOL: "boolean",
    FieldType.LIST_FLOAT64: "double",
    FieldType.LIST_INT16: "short",
    FieldType.LIST_INT64: "long",
}


def index_for(prefix: str, kind: str, doc: dict[str, Any]) -> str:
    """Daily index of a document, by its own time field (UTC day)."""
    day = datetime.fromtimestamp(int(doc[TIME_FIELD[kind]]) / 1000, tz=UTC)
    return f"{prefix}-{kind}-{day:%Y.%m.%d}"


def index_pattern(prefix: str, kind: str) -> str:
    return f"{prefix}-{kind}-*"


def template_name(prefix: str, kind: str) -> str:
    return f"{prefix}-{kind}"


def policy_id(prefix: str, kind: str) -> str:
    return f"{prefix}-{kind}-lifecycle"


def mapping(kind: str) -> dict[str, Any]:
    props: dict[str, Any] = {}
    for f in FIELDS[kind]:
        if f.type is FieldType.INT64 and f.name.endswith("_ms"):
            props[f.name] = {"type": "date", "format": "epoch_millis"}
        else:
            props[f.name] = {"type": _OS_TYPES[f.type]}
    return {"dynamic": "strict", "properties": props}


def index_template(prefix: str, kind: str, *, shards: int = 1, replicas: int = 1) -> dict[str, Any]:
    """Composable index template (``PUT _index_template/<name>``) for a kind's daily indices."""
    if kind not in DOC_KINDS:
        raise ValueError(f"unknown document kind {kind!r}")
    return {
        "index_patterns": [index_pattern(prefix, kind)],
        "priority": 100,
        "template": {
            "settings": {
                "number_of_shards": shards,
                "number_of_replicas": replicas,
                "refresh_interval": "1s",
            },
            "mappings": mapping(kind),
        },
        "_meta": {"managed_by": "sleepstack", "kind": kind},
    }


def ism_policy(prefix: str, kind: str, retention_days: int | None = None) -> dict[str, Any]:
    """ISM policy (``PUT _plugins/_ism/policies/<id>``): hot, warm after 2 days, delete."""
    days = RETENTION_DAYS[kind] if retention_days is None else retention_days
    if days < 3:
        raise ValueError(f"retention of {days} days is shorter than the 2-day hot phase")
    return {
        "policy": {
            "description": f"sleepstack {kind}: hot 2 d, warm (1 segment), delete after {days} d",
            "default_state": "hot",
            "states": [
                {
                    "name": "hot",
                    "actions": [],
                    "transitions": [{"state_name": "warm", "conditions": {"min_index_age": "2d"}}],
                },
                {
                    "name": "warm",
                    "actions": [{"force_merge": {"max_num_segments": 1}}, {"replica_count": {"number_of_replicas": 1}}],
                    "transitions": [{"state_name": "delete", "conditions": {"min_index_age": f"{days}d"}}],
                },
                {"name": "delete", "actions": [{"delete": {}}], "transitions": []},
            ],
            "ism_template": [{"index_patterns": [index_pattern(prefix, kind)], "priority": 100}],
        }
    }
