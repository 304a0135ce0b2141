"""OpenSearch Dashboards saved objects (NDJSON) for the live views.

* index patterns over the daily vitals, alerts and strap-trace indices (time fields
  ``epoch_start_ms``, ``start_ms``, ``event_time_ms``);
* "sleepstack — live vitals": heart rate, breathing rate, movement and in-bed presence
  per subject over time, strap HRV (RMSSD), and the per-second strap heart rate;
* "sleepstack — alerts": open alerts (saved search), alert counts by kind, and every
  alert with its start and end.

Objects have fixed ids, so importing them again with ``overwrite=true`` updates them in
place. :func:`saved_objects_ndjson` is what ``sleepstack opensearch setup`` imports and
``sleepstack opensearch export`` writes.
"""

from __future__ import annotations

import json
from typing import Any, Final

from speed_layer.indices import index_pattern
from speed_layer.processing import TIME_FIELD

__all__ = ["DASHBOARD_IDS", "saved_objects", "saved_objects_ndjson"]

DASHBOARD_IDS: Final = ("sleepstack-live-vitals", "sleepstack-alerts")
_SEARCH_REF: Final = "kibanaSavedObjectMeta.searchSourceJSON.index"


def _pattern_id(kind: str) -> str:
    return f"sleepstack-{kind}-pattern"


def _index_pattern(prefix: str, kind: str) -> dict[str, Any]:
    return {
        "type": "index-pattern",
        "id": _pattern_id(kind),
        "attributes": {"title": index_pattern(prefix, kind), "timeFieldName": TIME_FIELD[kind]},
        "references": [],
    }


def _search_source(query: str = "") -> str:
    return json.dumps({"indexRefName": _SEARCH_REF, "query": {"query": query, "language": "kuery"}, "filter": []})


def _line(vis_id: str, title: str, kind: str, field: str, agg: str = "avg") -> dict[str, Any]:
    time_field = TIME_FIELD[kind]
    vis_state = {
        "title": title,
        "type": "line",
        "params": {
            "type": "line",
            "addTooltip": True,
            "addLegend": True,
            "legendPosition": "right",
            "times": [],
            "grid": {"categoryLines": False},
            "categoryAxes": [
                {
                    "id": "CategoryAxis-1",
                    "type": "category",
                    "position": "bottom",
                    "show": True,
                    "labels": {"show": True},
                }
            ],
            "valueAxes": [
                {
                    "id": "ValueAxis-1",
                    "name": "LeftAxis-1",
                    "type": "value",
                    "position": "left",
                    "show": True,
                    "scale": {"type": "linear", "mode": "normal"},
                    "labels": {"show": True},
                    "title": {"text": title},
                }
            ],
            "seriesParams": [
                {
                    "show": True,
                    "type": "line",
                    "mode": "normal",
                    "data": {"label": title, "id": "1"},
                    "valueAxis": "ValueAxis-1",
                    "drawLinesBetweenPoints": True,
                    "showCircles": False,
                }
            ],
        },
        "aggs": [
            {"id": "1", "enabled": True, "type": agg, "schema": "metric", "params": {"field": field}},
            {
                "id": "2",
                "enabled": True,
                "type": "date_histogram",
                "schema": "segment",
                "params": {"field": time_field, "interval": "auto", "min_doc_count": 1, "extended_bounds": {}},
            },
            {
                "id": "3",
                "enabled": True,
                "type": "terms",
                "schema": "group",
                "params": {"field": "subject_id", "size": 20, "order": "asc", "orderBy": "_key"},
            },
        ],
    }
    return _vis(vis_id, title, kind, vis_state)


def _vis(vis_id: str, title: str, kind: str, vis_state: dict[str, Any], query: str = "") -> dict[str, Any]:
    return {
        "type": "visualization",
        "id": vis_id,
        "attributes": {
            "title": title,
            "visState": json.dumps(vis_state),
            "uiStateJSON": "{}",
            "description": "",
            "version": 1,
            "kibanaSavedObjectMeta": {"searchSourceJSON": _search_source(query)},
        },
        "references": [{"name": _SEARCH_REF, "type": "index-pattern", "id": _pattern_id(kind)}],
    }


def _alerts_by_kind() -> dict[str, Any]:
    vis_state = {
        "title": "Alerts by kind",
        "type": "table",
        "params": {"perPage": 10, "showPartialRows": False, "showMetricsAtAllLevels": False},
        "aggs": [
            {"id": "1", "enabled": True, "type": "count", "schema": "metric", "params": {}},
            {
                "id": "2",
                "enabled": True,
                "type": "terms",
                "schema": "bucket",
                "params": {"field": "kind", "size": 10, "order": "desc", "orderBy": "1"},
            },
            {
                "id": "3",
                "enabled": True,
                "type": "terms",
                "schema": "bucket",
                "params": {"field": "status", "size": 2, "order": "desc", "orderBy": "1"},
            },
        ],
    }
    return _vis("sleepstack-alerts-by-kind", "Alerts by kind", "alerts", vis_state)


