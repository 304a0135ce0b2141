"""Commands for the people who use the dashboard, and for the audit of what they saw.

``sleepstack users add NAME --role ROLE --group GROUP`` creates an account and prints its
one-time password (the first admin comes from here: ``--role admin --group '*'``);
``users list|disable|enable|reset``; ``users token NAME --days N`` issues an API token
(printed once, stored hashed), ``users tokens NAME`` lists them, ``users revoke NAME ID``
revokes one. ``sleepstack audit [--subject S] [--user U] [--json]`` answers "who looked at
this patient"; ``audit verify`` checks the hash chain (exit 1 if it is broken); ``audit ship
--bucket B`` copies new entries to the write-once S3 bucket of the template.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from access.roles import Role
from sleepstack import wiring
from sleepstack.cli._helpers import utc
from sleepstack.cli.errors import UsageError
from sleepstack.settings import Settings

__all__ = ["register"]


def _now() -> int:
    return int(time.time() * 1000)


def _cmd_users(args: argparse.Namespace, settings: Settings) -> int:
    from access.roles import AccessError

    writes = args.action in ("add", "disable", "enable", "reset", "token", "revoke")
    store = wiring.accounts(settings, create=args.action == "add" or (writes and settings.paths.accounts_db.exists()))
    try:
        return _users(args, store)
    except AccessError as exc:
        raise UsageError(f"--{exc.what}" if exc.what in ("role", "group", "days") else exc.what, exc.reason) from None


def _users(args: argparse.Namespace, store: Any) -> int:
    if args.action == "add":
        user, password = store.add_user(args.name, args.role, args.group or [], now_ms=_now())
        print(f"created {user.name} ({user.role}; groups {', '.join(user.groups)})")
        print(f"one-time password (shown once; `users reset {user.name}` makes a new one): {password}")
    elif args.action == "list":
        rows = [u.to_dict() for u in store.users()]
        if args.json:
            print(json.dumps(rows))
        for u in [] if args.json else rows:
            state = "disabled" if u["disabled"] else "active"
            print(f"{u['name']}  {u['role']}  groups={','.join(u['groups'])}  {state}  since {utc(u['created_ms'])}")
        if not rows and not args.json:
            print("no users yet: sleepstack users add NAME --role admin --group '*'")
    elif args.action in ("disable", "enable"):
        user = store.set_disabled(args.name, args.action == "disable")
        print(f"{user.name} is {'disabled: their sessions and tokens stop now' if user.disabled else 'enabled'}")
    elif args.action == "reset":
        print(f"new one-time password for {args.name} (their sessions end now): {store.reset_password(args.name)}")
    elif args.action == "token":
        token = store.issue_token(args.name, days=args.days, label=args.label, now_ms=_now())
        print(f"API token for {args.name}, valid {args.days} days (shown once; send as 'Authorization: Bearer ...'):")
        print(token)
    elif args.action == "tokens":
        for t in store.tokens(args.name):
            state = f"revoked {utc(t['revoked_ms'])}" if t["revoked_ms"] else f"expires {utc(t['expires_ms'])}"
            print(f"{t['id']}  {t['label'] or '-'}  issued {utc(t['created_ms'])}  {state}")
    else:
        store.revoke_token(args.name, args.token_id, now_ms=_now())
        print(f"revoked {args.name}'s token {args.token_id}")
    return 0


def _cmd_audit(args: argparse.Namespace, settings: Settings) -> int:
    log = wiring.audit_log(settings)
    if args.action == "verify":
        check = log.verify()
        if check.ok:
            print(f"the audit's chain verifies: {check.entries} entries, none changed, removed or moved")
            return 0
        print(f"the audit's chain is BROKEN ({check.entries} entries):")
        for problem in check.problems:
            print(f"  {problem}")
        return 1
    if args.action == "ship":
        if not args.bucket:
            raise UsageError("--bucket", "name the write-once audit bucket (the template's AuditBucketName output)")
        import boto3

        s3 = boto3.client("s3", region_name=settings.region)
        first, last = log.ship(lambda key, body: s3.put_object(Bucket=args.bucket, Key=key, Body=body))
        print(f"shipped entries {first}-{last} to s3://{args.bucket}/audit/" if last else "nothing new to ship")
        return 0
    found = log.find(subject=args.subject, user=args.user)
    if args.json:
        print(json.dumps(found))
        return 0
    if not found:
        print("no audit entries match")
    for e in found:
        who = f"{e['user']} ({e['role']}, {e['via']})"
        print(f"{utc(e['at_ms'])}  {who}  {e['method']} {e['route']}  {','.join(e['subjects']) or '-'}  {e['outcome']}")
    return 0


def register(sub: Any) -> None:
    s = sub.add_parser("users", help="the dashboard's accounts: add, list, disable, reset, API tokens")
    acts = s.add_subparsers(dest="action", required=True, metavar="ACTION")
    a = acts.add_parser("add", help="create an account; prints its one-time password")
    a.add_argument("name", help="user name (lower-case letters, digits, ._-)")
    a.add_argument("--role", required=True, choices=[str(r) for r in Role], help="what the user may do")
    a.add_argument(
        "--group", action="append", help="a study or ward whose subjects they see (repeatable; '*' every subject)"
    )
    a = acts.add_parser("list", help="every account")
    a.add_argument("--json", action="store_true", help="a JSON array")
    for action, what in (
        ("disable", "disable an account (its sessions and tokens stop)"),
        ("enable", "enable it again"),
    ):
        acts.add_parser(action, help=what).add_argument("name", help="the user")
    acts.add_parser("reset", help="a new one-time password (their sessions end)").add_argument("name", help="the user")
    a = acts.add_parser("token", help="issue an API token (printed once, stored hashed)")
    a.add_argument("name", help="the user")
    a.add_argument("--days", type=int, default=30, help="valid for this many days (1-365; default 30)")
    a.add_argument("--label", default="", help="what it is for, e.g. 'ward script'")
    acts.add_parser("tokens", help="a user's API tokens").add_argument("name", help="the user")
    a = acts.add_parser("revoke", help="revoke an API token")
    a.add_argument("name", help="the user")
    a.add_argument("token_id", help="the token's id (users tokens NAME), at least 6 characters")
    s.set_defaults(func=_cmd_users)

    s = sub.add_parser("audit", help="who looked at which subject's data (the access audit)")
    acts = s.add_subparsers(dest="action", metavar="ACTION")
    acts.add_parser("verify", help="check the audit's hash chain (exit 1 if broken)")
    a = acts.add_parser("ship", help="copy the entries not copied yet to the write-once audit bucket (AWS)")
    a.add_argument("--bucket", help="the template's AuditBucket (Object Lock, COMPLIANCE, 6 years)")
    s.add_argument("--subject", help="entries naming this subject")
    s.add_argument("--user", help="entries by this user")
    s.add_argument("--json", action="store_true", help="a JSON array")
    s.set_defaults(func=_cmd_audit, action=None)
