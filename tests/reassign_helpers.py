"""A home with a mistaken assignment to correct, what it holds, and a process to kill mid-correction.

The home: subjects s001 (UTC) and s002 (Pacific/Kiritimati, UTC+14, so the corrected
window is in another night of theirs), a strap and a bed assigned to s001 from an hour
before a simulated hour of their data; the raw lake holds every record (several objects,
as deliveries leave them), the live store the speed layer's documents. The strap was
really on s002 over :data:`WINDOW`.

Run as ``python -m tests.reassign_helpers KILL_AT RESTAGED_FILE -- ARGV...``: the CLI with
``ARGV``, SIGKILLed when the correction passes checkpoint ``KILL_AT`` (``-``: never);
with ``RESTAGED_FILE`` (not ``-``) the nightly job is replaced by writing the nights it
was asked for there, so a test needs no Spark.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from core.contract import Record, to_row
from core.registry import Assignment, Device, Subject
from sleepstack import wiring
from sleepstack.settings import Settings

T0_MS = 1_767_651_000_000  # 2026-01-05T22:10Z
MIN = 60_000
HOUR = 60 * MIN
#: [from, to) of the strap's device time that was really s002's
WINDOW = (T0_MS + 10 * MIN, T0_MS + 40 * MIN)
WINDOW_ISO = ("2026-01-05T22:20:00+00:00", "2026-01-05T22:50:00+00:00")
STRAP, BED = "strap-1", "bed-1"
REASSIGN = ["reassign", "--device", STRAP, "--from", WINDOW_ISO[0], "--to", WINDOW_ISO[1], "--subject", "s002"]


@cache
def records() -> tuple[Record, ...]:
    """A simulated hour of s001's strap and bed."""
    from simulator.nights import SimConfig, simulate_night
    from sleepstack.evaluation.layers import collected_records

    night = simulate_night(SimConfig("s001", T0_MS, 3, apnea_per_hour=5.0))
    recs = collected_records(night, strap_device=STRAP, bed_device=BED)
    return tuple(r for r in recs if r.event_time_ms < T0_MS + HOUR)


def settings_for(home: Path) -> Settings:
    return Settings.from_env({"SLEEPSTACK_HOME": str(home), "SLEEPSTACK_TZ": "UTC"})


def build_home(home: Path, *, live: bool = True) -> Settings:
    """The home described above (the live store only with ``live``)."""
    from sleepstack.bench.fixtures import index_records

    settings = settings_for(home)
    reg = wiring.registry(settings)
    reg.add_subject(Subject("s001", enrolled_ms=T0_MS - 48 * HOUR, tz="UTC"))
    reg.add_subject(Subject("s002", enrolled_ms=T0_MS - 48 * HOUR, tz="Pacific/Kiritimati"))
    for device, kind in ((STRAP, "strap"), (BED, "bed")):
        reg.add_device(Device(device, kind), at_ms=T0_MS - 2 * HOUR)
        reg.assign(Assignment(device, T0_MS - HOUR, "s001"), at_ms=T0_MS - 2 * HOUR)
    recs = list(records())
    part = settings.lake / "raw" / "dt=2026-01-05"
    part.mkdir(parents=True)
    step = 700  # several objects, as deliveries leave them; some hold the window's edges
    for i in range(0, len(recs), step):
        rows = [to_row(r) for r in recs[i : i + step]]
        name = f"sleepstack-raw-shardId-000000000000-{i}-{i + len(rows) - 1}.parquet"
        pq.write_table(pa.Table.from_pylist(rows, schema=_raw_schema()), part / name)
    if live:
        index_records(settings, recs)
    return settings


def _raw_schema() -> pa.Schema:
    from batch_layer.lake_schema import RAW_SCHEMA

    return RAW_SCHEMA


def lake_rows(settings: Settings) -> list[dict[str, Any]]:
    """Every raw row (record id, device, device time, subject)."""
    cols = ["record_id", "device_id", "device_time_ms", "subject_id"]
    out: list[dict[str, Any]] = []
    for path in sorted((settings.lake / "raw").rglob("*.parquet")):
        out += pq.read_table(path, columns=cols).to_pylist()
    return out


def live_docs(settings: Settings) -> dict[tuple[str, str], dict[str, Any]]:
    from local.live_store import LocalLiveStore

    store = LocalLiveStore(settings.paths.live_db)
    try:
        return {(kind, doc_id): json.loads(body) for kind, doc_id, body in store.dump()}
    finally:
        store.close()


def in_window(device: str, t_ms: int) -> bool:
    return device == STRAP and WINDOW[0] <= t_ms < WINDOW[1]


def main(argv: list[str]) -> int:
    kill_at, restaged, _, *cli = argv
    from sleepstack import reassign
    from sleepstack.cli import main as cli_main

    if kill_at != "-":

        def hook(name: str) -> None:
            if name == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)

        reassign.checkpoint_hook = hook
    if restaged != "-":

        def fake(lake: Path, nights: list[str], run: Any) -> list[str]:
            with Path(restaged).open("a") as out:
                out.write(json.dumps(nights) + "\n")
            return nights

        reassign.restage_nights = fake  # type: ignore[assignment]
    return cli_main(cli)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
