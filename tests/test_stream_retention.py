"""The local stream keeps records as long as the template's stream does (RetentionPeriodHours).

kinesalite, like Kinesis, creates a stream with 24 h of retention and trims older records as
they are read. The template keeps 7 days, so the local stack gives its streams the template's
retention: a delivery stalled for more than a day still finds every record, as on AWS.
Simulated time is kinesalite's own clock, shifted at start (``KinesaliteServer.clock_skew_ms``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from dead_letters import LocalDeadLetters
from ingest.producer import KinesisProducer
from local.firehose import FirehoseDelivery
from local.home import Home
from local.kinesis import KinesaliteServer, local_kinesis_client
from local.shard_reader import Checkpoints
from local.supervisor import wait_gone
from local.template import load_template, stream_specs
from simulator.nights import night_records
from tests.conftest import sim_night

pytestmark = pytest.mark.integration

HOUR_MS = 3_600_000


def test_the_local_stream_has_the_templates_retention() -> None:
    (spec,) = stream_specs(load_template(), Environment="dev")
    assert spec.retention_hours == 168


def _restart(home: Home, stream: KinesaliteServer, skew_hours: int) -> tuple[KinesaliteServer, Any, str]:
    """Stop ``stream`` and start the same home's stream ``skew_hours`` later (its clock shifted)."""
    state = stream.state()
    assert state is not None and stream.down()
    assert wait_gone(int(state["pid"]), timeout_s=10.0)
    later = KinesaliteServer(home, clock_skew_ms=skew_hours * HOUR_MS)
    endpoint = later.up()
    return later, local_kinesis_client(endpoint), endpoint


def _lake_ids(lake: Path) -> list[str]:
    return [
        i
        for f in lake.glob("raw/dt=*/*.parquet")
        for i in pq.read_table(f, columns=["record_id"])["record_id"].to_pylist()
    ]


def test_a_delivery_stalled_past_a_day_loses_nothing(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    (spec,) = stream_specs(load_template(), Environment="dev")
    recs = night_records(sim_night(), strap_device="strap-1", bed_device="bed-1")[:300]
    stream = KinesaliteServer(home)
    client = local_kinesis_client(stream.up())
    try:
        summary = client.describe_stream_summary(StreamName=spec.name)["StreamDescriptionSummary"]
        assert summary["RetentionPeriodHours"] == 168
        KinesisProducer(client, spec.name).put(recs)
        # the delivery is down: 25 h pass before it reads the stream again
        stream, client, _ = _restart(home, stream, skew_hours=25)
        lake = tmp_path / "lake"
        delivery = FirehoseDelivery(
            client, spec.name, lake, Checkpoints(tmp_path / "delivery.json"), LocalDeadLetters(lake)
        )
        delivery.drain()
        assert sorted(_lake_ids(lake)) == sorted(r.record_id for r in recs)  # nothing lost, nothing doubled
        assert delivery.stats.checkpoint_resets == 0
        # the clock really moved: past the 7 days, the stream has trimmed them, as Kinesis would
        stream, client, _ = _restart(home, stream, skew_hours=169)
        late = FirehoseDelivery(
            client, spec.name, tmp_path / "late", Checkpoints(tmp_path / "late.json"), LocalDeadLetters(lake)
        )
        late.drain()
        assert late.stats.records == 0
    finally:
        stream.down()
