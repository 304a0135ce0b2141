"""Commands for whoever runs the stack: ``stack``, ``live``, ``opensearch``, ``package``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from sleepstack.cli._helpers import NIGHT_HELP, utc
from sleepstack.cli.errors import UsageError
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
    from sleepstack import stack

    if args.action == "up":
        _print_services(_stack_up(args, settings))
    elif args.action == "down":
        print("stopped" if stack.stack_down(settings) else "not running")
    elif args.action == "wait":
        if not args.idle:
            raise UsageError("stack wait", "say what to wait for: --idle")
        stack.wait_idle(settings, timeout_s=args.timeout)
        print("idle: every consumer at the stream's tip, the delivery flushed")
    elif args.action == "stage":
        run = stack.request_stage(settings, args.night)
        print(" ".join(run.get("said") or [f"batch run exited {run.get('exit')}"]))
        return 0 if run.get("exit") == 0 else 1
    else:
        status = stack.stack_status(settings)
        if args.json:
            print(json.dumps(status, indent=2, sort_keys=True))
        elif not status["running"]:
            print("not running")
        else:
            _print_services(status)
    return 0


def _stack_up(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    import dataclasses

    from sleepstack import stack

    if args.live_store:
        settings = dataclasses.replace(settings, live_store=args.live_store)
    if args.port:
        from local.kinesis import KinesaliteServer, StackError

        try:
            KinesaliteServer(settings.paths).keep_port(args.port)
        except StackError as exc:
            raise UsageError("--port", str(exc)) from None
    return stack.stack_up(settings)


def _print_services(status: dict[str, Any]) -> None:
    for name, svc in status["services"].items():
        where = f" at {svc['url']}" if svc.get("url") else ""
        where += f" ({svc['health']})" if svc.get("health") else ""
        print(f"{name:<12} {svc.get('state', '?'):<12} pid {svc.get('pid')}  restarts {svc.get('restarts', 0)}{where}")
    for name, lag in status.get("lag", {}).items():
        print(f"{name:<12} iterator age {lag['iterator_age_ms']} ms, buffered {lag['buffered_records']}")


def _cmd_reconcile(args: argparse.Namespace, settings: Settings) -> int:
    from sleepstack.stack import reconcile

    counts = reconcile(settings)
    if args.json:
        print(json.dumps(counts))
    else:
        print("reconciled: " + " ".join(f"{k}={v}" for k, v in counts.items()))
    return 0 if counts["lost"] == 0 and counts["duplicated"] == 0 else 1


def _cmd_live(args: argparse.Namespace, settings: Settings) -> int:
    import re

    from core.errors import NoDataError
    from serving.web.api import SUBJECT_PATTERN
    from sleepstack.stack import stack_status
    from sleepstack.wiring import live_queries

    if not re.match(SUBJECT_PATTERN, args.subject):
        raise UsageError("--subject", f"{args.subject!r} is not a subject id (letters, digits, ._:-)")
    if not settings.opensearch_url:
        running = any(svc.get("state") == "running" for svc in stack_status(settings)["services"].values())
        if not settings.paths.live_db.is_file():
            raise NoDataError(
                f"no live store in {settings.home}: start the stack (sleepstack stack up) and collect first"
            )
        if not running:
            print(
                f"the local stack in {settings.home} is not running: these are the last vitals it indexed",
                file=sys.stderr,  # stdout stays the figures (--json parses)
            )
    store = live_queries(settings)
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

    if args.action == "install":
        from local.opensearch_node import DIST_COORDINATES, install_dist
        from sleepstack.wiring import opensearch_dist

        dist = install_dist(opensearch_dist(settings))
        print(f"OpenSearch {DIST_COORDINATES} (SHA-256 checked) at {dist}")
        return 0
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
    s = sub.add_parser("stack", help="the always-on local stack: up, down, status, wait --idle, stage")
    acts = s.add_subparsers(dest="action", required=True, metavar="ACTION")
    a = acts.add_parser("up", help="start the supervisor and every service; returns once each has reported")
    a.add_argument("--port", type=_port, default=0, help="the stream's port, kept for this home (0: any free)")
    a.add_argument(
        "--live-store",
        choices=["embedded", "opensearch"],
        help="the live store (default $SLEEPSTACK_LIVE_STORE or embedded); opensearch: a local node",
    )
    acts.add_parser("down", help="stop the services gracefully: consumers checkpoint, the delivery flushes")
    a = acts.add_parser("status", help="each service's state, restarts and figures, each consumer's lag")
    a.add_argument("--json", action="store_true", help="one JSON object")
    a = acts.add_parser("wait", help="block until the stack is idle")
    a.add_argument("--idle", action="store_true", help="until every consumer is at the tip and the delivery flushed")
    a.add_argument("--timeout", type=float, default=300.0, help="give up after this many seconds")
    a = acts.add_parser("stage", help="have the stack's scheduler stage nights now")
    a.add_argument("--night", required=True, help=NIGHT_HELP)
    s.set_defaults(func=_cmd_stack)

    s = sub.add_parser("reconcile", help="counts at every hop for what was collected into this home")
    s.add_argument("--json", action="store_true", help="one JSON object")
    s.set_defaults(func=_cmd_reconcile)

    s = sub.add_parser("live", help="a subject's latest vitals and open alerts from the live store")
    s.add_argument("--subject", required=True, help="the subject's pseudonymous id")
    s.add_argument("--json", action="store_true", help="one JSON object")
    s.set_defaults(func=_cmd_live)

    s = sub.add_parser(
        "opensearch",
        help="set up a cluster (templates, policies, dashboards), export the dashboards, or install a local node",
    )
    acts = s.add_subparsers(dest="action", required=True, metavar="ACTION")
    a = acts.add_parser("setup", help="index templates, ISM policies, roles and dashboards on a cluster")
    a.add_argument("--url", help="OpenSearch endpoint (default $OPENSEARCH_URL)")
    a.add_argument("--dashboards-url", help="OpenSearch Dashboards URL (default $OPENSEARCH_DASHBOARDS_URL)")
    a.add_argument(
        "--retention-days", action="append", default=[], help="KIND=DAYS (vitals, alerts, samples; repeatable)"
    )
    a.add_argument("--replicas", type=int, default=1, help="replicas per index (0 on a single node)")
    a.add_argument(
        "--writer-role-arn",
        action="append",
        default=[],
        help="IAM role to map to the index-writer role (fine-grained access control; the speed-layer role)",
    )
    a = acts.add_parser("export", help="write the OpenSearch Dashboards saved objects (NDJSON)")
    a.add_argument("--out", default="sleepstack-dashboards.ndjson", help="NDJSON file to write")
    acts.add_parser("install", help="fetch and unpack a local OpenSearch node (Maven Central, SHA-256 checked)")
    s.set_defaults(func=_cmd_opensearch)

    s = sub.add_parser("package", help="build the Lambda zip and the Glue wheel and script (build/)")
    s.add_argument("--out", default="build", help="output directory")
    s.add_argument("--version", help="artefact version (default: the installed sleepstack's)")
    s.set_defaults(func=_cmd_package)
