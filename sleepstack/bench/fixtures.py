"""What the benchmarks share: simulated records, a private home's settings, a private stream."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from core.contract import BedFrame, Record
from local.kinesis import KinesaliteServer
from simulator.nights import FIRST_NIGHT_T0_MS, SimConfig, night_records, simulate_night
from sleepstack import wiring
from sleepstack.settings import Settings
from speed_layer.store import LiveStore

__all__ = [
    "ONE_SHARD",
    "bench_settings",
    "index_and_stage",
    "index_records",
    "mixed_records",
    "one_shard",
    "private_stream",
    "send_at",
    "simulated_night_records",
    "stage_records",
]


def simulated_night_records(subject_id: str, seed: int, apnea_per_hour: float = 0.0) -> list[Record]:
    """One simulated night (strap + 100 Hz bed) of ``subject_id`` as contract records, in time order."""
    sim = simulate_night(SimConfig(subject_id, FIRST_NIGHT_T0_MS, seed, apnea_per_hour=apnea_per_hour))
    records: list[Record] = [*night_records(sim, strap_device=f"strap-{subject_id}", bed_device=f"bed-{subject_id}")]
    return records


#: The one shard a benchmark's packing assumes (a collector whose devices all hash to one shard).
ONE_SHARD = "shardId-000000000000"


def one_shard(_partition_key: str) -> str:
    """A shard map of one shard: every key lands on :data:`ONE_SHARD`."""
    return ONE_SHARD


def send_at(r: Record) -> int:
    """When a record leaves the collector (ms): a strap notification at once, a bed frame when complete."""
    return r.event_time_ms + (round(r.duration_ms) if isinstance(r, BedFrame) else 0)


def mixed_records(n: int, subjects: int, seed: int) -> list[Record]:
    """``n`` records of several subjects interleaved in time order, from mid-night (everyone in bed)."""
    per = -(-n // subjects)
    out: list[Record] = []
    for k in range(subjects):
        recs = simulated_night_records(f"b{k:03d}", seed + k, apnea_per_hour=4.0)
        start = len(recs) // 3
        out += recs[start : start + per]
    out.sort(key=lambda r: r.event_time_ms)
    return out[:n]


def bench_settings(home: Path) -> Settings:
    """Local settings of a private benchmark home (nothing read from the environment)."""
    return Settings.from_env({"SLEEPSTACK_HOME": str(home), "SLEEPSTACK_ENV": "bench"})


@contextmanager
def private_stream(home: Path) -> Iterator[tuple[Settings, Any, str]]:
    """A private kinesalite under ``home`` with the template's streams: (settings, client, stream)."""
    settings = bench_settings(home)
    stream = KinesaliteServer(settings.paths)
    endpoint = stream.up(environment=settings.environment)
    try:
        yield settings, wiring.kinesis_client(settings, endpoint), wiring.stream_name(settings)
    finally:
        stream.down()


def index_records(
    settings: Settings, recs: list[Record], *, batch: int = 500, store: LiveStore | None = None, **stores: Any
) -> None:
    """Index ``recs`` into the settings' live store (or ``store``) through the real
    speed-layer handler, in Kinesis events of ``batch`` records (as the event-source mapping would).
    ``stores``: the handler's other stores instead of the settings' (``states``, ``letters``)."""
    from datetime import UTC, datetime

    from core.contract import to_wire
    from local.event_source_mapping import LambdaContext, kinesis_event

    handler = wiring.speed_layer_handler(settings, store=store, **stores)
    now = datetime.now(tz=UTC)
    for start in range(0, len(recs), batch):
        rows = [
            {"PartitionKey": r.device_id, "SequenceNumber": str(10**20 + start + i), "Data": to_wire(r)}
            | {"ApproximateArrivalTimestamp": now}
            for i, r in enumerate(recs[start : start + batch])
        ]
        event = kinesis_event(rows, shard_id=ONE_SHARD, arn="arn:aws:kinesis:local:0:stream/x", region="local")
        resp = handler(event, LambdaContext())
        if resp["batchItemFailures"]:
            raise RuntimeError(f"the handler failed records: {resp['batchItemFailures'][:3]}")


def stage_records(lake: Path, recs: list[Record], tz: str = "UTC") -> None:
    """Stage ``recs`` per subject-night with the nightly job's own functions
    (:func:`core.nights.nightly.stage_subject_night`, :func:`core.nights.nightly.summarize_night`) and
    write the curated tables' Parquet under ``lake`` as the job lays them out (no Spark)."""
    import pandas as pd

    from batch_layer.stage_models import bundled
    from core.contract import to_row
    from core.contract.epochs import night_of
    from core.nights.nightly import stage_subject_night, summarize_night

    raw = pd.DataFrame([to_row(r) for r in recs])
    raw["night"] = [night_of(int(t), tz) for t in raw["event_time_ms"]]
    for (subject, night), rows in raw.groupby(["subject_id", "night"]):
        epochs = stage_subject_night(rows, models=bundled())
        if epochs.empty:
            continue
        for table, df in (("epochs", epochs), ("nights", summarize_night(epochs, bundled()))):
            folder = lake / "curated" / table / f"night={night}"
            folder.mkdir(parents=True, exist_ok=True)
            df.drop(columns="night").to_parquet(folder / f"part-{subject}.parquet", index=False)


def index_and_stage(settings: Settings, recs: list[Record]) -> str:
    """Index ``recs`` through the speed layer and stage them (a home for the live views and the
    night pages); the first record's night."""
    from core.contract.epochs import night_of

    index_records(settings, recs)
    stage_records(settings.lake, recs, settings.tz)
    return night_of(recs[0].event_time_ms, settings.tz)
