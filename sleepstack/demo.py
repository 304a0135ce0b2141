"""The end-to-end demo on the always-on local stack (``make demo`` / ``sleepstack demo``).

``stack up`` (stream, speed layer, delivery, scheduler under the supervisor), then:
simulator -> simulated BLE straps and bed sensors (fake bleak backend, with link drops)
-> collector -> durable spool -> sender (PutRecords, key = device) -> kinesalite, while
  a) the speed-layer service (event-source mapping -> Lambda handler) fills the live store
  b) the delivery service (Firehose semantics) fills the raw lake
consume concurrently; ``stack wait --idle``; the scheduler stages the nights (PySpark)
-> curated lake -> Athena-dialect SQL on DuckDB; and ``reconcile``'s counts at every hop.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from core.contract.epochs import EPOCH_S, night_of
from core.errors import NoDataError
from core.registry import Assignment, Device, Subject
from ingest.assignments import AssignmentCache
from ingest.producer import KinesisProducer
from ingest.simulated_devices import DeviceFaults, bed_address, collect_simulated, strap_address
from ingest.spool import Spool
from local.duckdb_sql import LocalSqlEngine
from local.home import Home
from local.kinesis import check_tools
from local.live_store import LocalLiveStore
from registry.store import RegistryStore
from serving.sql_engine import load_query
from simulator.nights import SimConfig, SimulatedNight, cohort, latest_first_night, simulate_night
from sleepstack import wiring
from sleepstack.dashboard import dashboard_url, read_token, token
from sleepstack.demo_alerts import DeliveryCounts, DemoDelivery
from sleepstack.hints import command
from sleepstack.settings import Settings
from sleepstack.stack import reconcile, request_stage, stack_down, stack_status, stack_up, wait_idle

__all__ = ["BAD_RECORDS", "DemoResult", "run_demo", "truth_table"]

#: Contract-breaking payloads the demo sends along, to show quarantine at work.
#: What goes wrong with the first subject's devices in its first night: its strap's battery
#: runs low and the strap slips off for a while, its bed sensor goes out of range.
DEMO_FAULTS: Final = DeviceFaults()

BAD_RECORDS: list[tuple[str, bytes]] = [
    ("bad-device", b"\x00\x01not json"),
    ("bad-device", b'{"kind":"strap","schema_version":99}'),
    (
        "bad-device",
        b'{"kind":"strap","schema_version":1,"device_id":"x","subject_id":"s","device_time_ms":1767650400000,'
        b'"event_time_ms":1767650400000,"ingest_time_ms":1767650400100,"hr_bpm":300,"rr_ms":[],'
        b'"sensor_contact":true,"energy_kj":null}',
    ),
]


def truth_table(sim: SimulatedNight, tz: str = "UTC") -> pa.Table:
    """The simulator's truth per epoch; ``apnea_start``: a simulated apnoea starts in the epoch."""
    ep = sim.epochs
    starts = [int(float(e["start_s"]) // EPOCH_S) for e in sim.events if e["kind"] == "apnea"]
    apnea_start = np.zeros(len(ep.t_s), dtype=bool)
    apnea_start[[k for k in starts if k < len(apnea_start)]] = True
    return pa.table(
        {
            "subject_id": [sim.config.subject_id] * len(ep.t_s),
            "night": [night_of(sim.t0_ms, tz)] * len(ep.t_s),
            "epoch_start_ms": (sim.t0_ms + ep.t_s * 1000).astype(np.int64),
            "stage": ep.stage,
            "in_bed": ep.in_bed,
            "hr_bpm": ep.hr_bpm,
            "br_per_min": ep.br_per_min,
            "apnea": ep.apnea,
            "apnea_start": apnea_start,
        }
    )


@dataclass
class DemoResult:
    produced: int = 0
    streamed: int = 0
    speed_layer: int = 0
    landed: int = 0
    duplicated: int = 0
    #: the speed layer's bed epoch-vitals documents (a bed clock off the 30-s grid must not lose them)
    bed_vitals: int = 0
    quarantined_speed: int = 0
    quarantined_delivery: int = 0
    nights: pd.DataFrame = field(default_factory=pd.DataFrame)
    #: technical alert episodes (the first subject's faults: DEMO_FAULTS)
    technical: list[dict[str, Any]] = field(default_factory=list)
    #: what the notifier delivered to the loopback SMTP server and webhook receiver
    delivery: DeliveryCounts | None = None

    @property
    def lost(self) -> int:
        return self.produced - min(self.streamed, self.speed_layer, self.landed)

    def reconciliation_line(self) -> str:
        return (
            f"reconciled: produced={self.produced} streamed={self.streamed} speed_layer={self.speed_layer} "
            f"landed={self.landed} lost={self.lost} duplicated={self.duplicated}"
        )


def run_demo(
    home: Path,
    *,
    subjects: int = 3,
    nights: int = 2,
    seed: int = 7,
    environment: str = "dev",
    progress: bool = True,
    keep_running: bool = False,
    first_night: date | None = None,
    say: Callable[[str], Any] = print,
) -> DemoResult:
    """Run the cohort through the always-on local stack under ``home`` (wiped first).

    The stack's services (stream, speed layer, delivery, scheduler) run as they would all
    night; the simulated devices are collected while they consume; the nights are staged by
    the stack's scheduler. With ``keep_running`` the stack stays up afterwards.
    ``first_night``: the first night's evening; by default the cohort's nights are the
    latest that have ended (:func:`simulator.nights.latest_first_night`), so the last one is
    last night. A demo stack already running in ``home`` is stopped and its home wiped,
    which the demo says; the dashboard keeps its token, so an open address stays valid.
    """
    check_tools(java=True)
    kept_token: str | None = None
    if home.exists():
        old = Settings.from_env({"SLEEPSTACK_HOME": str(home)})
        running = any(s.get("state") != "stopped" for s in stack_status(old)["services"].values())
        say(
            f"{'stopping the demo stack running in' if running else 'starting afresh in'} {home}:"
            " its data is replaced by a new demo cohort (the dashboard keeps its address and token)"
        )
        stack_down(old)
        kept_token = read_token(old)
        shutil.rmtree(home)
    home.mkdir(parents=True)
    delivery = DemoDelivery(home / "demo-receivers")
    settings = Settings.from_env({"SLEEPSTACK_HOME": str(home), "SLEEPSTACK_ENV": environment, **delivery.env()})
    token(settings, keep=kept_token)
    if first_night is None:
        first_night = latest_first_night(nights, int(time.time() * 1000))
    try:
        status = stack_up(settings)
    except BaseException:
        delivery.stop()
        raise
    try:
        return _run(settings, status, subjects, nights, seed, progress, say, first_night, delivery)
    finally:
        delivery.stop()
        if keep_running:
            status_cmd, down_cmd = command("stack", "status", home=home), command("stack", "down", home=home)
            say(f"the stack keeps running: {status_cmd}; stop it with {down_cmd}")
            say(f"dashboard (live vitals, alerts and the staged nights): {dashboard_url(settings)}")
        else:
            stack_down(settings)


def _run(
    settings: Settings,
    status: dict[str, Any],
    subjects: int,
    nights: int,
    seed: int,
    progress: bool,
    say: Callable[[str], Any],
    first_night: date,
    delivery: DemoDelivery,
) -> DemoResult:
    home, lake = settings.paths, settings.lake
    stream = wiring.stream_name(settings)
    client = wiring.kinesis_client(settings)
    result = DemoResult()
    url = status["services"]["stream"].get("url")
    say(f"local stack up: stream {stream} at {url}, speed layer, delivery, scheduler, dashboard, notifier")
    say(f"watch the nights live: {dashboard_url(settings)}")

    # simulate -> BLE peripherals (fake bleak backend) -> collector -> spool -> the running stack
    configs = cohort(subjects, nights, seed, first_night=first_night)
    say(f"simulating {subjects} subjects x {nights} nights: {', '.join(sorted({night_of(c.t0_ms) for c in configs}))}")
    sims = []
    truth = []
    for cfg in tqdm(configs, desc="simulate", unit="night", disable=not progress):
        sim = simulate_night(cfg)
        sims.append(sim)
        truth.append(truth_table(sim))
    home.truth.mkdir()
    pq.write_table(pa.concat_tables(truth), home.truth / "epochs.parquet")
    registry = wiring.registry(settings)
    register_cohort(registry, configs, tz=settings.tz)
    say(
        f"registered {subjects} subjects and {2 * subjects} devices (a strap and a bed each), each assigned to its"
        f" subject: {command('assignments', home=home.root)}"
    )
    cache = AssignmentCache(registry.assignments)  # the collector resolves every notification's subject here
    ingest = collect_simulated(
        sims,
        Spool(home.spool),
        KinesisProducer(client, stream),
        seed=seed,
        progress=progress,
        resolve=cache.subject_at,
        faults=DEMO_FAULTS,
    )
    say(ingest.summary_line())
    KinesisProducer(client, stream).put_encoded(BAD_RECORDS)
    live = stack_status(settings)["stores"]
    say(f"while collecting, the speed layer had indexed {live.get('live_vitals', 0)} epoch-vitals documents")

    with tqdm(total=1, desc="speed layer + delivery catching up", disable=not progress) as bar:
        idle = wait_idle(settings, timeout_s=1800)
        bar.update(1)
    figures = {n: idle["services"][n].get("figures", {}) for n in ("speed_layer", "delivery")}
    result.quarantined_speed = int(figures["speed_layer"].get("quarantined", 0))
    result.quarantined_delivery = int(figures["delivery"].get("errors", 0))

    night_names = sorted({night_of(c.t0_ms) for c in configs})
    with tqdm(total=1, desc=f"nightly batch by the scheduler ({len(night_names)} nights)", disable=not progress) as bar:
        run = request_stage(settings, ",".join(night_names))
        bar.update(1)
    if run.get("exit") != 0:
        raise NoDataError(f"the scheduler's batch run failed: {' '.join(run.get('said') or [])}")
    counts = reconcile(settings)
    result.produced, result.streamed, result.speed_layer = counts["produced"], counts["streamed"], counts["speed_layer"]
    store = LocalLiveStore(home.live_db)
    with tqdm(total=1, desc="notifier delivering the alert episodes", disable=not progress) as bar:
        result.delivery = delivery.wait(store.alerts_changed_since(0))
        bar.update(1)
    _serve(home, lake, store, result, say)
    return result


def register_cohort(registry: RegistryStore, configs: list[SimConfig], *, tz: str) -> None:
    """Enrol the cohort's subjects, register each one's strap and bed, and assign both to
    them from a day before their first night (what a coordinator does with ``subjects
    add``, ``devices add`` and ``assign``)."""
    first: dict[str, int] = {}
    for c in configs:
        first[c.subject_id] = min(first.get(c.subject_id, c.t0_ms), c.t0_ms)
    for sid, t0 in sorted(first.items()):
        since = t0 - 86_400_000
        registry.add_subject(Subject(sid, enrolled_ms=since, tz=tz), why="demo cohort")
        for address, kind in ((strap_address(sid), "strap"), (bed_address(sid), "bed")):
            registry.add_device(Device(address, kind, f"{kind} of {sid}"), at_ms=since, why="demo cohort")
            registry.assign(Assignment(address, since, sid), at_ms=since, why="demo cohort")


def _serve(home: Home, lake: Path, store: LocalLiveStore, result: DemoResult, say: Callable[[str], Any]) -> None:
    """Count what landed, run the analyst query and compare stages with the ground truth."""
    sql = LocalSqlEngine(lake)
    counts = sql.query("SELECT count(*) AS n, count(DISTINCT record_id) AS d FROM sleepstack.raw_records")
    result.landed, result.duplicated = int(counts["d"][0]), int(counts["n"][0] - counts["d"][0])
    nights_df = sql.query(load_query("night_summaries"))
    sql.con.register("truth", pq.read_table(home.truth / "epochs.parquet"))
    agree = sql.con.execute(
        "SELECT e.subject_id, e.night,"
        " round(100 * avg(CASE WHEN e.stage = t.stage THEN 1 ELSE 0 END), 1) AS agreement_pct,"
        " round(100 * avg(CASE WHEN (e.stage = 0) = (t.stage = 0) THEN 1 ELSE 0 END), 1) AS sleep_wake_pct"
        " FROM sleepstack.epoch_stages e JOIN truth t USING (subject_id, night, epoch_start_ms) GROUP BY 1, 2"
    ).fetchdf()
    # the simulator's apnoeas per hour of its own sleep: what the night's pauses per hour estimate
    true_pauses = sql.con.execute(
        "SELECT subject_id, night, round(count(*) FILTER (WHERE apnea_start AND stage <> 0)"
        " / (count(*) FILTER (WHERE stage <> 0) / 120.0), 1) AS true_pauses_per_hour FROM truth GROUP BY 1, 2"
    ).fetchdf()
    agree = agree.merge(true_pauses, on=["subject_id", "night"], how="left")
    result.nights = nights_df.merge(agree, on=["subject_id", "night"], how="left")
    say("")
    say(_format_table(result.nights))
    say("")
    vitals, alerts, strap = store.count("vitals"), store.count("alerts"), store.count("samples")
    result.bed_vitals = sum(1 for kind, _, body in store.dump() if kind == "vitals" and '"source":"bed"' in body)
    say(
        f"live store: {vitals} epoch-vitals docs ({result.bed_vitals} from bed sensors), {alerts} alerts,"
        f" {strap} strap heart-rate docs, {store.count('status')} device statuses"
    )
    result.technical = [a for a in store.alerts() if a.get("category") == "technical"]
    first = min((a["subject_id"] for a in result.technical), default="")
    faults = sorted({f"{a['kind']} ({a['device_id']})" for a in result.technical if a["subject_id"] == first})
    idle = sum(1 for a in result.technical if a["subject_id"] != first and a["kind"] == "device_silent")
    say(
        f"technical alerts (devices, not patients): {first}'s simulated faults raised {', '.join(faults) or 'none'};"
        f" {idle} device_silent episodes of the other devices between and after the nights (they stay assigned"
        " by day); each device's battery and last measurement: the dashboard's registry page"
    )
    say(
        f"quarantined: speed_layer={result.quarantined_speed} delivery={result.quarantined_delivery}"
        f" (of {len(BAD_RECORDS)} contract-breaking records sent;"
        f" reasons under {home.dead_letters} and {lake / 'errors'})"
    )
    if result.delivery is not None:
        say(result.delivery.line())
    say(result.reconciliation_line())


def _format_table(df: pd.DataFrame) -> str:
    cols = {
        "subject_id": "subject",
        "night": "night",
        "tst_min": "TST min",
        "efficiency_pct": "eff %",
        "waso_min": "WASO min",
        "light_min": "light",
        "deep_min": "deep",
        "rem_min": "REM",
        "mean_hr_bpm": "HR bpm",
        "mean_br_per_min": "BR /min",
        "sleep_score": "score",
        "pauses_per_hour": "pauses/h",
        "true_pauses_per_hour": "truth /h",
        "agreement_pct": "agree %",
        "sleep_wake_pct": "S/W agree %",
    }
    return df[list(cols)].rename(columns=cols).to_string(index=False)
