"""``sleepstack alerts routes check`` and ``alerts outbox``: alert delivery (docs/alerts.md)."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sleepstack.cli.errors import UsageError
from sleepstack.settings import Settings

__all__ = ["register"]


def _cmd_routes_check(args: argparse.Namespace, settings: Settings) -> int:
    from sleepstack.notify.routes_file import load_routes

    routes = load_routes(Path(args.file))
    for r in routes:
        tiers = ", ".join(
            f"tier {k} ({'at once' if not t.escalate_after_min else f'after {t.escalate_after_min:g} min'}): "
            + " ".join(x.ident for x in t.recipients)
            for k, t in enumerate(r.tiers)
        )
        match = " ".join(
            f"{name}={','.join(sorted(v))}"
            for name, v in (("groups", r.groups), ("kinds", r.kinds), ("severities", r.severities))
            if v
        )
        match = " ".join(x for x in (match, f"category={r.category}" if r.category else "") if x) or "every alert"
        print(f"{r.name}: {match}; {tiers}")
    print(f"{args.file}: {len(routes)} routes, valid")
    return 0


def _cmd_outbox(args: argparse.Namespace, settings: Settings) -> int:
    if args.limit < 1:
        raise UsageError("--limit", f"must be at least 1, not {args.limit}")
    from local.outbox import Outbox

    path = settings.paths.outbox_db
    if not path.exists():
        raise UsageError("alerts outbox", f"no outbox at {path}: the notifier has not run in this home")
    outbox = Outbox(path)
    now = int(datetime.now(UTC).timestamp() * 1000)
    counts, rows = outbox.counts(now), outbox.rows(args.limit)
    if args.json:
        print(json.dumps({"counts": counts, "rows": rows}))
        return 0
    print(" ".join(f"{k}={v}" for k, v in counts.items()))
    for r in rows:
        at = datetime.fromtimestamp((r["sent_ms"] or r["due_ms"]) / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        err = f" error={r['error']}" if r["error"] else ""
        print(f"{at} {r['status']:6} {r['transition']:5} tier {r['tier']} {r['route']} {r['channel']} key={r['key']}"
              f" tries={r['attempts']}{err}")  # fmt: skip
    return 0


def register(acts: Any) -> None:
    """Add ``routes check`` and ``outbox`` to the ``alerts`` group's subparsers ``acts``."""
    routes = acts.add_parser("routes", help="the routes file (SLEEPSTACK_ALERT_ROUTES)")
    r_acts = routes.add_subparsers(dest="routes_action", required=True, metavar="ACTION")
    c = r_acts.add_parser("check", help="validate a routes file and print its routes (exit 2 naming the bad line)")
    c.add_argument("file", help="the routes file (YAML)")
    c.set_defaults(func=_cmd_routes_check)
    o = acts.add_parser("outbox", help="the notifier's messages: queued, sent, failed (no message bodies)")
    o.add_argument("--limit", type=int, default=50, help="newest rows to list (default 50)")
    o.add_argument("--json", action="store_true", help="one JSON object: counts and rows")
    o.set_defaults(func=_cmd_outbox)
