from __future__ import annotations

import tempfile
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest
from hypothesis import settings as hypothesis_settings
from hypothesis.configuration import set_hypothesis_home_dir
from moto import mock_aws

from core.contract.kpl import aggregate, unpack
from simulator.nights import SimConfig, SimulatedNight, simulate_night

# property tests keep nothing in the checkout (a test run leaves no files behind): no example
# database, and Hypothesis's own cache under the system's temporary directory
set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "sleepstack-hypothesis")
hypothesis_settings.register_profile("sleepstack", database=None)
hypothesis_settings.load_profile("sleepstack")

#: Real recorded data beside the checkout (see ../shared/data/README.md).
#: The checkout; tests read its files (the template, the notebooks) directly.
REPO_ROOT = Path(__file__).resolve().parent.parent
DATA = REPO_ROOT.parent / "shared" / "data"
T0_MS = 1_767_651_000_000  # 2026-01-05T22:10Z


def require_data(rel: str) -> Path:
    path = DATA / rel
    if not path.exists():
        pytest.skip(f"shared data {rel} not present")
    return path


@cache
def sim_night(seed: int = 1, apnea_per_hour: float = 4.0) -> SimulatedNight:
    return simulate_night(SimConfig("s001", T0_MS, seed=seed, apnea_per_hour=apnea_per_hour))


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


STREAM = "sleepstack-test-ingest"


@pytest.fixture
def kinesis(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A moto Kinesis client with a two-shard stream named :data:`STREAM`."""
    for k, v in {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(k, v)
    with mock_aws():
        client = boto3.client("kinesis", region_name="us-east-1")
        client.create_stream(StreamName=STREAM, ShardCount=2)
        yield client


class FlakyClient:
    """Wraps a Kinesis client; the first PutRecords call rejects every other entry."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.calls = inner, []

    def __getattr__(self, name: str) -> Any:  # list_shards and the rest pass through
        return getattr(self.inner, name)

    def put_records(self, **kw: Any) -> dict[str, Any]:
        self.calls.append(len(kw["Records"]))
        if len(self.calls) > 1:
            return dict(self.inner.put_records(**kw))
        ok = self.inner.put_records(StreamName=kw["StreamName"], Records=kw["Records"][::2])["Records"]
        out: list[dict[str, Any]] = []
        for i in range(len(kw["Records"])):
            out.append(
                ok[i // 2]
                if i % 2 == 0
                else {"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "slow down"}
            )
        return {"FailedRecordCount": len(kw["Records"]) // 2, "Records": out}


def aggregate_one(key: str, datas: list[bytes]) -> bytes:
    """A KPL aggregate of ``datas``, all under partition key ``key``."""
    return aggregate([(key, d) for d in datas])


def user_records(client: Any, stream: str) -> list[dict[str, Any]]:
    """Every user record of ``stream`` in stream order: KPL aggregates unpacked, plain records as they are."""
    return [{**r, "Data": d, "SubSequence": sub} for r in read_stream(client, stream) for sub, d in unpack(r["Data"])]


def read_stream(client: Any, stream: str) -> list[dict[str, Any]]:
    """Every record of every shard of ``stream``, shard by shard in sequence order."""
    out: list[dict[str, Any]] = []
    for shard in client.list_shards(StreamName=stream)["Shards"]:
        it = client.get_shard_iterator(StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON")[
            "ShardIterator"
        ]
        while True:
            resp = client.get_records(ShardIterator=it, Limit=10000)
            out += resp["Records"]
            if not resp["Records"]:
                break
            it = resp["NextShardIterator"]
    return out


async def record_until_played(world: Any, collector: Any) -> None:
    """Run ``collector`` over the fake BLE ``world`` until every peripheral has played its script."""
    import asyncio

    stop = asyncio.Event()

    async def watch() -> None:
        while not world.all_finished:
            await asyncio.sleep(0.01)
        stop.set()

    await asyncio.wait_for(asyncio.gather(collector.run(stop), watch()), timeout=60)