def _search(search_id: str, title: str, kind: str, columns: list[str], query: str) -> dict[str, Any]:
    return {
        "type": "search",
        "id": search_id,
        "attributes": {
            "title": title,
            "columns": columns,
            "sort": [[TIME_FIELD[kind], "desc"]],
            "kibanaSavedObjectMeta": {"searchSourceJSON": _search_source(query)},
        },
        "references": [{"name": _SEARCH_REF, "type": "index-pattern", "id": _pattern_id(kind)}],
    }


def _dashboard(dash_id: str, title: str, panels: list[tuple[str, str]], time_from: str) -> dict[str, Any]:
    panel_json = []
    refs = []
    for i, (ptype, pid) in enumerate(panels):
        x, y = (i % 2) * 24, (i // 2) * 15
        panel_json.append(
            {
                "panelIndex": str(i + 1),
                "gridData": {"x": x, "y": y, "w": 24, "h": 15, "i": str(i + 1)},
                "version": "2.11.0",
                "panelRefName": f"panel_{i}",
                "embeddableConfig": {},
            }
        )
        refs.append({"name": f"panel_{i}", "type": ptype, "id": pid})
    return {
        "type": "dashboard",
        "id": dash_id,
        "attributes": {
            "title": title,
            "description": "",
            "panelsJSON": json.dumps(panel_json),
            "optionsJSON": json.dumps({"hidePanelTitles": False, "useMargins": True}),
            "timeRestore": True,
            "timeFrom": time_from,
            "timeTo": "now",
            "refreshInterval": {"pause": False, "value": 10000},
            "version": 1,
            "kibanaSavedObjectMeta": {
                "searchSourceJSON": json.dumps({"query": {"query": "", "language": "kuery"}, "filter": []})
            },
        },
        "references": refs,
    }


def saved_objects(prefix: str = "sleepstack") -> list[dict[str, Any]]:
    """Every saved object, referenced ones before those that reference them."""
    patterns = [_index_pattern(prefix, k) for k in ("vitals", "alerts", "samples")]
    vis = [
        _line("sleepstack-hr", "Heart rate (bpm)", "vitals", "hr_bpm"),
        _line("sleepstack-br", "Breathing rate (/min)", "vitals", "br_per_min"),
        _line("sleepstack-movement", "Movement index", "vitals", "movement", agg="max"),
        _line("sleepstack-rmssd", "RMSSD (ms, strap)", "vitals", "rmssd_ms"),
        _line("sleepstack-strap-hr", "Strap heart rate, per second (bpm)", "samples", "hr_bpm"),
        _alerts_by_kind(),
    ]
    searches = [
        _search(
            "sleepstack-open-alerts",
            "Open alerts",
            "alerts",
            ["subject_id", "kind", "start_ms", "duration_s", "value", "device_id"],
            "status:open",
        ),
        _search(
            "sleepstack-all-alerts",
            "All alerts",
            "alerts",
            ["subject_id", "kind", "status", "start_ms", "end_ms", "duration_s", "value"],
            "",
        ),
        _search(
            "sleepstack-presence",
            "In-bed presence by epoch",
            "vitals",
            ["subject_id", "presence", "hr_bpm", "br_per_min"],
            "source:bed",
        ),
    ]
    dashboards = [
        _dashboard(
            DASHBOARD_IDS[0],
            "sleepstack — live vitals",
            [
                ("visualization", "sleepstack-hr"),
                ("visualization", "sleepstack-br"),
                ("visualization", "sleepstack-movement"),
                ("visualization", "sleepstack-rmssd"),
                ("visualization", "sleepstack-strap-hr"),
                ("search", "sleepstack-presence"),
            ],
            "now-12h",
        ),
        _dashboard(
            DASHBOARD_IDS[1],
            "sleepstack — alerts",
            [
                ("search", "sleepstack-open-alerts"),
                ("visualization", "sleepstack-alerts-by-kind"),
                ("search", "sleepstack-all-alerts"),
            ],
            "now-24h",
        ),
    ]
    return patterns + vis + searches + dashboards


def saved_objects_ndjson(prefix: str = "sleepstack") -> str:
    return "".join(json.dumps(o, sort_keys=True) + "\n" for o in saved_objects(prefix))
