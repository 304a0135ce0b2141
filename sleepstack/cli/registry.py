"""Commands for study coordinators and ward staff: ``subjects``, ``devices``, ``assign``, ``assignments``,
``reassign``.

Who wears which device when lives in the registry (:mod:`registry.store`; this home's
``registry.sqlite`` locally, the ``RegistryTable`` on AWS); the collector records a
device only while it is assigned to someone.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from core.registry import AGE_BANDS, DEVICE_KINDS, SEXES, Assignment, AssignmentIndex, Device, RegistryError, Subject
from sleepstack.cli._helpers import operator, utc
from sleepstack.cli.errors import UsageError
from sleepstack.settings import Settings

if TYPE_CHECKING:
    from registry.store import RegistryStore

__all__ = ["parse_time", "register"]


def parse_time(text: str | None, what: str, tz: str) -> int:
    """An ISO 8601 time (a time without an offset is in ``tz``; ``now`` or None: now) as ms UTC."""
    if text is None or text == "now":
        return int(time.time() * 1000)
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(
            what, f"{text!r} is not an ISO time, e.g. 2026-01-05T22:00 or 2026-01-05T22:00+00:00"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=ZoneInfo(tz))
    return int(when.timestamp() * 1000)


def _overrides(items: list[str]) -> dict[str, float]:
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            out[name] = float(value)
        except ValueError:
            raise UsageError("--alert", f"{item!r} is not RULE=NUMBER (e.g. hr_high_bpm=130)") from None
        if not sep or not name:
            raise UsageError("--alert", f"{item!r} is not RULE=NUMBER (e.g. hr_high_bpm=130)")
    return out


def _print_rows(rows: list[dict[str, Any]], as_json: bool, empty: str) -> None:
    if as_json:
        print(json.dumps(rows))
    elif not rows:
        print(empty)
    else:
        for row in rows:
            print("  ".join(f"{k}={'-' if v is None or v == {} else v}" for k, v in row.items()))


def _subject_row(s: Subject) -> dict[str, Any]:
    return {
        "subject_id": s.subject_id,
        "status": s.status,
        "tz": s.tz,
        "enrolled": utc(s.enrolled_ms),
        "withdrawn": utc(s.withdrawn_ms) if s.withdrawn_ms is not None else None,
        "age_band": s.age_band,
        "sex": s.sex,
        "alert_overrides": dict(s.alert_overrides),
        "groups": list(s.groups),
    }


def _assignment_row(a: Assignment) -> dict[str, Any]:
    return {
        "device": a.device,
        "subject_id": a.subject_id,
        "from": utc(a.from_ms),
        "to": utc(a.to_ms) if a.to_ms is not None else None,
        "from_ms": a.from_ms,
        "to_ms": a.to_ms,
    }


def _registry(settings: Settings, *, writes: bool) -> RegistryStore:
    from sleepstack import wiring

    return wiring.registry(settings, create=writes)


def _cmd_subjects(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "add":
        new = Subject(  # checked before anything is created
            args.subject_id,
            enrolled_ms=parse_time(args.enrolled, "--enrolled", settings.tz),
            tz=args.tz or settings.tz,
            age_band=args.age_band,
            sex=args.sex,
            alert_overrides=_overrides(args.alert),
            groups=tuple(sorted(set(args.group))),
        )
        subject = _registry(settings, writes=True).add_subject(new, why=args.why)
        print(f"enrolled {subject.subject_id} (nights cut in {subject.tz})")
        return 0
    reg = _registry(settings, writes=False)  # nothing to withdraw in a registry not made yet
    if args.action == "withdraw":
        at = parse_time(args.at, "--at", settings.tz)
        try:
            reg.withdraw(args.subject_id, at_ms=at, why=args.why)
        except RegistryError as exc:
            if exc.what == "at":  # the registry's field is this command's flag
                raise UsageError("--at", exc.reason) from None
            raise
        print(f"withdrew {args.subject_id} from {utc(at)}: its devices are no longer collected")
    else:
        _print_rows([_subject_row(s) for s in reg.subjects()], args.json, "no subjects: sleepstack subjects add ID")
    return 0


def _cmd_devices(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "add":
        new = Device(args.address, args.kind, args.label)
        device = _registry(settings, writes=True).add_device(new, at_ms=int(time.time() * 1000))
        print(f"added {device.kind} {device.address}{f' ({device.label})' if device.label else ''}")
    else:
        reg = _registry(settings, writes=False)
        now = int(time.time() * 1000)
        index = AssignmentIndex(reg.assignments())
        rows = [{**d.to_dict(), "assigned_to": index.subject_at(d.address, now)} for d in reg.devices()]
        _print_rows(rows, args.json, "no devices: sleepstack devices add ADDRESS --kind strap|bed")
    return 0


def _cmd_assign(args: argparse.Namespace, settings: Settings) -> int:
    start = parse_time(args.start, "--from", settings.tz)
    end = parse_time(args.end, "--to", settings.tz) if args.end else None
    if end is not None and end <= start:
        raise UsageError("--to", f"{utc(end)} is not after --from {utc(start)}")
    new = Assignment(args.device, start, args.subject_id, end)
    reg = _registry(settings, writes=False)  # nothing to assign in a registry not made yet
    written = reg.assign(new, at_ms=int(time.time() * 1000), why=args.why)
    for a in written[:-1]:
        print(f"ended {a.device} -> {a.subject_id} at {utc(a.to_ms or 0)}")
    new = written[-1]
    until = f" until {utc(new.to_ms)}" if new.to_ms is not None else ""
    print(f"assigned {new.device} -> {new.subject_id} from {utc(new.from_ms)}{until}")
    return 0


def _cmd_assignments(args: argparse.Namespace, settings: Settings) -> int:
    rows = [_assignment_row(a) for a in _registry(settings, writes=False).assignments(args.device)]
    if not args.json:
        rows = [{k: v for k, v in r.items() if not k.endswith("_ms")} for r in rows]
    _print_rows(rows, args.json, "no assignments: sleepstack assign DEVICE SUBJECT")
    return 0


_FLAGS = {"device": "--device", "subject": "--subject", "to": "--to", "window": "--from/--to"}


def _cmd_reassign(args: argparse.Namespace, settings: Settings) -> int:
    from core.errors import ConfigError
    from sleepstack import reassign, wiring

    start = parse_time(args.start, "--from", settings.tz)
    end = parse_time(args.end, "--to", settings.tz)
    if end <= start:
        raise UsageError("--to", f"{utc(end)} is not after --from {utc(start)}")
    if settings.target == "aws":
        raise ConfigError(
            "SLEEPSTACK_TARGET", "is aws: reassign moves a local stack's stored data; on AWS it is not built yet"
        )
    reg = _registry(settings, writes=False)  # nothing to correct in a registry not made yet

    def run_nightly(nights: list[str]) -> None:
        from batch_layer.nightly_job import run_nightly
        from local.spark import local_spark

        lake, zones = settings.lake, {s.subject_id: s.tz for s in reg.subjects()}
        run_nightly(
            local_spark(),
            str(lake / "raw"),
            str(lake / "curated"),
            nights,
            settings.tz,
            include_pending=False,
            rr_staging=settings.staging_rr,
            subject_tz=zones,
        )

    job = reassign.Reassigner(
        registry=reg,
        raw=settings.lake / "raw",
        live=lambda: wiring.live_store(settings),
        restage=lambda nights: reassign.restage_nights(settings.lake, nights, run_nightly),
        journal_path=settings.paths.reassign_journal,
        default_tz=settings.tz,
    )
    try:
        out = job.run(
            args.device, start, end, args.subject, why=args.why, by=operator(args.by), now_ms=int(time.time() * 1000)
        )
    except RegistryError as exc:
        raise UsageError(_FLAGS.get(exc.what, exc.what), exc.reason) from None
    j = out.journal
    if args.json:
        print(json.dumps({**dataclasses.asdict(j), "resumed": out.resumed, "already": out.already, "did": out.did}))
        return 0
    window = f"{j.device} from {utc(j.from_ms)} until {utc(j.to_ms)}"
    if out.already:
        print(f"already done: {window} is {j.subject_id}'s (corrected {utc(j.finished_ms or 0)}); nothing to do")
        return 0
    was = ", ".join(j.previous_subjects()) or "already theirs in the registry"
    print(f"{'resumed and finished' if out.resumed else 'reassigned'} {window} to {j.subject_id} (was: {was})")
    f = j.figures
    print(
        f"  registry: {f.get('assignments_written', 0)} assignments written, {f.get('assignments_deleted', 0)} removed"
    )
    print(f"  raw lake: {f.get('lake_rows_moved', 0)} rows refiled in {f.get('lake_objects_rewritten', 0)} objects")
    print(f"  live store: {f.get('live_documents_moved', 0)} documents refiled")
    staged = f.get("nights_restaged") or []
    pending = sorted(set(f.get("nights_touched") or []) - set(staged))
    print(
        f"  nights re-staged: {', '.join(staged) or 'none'}"
        + (f" (left to the nightly batch: {', '.join(pending)})" if pending else "")
    )
    if out.resumed:
        print("  (figures of a resumed run count only what it did after the interruption)")
    return 0


def register(sub: Any) -> None:
    s = sub.add_parser("subjects", help="enrol, list and withdraw subjects (pseudonymous ids)")
    acts = s.add_subparsers(dest="action", required=True, metavar="ACTION")
    a = acts.add_parser("add", help="enrol a subject")
    a.add_argument("subject_id", help="pseudonymous id (letters, digits, :_.-), never a name")
    a.add_argument("--tz", help="IANA time zone the subject's nights are cut in (default SLEEPSTACK_TZ)")
    a.add_argument("--age-band", choices=AGE_BANDS, help="age band in years")
    a.add_argument("--sex", choices=SEXES, help="sex")
    a.add_argument(
        "--alert", action="append", default=[], help="RULE=NUMBER: this subject's alert threshold (repeatable)"
    )
    a.add_argument("--enrolled", help="enrolment time, ISO 8601 (default now)")
    a.add_argument(
        "--group", action="append", default=[], help="a study or ward the subject is in: who may see them (repeatable)"
    )
    a.add_argument("--why", default="", help="a note kept in the registry's history")
    a = acts.add_parser("list", help="every subject with status, time zone and thresholds")
    a.add_argument("--json", action="store_true", help="a JSON array")
    a = acts.add_parser("withdraw", help="withdraw a subject: its devices' assignments end, collection stops")
    a.add_argument("subject_id", help="the subject")
    a.add_argument("--at", help="from when, ISO 8601 (default now)")
    a.add_argument("--why", default="", help="a note kept in the registry's history")
    s.set_defaults(func=_cmd_subjects)

    s = sub.add_parser("devices", help="register and list straps and bed sensors")
    acts = s.add_subparsers(dest="action", required=True, metavar="ACTION")
    a = acts.add_parser("add", help="register a device")
    a.add_argument("address", help="the BLE address (or a simulated device's name)")
    a.add_argument("--kind", choices=DEVICE_KINDS, required=True, help="strap or bed")
    a.add_argument("--label", default="", help="what people call it, e.g. 'bed 12'")
    a = acts.add_parser("list", help="every device and whom it is assigned to now")
    a.add_argument("--json", action="store_true", help="a JSON array")
    s.set_defaults(func=_cmd_devices)

    s = sub.add_parser("assign", help="assign a device to a subject over [--from, --to)")
    s.add_argument("device", help="the device's address")
    s.add_argument("subject_id", help="the subject")
    s.add_argument("--from", dest="start", help="ISO 8601 (default now); ends the device's open assignment there")
    s.add_argument("--to", dest="end", help="ISO 8601 (default: until further notice)")
    s.add_argument("--why", default="", help="a note kept in the registry's history")
    s.set_defaults(func=_cmd_assign)

    s = sub.add_parser(
        "reassign",
        help="correct a mistaken assignment: [--from, --to) of a device, and its stored data, become --subject's",
    )
    s.add_argument("--device", required=True, help="the device's address")
    s.add_argument("--from", dest="start", required=True, help="start of the window, ISO 8601 (device time)")
    s.add_argument("--to", dest="end", required=True, help="end of the window (exclusive), ISO 8601")
    s.add_argument("--subject", required=True, help="the subject who really wore it")
    s.add_argument("--why", default="", help="a note kept in the registry's history")
    s.add_argument("--by", help="who makes the correction, kept in the history (default: the OS user)")
    s.add_argument("--json", action="store_true", help="the operation's journal as one JSON object")
    s.set_defaults(func=_cmd_reassign)

    s = sub.add_parser("assignments", help="who wore which device when")
    s.add_argument("--device", help="one device only")
    s.add_argument("--json", action="store_true", help="a JSON array (times also in ms UTC)")
    s.set_defaults(func=_cmd_assignments)
