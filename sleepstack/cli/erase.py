"""``sleepstack erase --subject S --yes``: a subject's right to erasure (docs/erasure.md)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import time
from typing import Any

from sleepstack.cli._helpers import operator, utc
from sleepstack.cli.errors import UsageError
from sleepstack.settings import Settings

__all__ = ["register"]

_ID = re.compile(r"^[A-Za-z0-9:_.-]{1,64}$")
_PLACES = {
    "registry_subject": "registry: subject",
    "registry_assignments": "registry: assignments",
    "registry_history_redacted": "registry: history entries redacted",
    "registry_history": "registry: history entries naming it",
    "ledger_ids": "speed layer's ledger: record ids",
    "live_store": "live store: documents",
    "live_documents": "live store: documents",
    "live_store_opensearch": "live store (OpenSearch): documents",
    "live_documents_opensearch": "live store (OpenSearch): documents",
    "device_states": "device state: devices",
    "device_state": "device state: devices",
    "spool_notifications": "spool: notifications",
    "spool_open_frames": "spool: open frames",
    "spool_outbox": "spool: outbox records",
    "spool_quarantine": "spool: quarantined payloads",
    "lake_rows": "lake: rows",
    "lake_versions_deleted": "lake: S3 versions deleted",
    "s3_lake_rows": "S3 lake: rows (every version)",
    "s3_dead_letters": "S3 dead letters (every version)",
    "dead_letters": "dead letters",
    "exports": "exports",
    "export_index": "export index: exports",
    "export_files": "exports: files",
}


def _eraser(settings: Settings) -> Any:
    from access.audit import AuditLog
    from sleepstack import erase, wiring
    from speed_layer.store import OpenSearchLiveStore

    registry = (
        wiring.registry(settings, create=False)
        if settings.target == "local" and settings.paths.registry_db.exists()
        else None
    )

    def audit(key: str, by: str, at_ms: int) -> None:
        log = AuditLog(settings.paths.audit_log)
        if log.path.exists() and any(key in e.get("subjects", []) for e in map(json.loads, log.path.open())):
            return  # appended before a crash
        log.append(
            at_ms=at_ms,
            user=by,
            role="admin",
            via="cli",
            method="DELETE",
            route="sleepstack erase",
            subjects=[key],
            outcome=200,
        )

    if settings.target == "aws":
        return erase.Eraser(settings.paths, wiring.aws_erasure_stores(settings), audit=audit)
    live = wiring.live_store(settings) if settings.opensearch_url else None  # a stack on an OpenSearch node
    opensearch = live if isinstance(live, OpenSearchLiveStore) else None
    return erase.Eraser(settings.paths, erase.LocalStores(settings.paths, lambda: registry, opensearch), audit=audit)


def _described(hits: dict[str, int]) -> str:
    return ", ".join(f"{_PLACES.get(k, k)} {v}" for k, v in hits.items() if v) or "nothing"


def _cmd_erase(args: argparse.Namespace, settings: Settings) -> int:
    if not _ID.match(args.subject):
        raise UsageError("--subject", f"{args.subject!r} is not a subject id (1-64 of letters, digits, :_.-)")
    job = _eraser(settings)
    done = job.finished(args.subject)
    if done is None:
        plan = job.plan(args.subject)
        if not plan.found and not job.journal_path(args.subject).exists():
            raise UsageError("--subject", f"{args.subject!r} is not registered and no store holds data of it")
        if not args.yes:
            raise UsageError(
                "--yes",
                f"erasing {args.subject} cannot be undone; it would remove {_described(plan.hits)}"
                " (run again with --yes)",
            )
    out = job.run(args.subject, why=args.why, by=operator(args.by), now_ms=int(time.time() * 1000))
    j = out.journal
    if args.json:
        print(json.dumps({**dataclasses.asdict(j), "resumed": out.resumed, "already": out.already, "did": out.did}))
        return 0
    if out.already:
        print(f"already done: {args.subject} was erased at {utc(j.finished_ms or 0)} by {j.by}; nothing to do")
        return 0
    print(f"{'resumed and finished erasing' if out.resumed else 'erased'} {args.subject} (tombstone {j.key})")
    removed = {k: v for k, v in j.figures.items() if isinstance(v, int) and not isinstance(v, bool)}
    print(f"  removed: {_described(removed)}")
    scan = j.figures.get("scan", {})
    print(f"  scan of every store: {sum(scan.values())} found ({len(scan)} places: {', '.join(scan)})")
    for k, v in j.figures.get("kept", {}).items():
        print(f"  kept on purpose: {k} {v} (the access audit is append-only; docs/erasure.md)")
    return 0


def register(sub: Any) -> None:
    s = sub.add_parser(
        "erase",
        help="erase a subject from every store, leave a tombstone, and prove it by a scan (docs/erasure.md)",
        description=(
            "Erase a subject: every store of the stack (local, or AWS with SLEEPSTACK_TARGET=aws),"
            " then a scan of them all. Killed, run it again."
        ),
    )
    s.add_argument("--subject", required=True, help="the subject's pseudonymous id (registered or not)")
    s.add_argument("--yes", action="store_true", help="do it (without: say what would be erased, exit 2)")
    s.add_argument("--why", default="", help="a note kept in the tombstone (the id is redacted from it)")
    s.add_argument("--by", help="who erases, kept in the tombstone (default: the OS user)")
    s.add_argument("--json", action="store_true", help="the operation's journal as one JSON object")
    s.set_defaults(func=_cmd_erase)
