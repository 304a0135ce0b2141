"""The end-to-end demo on the local embedded stack (``make demo`` / ``sleepstack demo``).

simulator -> simulated BLE straps and bed sensors (fake bleak backend, with link drops)
-> collector -> durable spool -> sender (PutRecords, key = device) -> kinesalite ->
  a) local event-source poller -> speed-layer Lambda handler -> embedded live store
  b) local Firehose delivery -> raw lake (Parquet) -> nightly PySpark job -> curated lake
     -> Athena-dialect SQL on DuckDB
and a reconciliation of record counts at every hop.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from core.epochs import night_of
from core.simulate import SimulatedNight, cohort, simulate_night
from ingest.producer import KinesisProducer
from ingest.simulated_devices import collect_simulated
from ingest.spool import Spool
from local.duckdb_sql import LocalSqlEngine
from local.event_source_mapping import EventSourceMapping
from local.firehose import FirehoseDelivery
from local.kinesis import LocalStack, check_tools
from local.shard_reader import Checkpoints
from local.template import event_source_settings, load_template
from serving.sql_engine import load_query
from sleepstack import wiring
from sleepstack.settings import Settings
from speed_layer.store import LiveStore

__all__ = ["BAD_RECORDS", "DemoResult", "run_demo", "truth_table"]

#: Contract-breaking payloads the demo sends along, to show quarantine at work.
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
    ep = sim.epochs
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
        }
    )


@dataclass
class DemoResult:
    produced: int = 0
    streamed: int = 0
    speed_layer: int = 0
    landed: int = 0
    duplicated: int = 0
    quarantined_speed: int = 0
    quarantined_delivery: int = 0
    nights: pd.DataFrame = field(default_factory=pd.DataFrame)

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
    say: Callable[[str], Any] = print,
) -> DemoResult:
    """Run the whole path on a fresh local stack under ``home`` (wiped first)."""
    check_tools(java=True)
    if home.exists():
        shutil.rmtree(home)
    home.mkdir(parents=True)
    lake = home / "lake"
    stack = LocalStack(home)
    endpoint = stack.up(environment=environment)
    try:
        return _run(home, lake, endpoint, subjects, nights, seed, environment, progress, say)
    finally:
        stack.down()


def _run(
    home: Path,
    lake: Path,
    endpoint: str,
    subjects: int,
    nights: int,
    seed: int,
    environment: str,
    progress: bool,
    say: Callable[[str], Any],
) -> DemoResult:
    settings = Settings.from_env({"SLEEPSTACK_HOME": str(home), "SLEEPSTACK_ENV": environment})
    stream = wiring.stream_name(settings)
    esm = event_source_settings(load_template(settings.template), Environment=environment)
    client = wiring.kinesis_client(settings, endpoint)
    result = DemoResult()
    say(f"local stack: kinesalite at {endpoint}, stream {stream}")

    # 1. simulate -> BLE peripherals (fake bleak backend) -> collector -> spool -> Kinesis --
    configs = cohort(subjects, nights, seed)
    sims = []
    truth = []
    for cfg in tqdm(configs, desc="simulate", unit="night", disable=not progress):
        sim = simulate_night(cfg)
        sims.append(sim)
        truth.append(truth_table(sim))
    (home / "truth").mkdir()
    pq.write_table(pa.concat_tables(truth), home / "truth" / "epochs.parquet")
    ingest = collect_simulated(
        sims, Spool(home / "spool" / "collector.sqlite"), KinesisProducer(client, stream), seed=seed, progress=progress
    )
    result.produced, result.streamed = ingest.records, ingest.sent
    say(ingest.summary_line())
    KinesisProducer(client, stream).put_encoded(BAD_RECORDS)

    # 2a. speed layer ----------------------------------------------------------------------
    letters = wiring.dead_letters(settings, home / "dead-letters" / "speed-layer")
    handler = wiring.speed_layer_handler(settings, letters=letters)
    store = handler.store
    mapping = EventSourceMapping(
        client,
        stream,
        handler,
        Checkpoints(home / "checkpoints" / "speed-layer.json"),
        letters,
        batch_size=int(esm["BatchSize"]),
        bisect_on_error=bool(esm["BisectBatchOnFunctionError"]),
        max_retries=int(esm["MaximumRetryAttempts"]),
    )
    with tqdm(total=result.streamed + len(BAD_RECORDS), desc="speed layer", unit="rec", disable=not progress) as bar:
        last = 0

        def tick(event: dict[str, Any], context: Any) -> dict[str, Any]:
            nonlocal last
            resp = handler(event, context)
            bar.update(handler.stats.records - last)
            last = handler.stats.records
            return resp

        mapping.handler = tick
        mapping.drain()
    # records with documents, plus those that validly yield none (partial bed frames at gaps)
    result.speed_layer = store.distinct_record_ids() + len(handler.stats.without_documents)
    result.quarantined_speed = handler.stats.quarantined

    # 2b. raw landing + nightly batch ------------------------------------------------------
    delivery = FirehoseDelivery(
        client, stream, lake, Checkpoints(home / "checkpoints" / "delivery.json"), wiring.dead_letters(settings, lake)
    )
    with tqdm(total=1, desc="firehose delivery", disable=not progress) as bar:
        delivery.drain()
        bar.update(1)
    result.quarantined_delivery = delivery.stats.errors
    from batch_layer.nightly_job import run_nightly
    from local.spark import local_spark

    night_names = sorted({night_of(c.t0_ms) for c in configs})
    with tqdm(total=1, desc=f"nightly batch (Spark, {len(night_names)} nights)", disable=not progress) as bar:
        spark = local_spark()
        run_nightly(spark, str(lake / "raw"), str(lake / "curated"), night_names)
        bar.update(1)

    _serve(home, lake, store, result, say)
    return result


def _serve(home: Path, lake: Path, store: LiveStore, result: DemoResult, say: Callable[[str], Any]) -> None:
    """Count what landed, run the analyst query and compare stages with the ground truth."""
    sql = LocalSqlEngine(lake)
    counts = sql.query("SELECT count(*) AS n, count(DISTINCT record_id) AS d FROM sleepstack.raw_records")
    result.landed, result.duplicated = int(counts["d"][0]), int(counts["n"][0] - counts["d"][0])
    nights_df = sql.query(load_query("night_summaries"))
    sql.con.register("truth", pq.read_table(home / "truth" / "epochs.parquet"))
    agree = sql.con.execute(
        "SELECT e.subject_id, e.night,"
        " round(100 * avg(CASE WHEN e.stage = t.stage THEN 1 ELSE 0 END), 1) AS agreement_pct,"
        " round(100 * avg(CASE WHEN (e.stage = 0) = (t.stage = 0) THEN 1 ELSE 0 END), 1) AS sleep_wake_pct"
        " FROM sleepstack.epoch_stages e JOIN truth t USING (subject_id, night, epoch_start_ms) GROUP BY 1, 2"
    ).fetchdf()
    result.nights = nights_df.merge(agree, on=["subject_id", "night"], how="left")
    say("")
    say(_format_table(result.nights))
    say("")
    vitals, alerts, strap = store.count("vitals"), store.count("alerts"), store.count("samples")
    say(f"live store: {vitals} epoch-vitals docs, {alerts} alerts, {strap} strap heart-rate docs")
    say(
        f"quarantined: speed_layer={result.quarantined_speed} delivery={result.quarantined_delivery}"
        f" (of {len(BAD_RECORDS)} contract-breaking records sent;"
        f" reasons under {home / 'dead-letters'} and {lake / 'errors'})"
    )
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
        "agreement_pct": "agree %",
        "sleep_wake_pct": "S/W agree %",
    }
    return df[list(cols)].rename(columns=cols).to_string(index=False)
