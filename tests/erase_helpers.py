"""A home holding three subjects in every store, what it holds per record, and a process to kill mid-erasure.

The home: s001, s002 and s003 (and s004, enrolled, never recorded), each with a strap
and a bed assigned before their first night (:func:`tests.dashboard_helpers.register`);
the first :data:`HOURS` of each one's night in the raw lake (several objects), the live
store and the device state (through the speed layer), the curated tables (staged), the
speed layer's ledger; in the collector's spool notifications, outbox records, an open bed
frame and a quarantined payload of each; the notifier's messages of each (filed under it,
and naming it by label only); dead letters (a payload naming its subject, and
one undecodable from its strap) under the home and the lake's ``errors/``; an export of
each in the export index; an access-audit entry of each. s001's strap was also worn by
s002 for :data:`BORROWED` (the registry says so): those records are s002's and stay.

Run as ``python -m tests.erase_helpers KILL_AT -- ARGV...``: the CLI with ``ARGV``,
SIGKILLed when the erasure passes checkpoint ``KILL_AT`` (``-``: never).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from core.contract import Record, to_row, to_wire
from sleepstack.settings import Settings

SUBJECTS = ("s001", "s002", "s003")
HOURS = 1.0
ERASED = "s001"
ERASE = ["erase", "--subject", ERASED, "--yes", "--by", "dpo", "--why", "s001 asked (ticket 7)"]


MIN = 60_000


@cache
def records() -> tuple[Record, ...]:
    """The first :data:`HOURS` of each subject's night; s001's strap filed under s002 in :func:`borrowed`."""
    import dataclasses

    from tests.dashboard_helpers import night_records

    start, end = borrowed()
    return tuple(
        dataclasses.replace(r, subject_id="s002")
        if r.device_id == "strap-s001" and start <= r.device_time_ms < end
        else r
        for r in night_records(HOURS)
    )


@cache
def t0_ms() -> int:
    from tests.dashboard_helpers import night_records

    return min(r.device_time_ms for r in night_records(HOURS))


def borrowed() -> tuple[int, int]:
    """When s002 wore s001's strap: [20 min, 30 min) into the night."""
    return t0_ms() + 20 * MIN, t0_ms() + 30 * MIN


def settings_for(home: Path) -> Settings:
    return Settings.from_env({"SLEEPSTACK_HOME": str(home), "SLEEPSTACK_ENV": "bench", "SLEEPSTACK_TZ": "UTC"})


def _register(settings: Settings) -> None:
    from core.registry import Assignment, Device, Subject
    from local.registry import LocalRegistry

    start = t0_ms() - 60 * MIN
    reg = LocalRegistry(settings.paths.registry_db)
    for sid in (*SUBJECTS, "s004"):
        reg.add_subject(Subject(sid, enrolled_ms=start, tz="UTC"), why=f"{sid} consented")
        for kind in ("strap", "bed"):
            reg.add_device(Device(f"{kind}-{sid}", kind, f"{kind} of {sid}"), at_ms=start)
            reg.assign(Assignment(f"{kind}-{sid}", start, sid), at_ms=start)
    b0, b1 = borrowed()
    reg.assign(Assignment("strap-s001", b0, "s002", b1), at_ms=b0, why="s001's strap on s002")
    reg.assign(Assignment("strap-s001", b1, "s001"), at_ms=b1)
    reg.close()


def _spool(settings: Settings) -> None:
    from ingest.spool import Notification, Spool

    spool = Spool(settings.paths.spool, synchronous="NORMAL")
    recs = records()
    for sid in SUBJECTS:
        mine = [r for r in recs if r.subject_id == sid and r.kind == "strap"][:5]
        spool.append_records(mine)
        t = mine[0].device_time_ms
        spool.append(
            [
                Notification(f"strap-{sid}", sid, "strap", t + 1, bytes([0x10, 60, 0x20, 0x03])),
                Notification(f"strap-{sid}", sid, "strap", t + 2, b"\x01"),  # undecodable: quarantined
                Notification(f"bed-{sid}", sid, "bed", t + 3, b"\xff\x00"),
            ]
        )
    spool.frame_all()
    # notifications not framed yet, one of each
    spool.append([Notification(f"strap-{sid}", sid, "strap", t0_ms() + 5 * MIN, bytes([0x10, 61])) for sid in SUBJECTS])
    spool.close()


def _letters(settings: Settings) -> None:
    from dead_letters import LocalDeadLetters, dead_letter

    recs = records()
    for sid in SUBJECTS:
        rec = next(r for r in recs if r.subject_id == sid)
        body = json.loads(to_wire(rec))
        body["hr_bpm"] = "NaN?"  # breaks the contract, names its subject
        named = dead_letter(
            json.dumps(body).encode(), reason="bad hr", field="hr_bpm", source={"partitionKey": rec.device_id}
        )
        garbled = dead_letter(
            b"\x00\x01garbled", reason="not JSON", field="<record>", source={"partitionKey": f"strap-{sid}"}
        )
        for root, key in (
            (settings.paths.dead_letters / "speed-layer", "contract/shard/1"),
            (settings.lake, "errors/x/2026/01/05/shard"),
        ):
            sink = LocalDeadLetters(root)
            sink.put(f"{key}-{sid}-named", named)
            sink.put(f"{key}-{sid}-garbled", garbled)
            path = root / f"{key}-{sid}-garbled.json"
            os.utime(path, ((t0_ms() + 40 * MIN) / 1000,) * 2)  # written while the strap was its subject's


