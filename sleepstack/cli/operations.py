"""Commands for whoever runs the stack: ``stack``, ``live``, ``opensearch``, ``package``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from core.errors import UsageError
from sleepstack.cli._helpers import utc
from sleepstack.settings import Settings

__all__ = ["register"]

_LIVE_FIELDS = ("hr_bpm", "br_per_min", "movement", "presence", "rmssd_ms", "sdnn_ms", "complete")


def _port(text: str) -> int:
    """A TCP port for argparse: 0 (any free port) to 65535."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port (0 for any free one, or 1-65535)")
    return port


def _cmd_stack(args: argparse.Namespace, settings: Settings) -> int:
    from local.kinesis import LocalStack

    stack = LocalStack(settings.home)
    if args.action == "up":
        print(f"kinesalite listening at {stack.up(port=args.port, environment=settings.environment)}")
    elif args.action == "down":
        print("stopped" if stack.down() else "not running")
    else:
        state = stack.state()
        print(f"running at http://127.0.0.1:{state['port']}" if state else "not running")
    return 0


def _cmd_live(args: argparse.Namespace, settings: Settings) -> int:
    from sleepstack.wiring import live_store

    store = live_store(settings)
    vitals = store.latest("vitals", args.subject, n=4)
    figures = {
        "subject_id": args.subject,
        "latest_vitals": {d["source"]: d for d in reversed(vitals)},
        "latest_strap_hr": next(iter(store.latest("samples", args.subject)), None),
        "open_alerts": store.open_alerts(args.subject),
    }
    if args.json:
        print(json.dumps(figures, indent=2, sort_keys=True))
        return 0
    if not vitals:
        print(f"no live vitals for subject {args.subject!r}")
        return 1
    for source, d in figures["latest_vitals"].items():
        shown = {k: d.get(k) for k in _LIVE_FIELDS if d.get(k) is not None}
        print(f"{source:>5} epoch {utc(d['epoch_start_ms'])}: " + "  ".join(f"{k}={v}" for k, v in shown.items()))
    alerts = figures["open_alerts"]
    print(f"open alerts: {len(alerts)}")
    for a in alerts:
        print(f"  {a['kind']:<16} since {utc(a['start_ms'])} ({a['duration_s']:.0f} s so far) value={a['value']}")
    return 0


def _retention(items: list[str]) -> dict[str, int]:
    from speed_layer.processing import DOC_KINDS

    out = {}
    for item in items:
        kind, _, days = item.partition("=")
        if kind not in DOC_KINDS or not days.isdigit():
            raise UsageError("--retention-days", f"{item!r} is not KIND=DAYS with KIND one of {', '.join(DOC_KINDS)}")
        if int(days) < 3:
            raise UsageError("--retention-days", f"{item!r}: keep at least 3 days (2 of them hot)")
        out[kind] = int(days)
    return out


def _cmd_opensearch(args: argparse.Namespace, settings: Settings) -> int:
    from speed_layer.dashboards import saved_objects_ndjson

    if args.action == "export":
        out = Path(args.out)
        out.write_text(saved_objects_ndjson())
        print(f"wrote OpenSearch Dashboards saved objects to {out}")
        return 0
    from sleepstack.wiring import opensearch_for
    from speed_layer.opensearch_setup import install

    url = args.url or settings.opensearch_url
    if not url:
        raise UsageError("--url", "no OpenSearch endpoint: pass --url or set OPENSEARCH_URL")
    retention = _retention(args.retention_days)
    client, post = opensearch_for(settings, url)
    report = install(
        client,
        retention_days=retention,
        replicas=args.replicas,
        dashboards_url=args.dashboards_url or settings.opensearch_dashboards_url,
        http_post=post,
        writer_arns=tuple(args.writer_role_arn),
    )
    print(report.summary())
    return 0


def _cmd_package(args: argparse.Namespace, settings: Settings) -> int:
    from importlib.metadata import version

    from sleepstack.package import package_all, source_root

    report = package_all(source_root(), Path(args.out), args.version or version("sleepstack"))
    print(report.summary())
    return 0


def register(sub: Any) -> None:
    s = sub.add_parser("stack", help="start/stop the local embedded stack")
    s.add_argument("action", choices=["up", "down", "status"])
    s.add_argument("--port", type=_port, default=0, help="kinesalite port (0: any free port)")
    s.set_defaults(func=_cmd_stack)

    s = sub.add_parser("live", help="a subject's latest vitals and open alerts from the live store")
    s.add_argument("--subject", required=True)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=_cmd_live)

    s = sub.add_parser("opensearch", help="install (or export) the OpenSearch templates, policies and dashboards")
    s.add_argument("action", choices=["setup", "export"])
    s.add_argument("--url", help="OpenSearch endpoint (default $OPENSEARCH_URL)")
    s.add_argument("--dashboards-url", help="OpenSearch Dashboards URL (default $OPENSEARCH_DASHBOARDS_URL)")
    s.add_argument("--retention-days", action="append", default=[], help="KIND=DAYS (vitals, alerts, samples)")
    s.add_argument("--replicas", type=int, default=1)
    s.add_argument(
        "--writer-role-arn",
        action="append",
        default=[],
        help="IAM role to map to the index-writer role (fine-grained access control; the speed-layer role)",
    )
    s.add_argument("--out", default="sleepstack-dashboards.ndjson", help="export: NDJSON file to write")
    s.set_defaults(func=_cmd_opensearch)

    s = sub.add_parser("package", help="build the Lambda zip and the Glue wheel and script (build/)")
    s.add_argument("--out", default="build", help="output directory")
    s.add_argument("--version", help="artefact version (default: the installed sleepstack's)")
    s.set_defaults(func=_cmd_package)