def _exports_and_audit(settings: Settings, tmp: Path) -> None:
    from access.audit import AuditLog
    from local.erasure import record_export

    log = AuditLog(settings.paths.audit_log)
    for sid in SUBJECTS:
        out = tmp / f"export-{sid}"
        (out / "raw").mkdir(parents=True)
        (out / "raw" / "part-0.csv").write_text(f"subject_id\n{sid}\n")
        (out / "nights.csv").write_text(f"subject_id\n{sid}\n")
        record_export(settings.paths, sid, "csv", out, t0_ms())
        log.append(
            at_ms=t0_ms(),
            user="dr",
            role="clinician",
            via="session",
            method="GET",
            route="/api/subjects/{subject_id}/vitals",
            subjects=[sid],
            outcome=200,
        )


def outbox_messages(subjects: tuple[str, ...], t0: int) -> list[dict[str, Any]]:
    """The notifier's planned messages of each subject's episodes: one filed under it (subject,
    device, start), one naming it by label only (as rows from before they kept whose they were)."""
    return [
        {
            "key": f"{how}-{sid}",
            "alert_id": f"alert-{how}-{sid}",
            "transition": "open",
            "route": "ward",
            "tier": 0,
            "channel": "email",
            "address": "nurse@ward.example.org",
            "due_ms": t0,
            "message": {"text": f"breathing_pause opened\nWho: bed of {sid}\n"},
            **({"subject_id": sid, "device_id": f"bed-{sid}", "event_ms": t0} if how == "filed" else {}),
        }
        for sid in subjects
        for how in ("filed", "label")
    ]


def _notifier_outbox(settings: Settings) -> None:
    from local.outbox import Outbox

    outbox = Outbox(settings.paths.outbox_db)
    outbox.add(outbox_messages(SUBJECTS, t0_ms()), t0_ms())
    outbox.close()


def build_home(home: Path, exports: Path) -> Settings:
    """The home described above; exports are written under ``exports``."""
    from local.ledger import Ledger
    from sleepstack.bench.fixtures import index_records, stage_records

    settings = settings_for(home)
    _register(settings)
    recs = list(records())
    part = settings.lake / "raw" / "dt=2026-01-05"
    part.mkdir(parents=True)
    step = 4000
    for i in range(0, len(recs), step):
        rows = [to_row(r) for r in recs[i : i + step]]
        pq.write_table(
            pa.Table.from_pylist(rows, schema=_raw_schema()),
            part / f"sleepstack-raw-shardId-0-{i}-{i + len(rows) - 1}.parquet",
        )
    index_records(settings, recs)
    stage_records(settings.lake, recs, settings.tz)
    ledger = Ledger(settings.paths.ledger_db)
    ledger.add(r.record_id for r in recs)
    ledger.close()
    _spool(settings)
    _letters(settings)
    _exports_and_audit(settings, exports)
    _notifier_outbox(settings)
    return settings


def _raw_schema() -> pa.Schema:
    from batch_layer.lake_schema import RAW_SCHEMA

    return RAW_SCHEMA


# ---------------------------------------------------------------------------- what the stores hold
def _sqlite(path: Path, sql: str) -> list[tuple[Any, ...]]:
    if not path.exists():
        return []
    db = sqlite3.connect(path)
    try:
        return [tuple(bytes(v).hex() if isinstance(v, bytes) else v for v in row) for row in db.execute(sql)]
    finally:
        db.close()


def holdings(settings: Settings) -> dict[str, set[Any]]:
    """Everything every store holds, one hashable item per record, row, document, letter or entry."""
    lake = settings.lake
    out: dict[str, set[Any]] = {}
    out["lake"] = {
        (str(p.parent.relative_to(lake)), json.dumps(row, sort_keys=True, default=str))
        for p in sorted(lake.rglob("*.parquet"))
        for row in pq.ParquetFile(p).read().to_pylist()
    }
    home = settings.paths
    out["live"] = set(_sqlite(home.live_db, "SELECT idx, id, body FROM docs"))
    out["state"] = set(_sqlite(home.state_db, "SELECT device_id, state FROM device_state"))
    out["ledger"] = set(_sqlite(home.ledger_db, "SELECT record_id FROM applied"))
    for table in ("notifications", "outbox", "open_frames", "quarantine"):
        out[f"spool_{table}"] = {
            row[1:] if table != "open_frames" else row
            for row in _sqlite(home.spool, f"SELECT * FROM {table}")  # noqa: S608
        }
    out["letters"] = {
        (str(p.relative_to(home.root)), p.read_text())
        for root in (home.dead_letters, lake / "errors")
        for p in root.rglob("*.json")
    }
    out["subjects"] = set(_sqlite(home.registry_db, "SELECT subject_id, body FROM subjects"))
    out["assignments"] = set(_sqlite(home.registry_db, "SELECT * FROM assignments"))
    out["history"] = set(_sqlite(home.registry_db, "SELECT seq, at_ms, action, why, detail FROM history"))
    out["exports"] = set(home.exports_index.read_text().splitlines()) if home.exports_index.exists() else set()
    out["notifier_outbox"] = set(_sqlite(home.outbox_db, "SELECT key, subject_id, device_id, message FROM outbox"))
    return out


def main(argv: list[str]) -> int:
    kill_at, _, *cli = argv
    from sleepstack import erase
    from sleepstack.cli import main as cli_main

    if kill_at != "-":

        def hook(name: str) -> None:
            if name == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)

        erase.checkpoint_hook = hook
    return cli_main(cli)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
