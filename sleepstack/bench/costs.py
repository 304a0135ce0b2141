"""``python -m sleepstack.bench.costs``: the speed layer's DynamoDB volumes and the monthly bill, before and after.

Measured, not assumed: one simulated night (strap + 100 Hz bed sensor, with breathing
pauses so alerts open and close) goes through :func:`speed_layer.processing.apply_records`
one invocation per second of stream time (a 1-s batching window: every device with a
record in that second is in the invocation). For each invocation it counts, as the
handler does them:

* **before** (the stack before ADR 0007): every present device's state written, as JSON
  text; write units ``ceil(item bytes / 1 KB)``;
* **after**: only the states that changed, in :mod:`core.live.state_codec` bytes;
* reads: one strongly consistent read per present device (``ceil(item / 4 KB)`` read units);
* **epoch writes** (ADR 7, the default since): the night through the real
  :class:`speed_layer.handler.SpeedLayerHandler` with its
  :class:`~speed_layer.epoch_writes.EpochWriter`, one Kinesis event per invocation, over a
  state store that counts what the handler asks of it: state writes and their write units,
  lease writes (one conditional write per shard per invocation, one write unit), reads.
  Lease writes are billed per shard (they do not grow with beds): 1 shard at 100 beds, 2
  at 1,000 (the v2 stream of ``docs/costs.md``).

Volumes are scaled to a 10-h night and 30 nights a month and priced at DynamoDB's
on-demand list prices (us-east-1). Every other line of the bill is carried from
``docs/costs.md`` (they come from ``sleepstack bench ingest`` and ``bench speed`` and
did not change), so the totals are comparable; the run prints both columns side by side.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from core.contract import Record, to_wire
from core.live.alerts import AlertRules
from core.live.state_codec import encode_state
from sleepstack.bench.fixtures import ONE_SHARD, simulated_night_records
from speed_layer.processing import apply_records
from speed_layer.state_store import Lease, Persisted, StateStore, item_bytes

__all__ = ["bill", "epoch_write_volumes", "main", "state_volumes"]

WRU_USD: Final = 0.625e-6
RRU_USD: Final = 0.125e-6
NIGHT_H: Final = 10.0
NIGHTS_PER_MONTH: Final = 30
#: The monthly lines of docs/costs.md other than DynamoDB (v2, ten beds per collector), USD.
OTHER_LINES_USD: Final = {
    100: {
        "kinesis": 26,
        "lambda_speed": 1,
        "lambda_transform": 1,
        "opensearch": 199,
        "firehose": 6,
        "s3": 3,
        "glue": 5,
        "athena": 1,
        "cloudwatch": 5,
        "kms": 3,
    },
    1000: {
        "kinesis": 53,
        "lambda_speed": 4,
        "lambda_transform": 5,
        "opensearch": 738,
        "firehose": 62,
        "s3": 25,
        "glue": 9,
        "athena": 8,
        "cloudwatch": 20,
        "kms": 10,
    },
}
#: Shards of the v2 stream (docs/costs.md): each renews its lease once per invocation.
SHARDS: Final = {100: 1, 1000: 2}
#: The key and TTL attributes every state item carries besides its state.
_KEY_TTL: Final = {"expires_at": {"N": "1767660570"}}
#: A Kinesis sequence number as large as AWS's (56 digits), for the position attribute's size.
_SEQ_BASE: Final = 49_650_000_000_000_000_000_000_000_000_000_000_000_000_000_000_000_000


class _Counting(StateStore):
    """The handler's state store, counting what it is asked: writes and write units as
    DynamoDB bills the items, lease writes, reads."""

    def __init__(self, inner: StateStore) -> None:
        self.inner = inner
        self.n = dict.fromkeys(("writes", "wru", "lease_writes", "reads", "rru", "largest_item_bytes"), 0)

    def get_many(self, device_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        return {d: p.state for d, p in self.get_positioned(device_ids).items()}

    def put_many(self, states: Mapping[str, dict[str, Any]]) -> None:
        self.put_positioned({d: Persisted(s, None) for d, s in states.items()})

    def delete_many(self, device_ids: Iterable[str]) -> int:
        return self.inner.delete_many(device_ids)

    def get_positioned(self, device_ids: Iterable[str]) -> dict[str, Persisted]:
        ids = list(device_ids)
        out = self.inner.get_positioned(ids)
        self.n["reads"] += len(ids)
        self.n["rru"] += len(ids)  # every item is under 4 KB
        return out

    def put_positioned(self, states: Mapping[str, Persisted]) -> None:
        for d, p in states.items():
            item: dict[str, dict[str, Any]] = {
                "device_id": {"S": d},
                "state": {"B": encode_state(d, p.state)},
                **_KEY_TTL,
            }
            size = item_bytes({**item, "after_seq": {"S": str(p.after_seq)}})
            self.n["writes"] += 1
            self.n["wru"] += math.ceil(size / 1024)
            self.n["largest_item_bytes"] = max(self.n["largest_item_bytes"], size)
        self.inner.put_positioned(states)

    def renew_lease(self, shard: str, owner: str, counter: int, horizon: int | None) -> Lease | None:
        self.n["lease_writes"] += 1
        return self.inner.renew_lease(shard, owner, counter, horizon)

    def take_lease(self, shard: str, owner: str, horizon: int) -> tuple[Lease, Lease | None]:
        self.n["lease_writes"] += 1
        return self.inner.take_lease(shard, owner, horizon)


def _item(device: str, state: dict[str, Any], *, compact: bool) -> int:
    value = {"B": encode_state(device, state)} if compact else {"S": json.dumps(state, separators=(",", ":"))}
    return item_bytes({"device_id": {"S": device}, "state": value, **_KEY_TTL})


def _invocations(records: list[Record], window_s: float = 1.0) -> list[list[Record]]:
    """The records grouped by ``window_s`` of event time: what a batching window hands one invocation."""
    out: list[list[Record]] = []
    w_ms = window_s * 1000
    for r in records:
        if out and out[-1][0].event_time_ms // w_ms == r.event_time_ms // w_ms:
            out[-1].append(r)
        else:
            out.append([r])
    return out


def state_volumes(seed: int = 0, hours: float | None = None, window_s: float = 1.0) -> dict[str, Any]:
    """State writes, write units, reads and item sizes of one bed (strap + bed) for a night,
    with invocations every ``window_s`` (the event source mapping's batching window)."""
    night = simulated_night_records("c000", seed, apnea_per_hour=8.0)
    if hours is not None:
        night = [r for r in night if r.event_time_ms < night[0].event_time_ms + hours * 3_600_000]
    rules = AlertRules()
    states: dict[str, dict[str, Any]] = {}
    n: dict[str, int] = dict.fromkeys(("writes_before", "wru_before", "writes_after", "wru_after", "reads", "rru"), 0)
    largest = {"before": 0, "after": 0}
    for batch in _invocations(night, window_s):
        read = {d: json.loads(json.dumps(s)) for d, s in states.items()}  # as stored and read back
        applied = apply_records(batch, read, rules)
        for device, state in applied.states.items():
            before, after = _item(device, state, compact=False), _item(device, state, compact=True)
            largest["before"], largest["after"] = max(largest["before"], before), max(largest["after"], after)
            n["reads"] += 1
            n["rru"] += math.ceil(_item(device, read[device], compact=True) / 4096) if device in read else 1
            n["writes_before"] += 1
            n["wru_before"] += math.ceil(before / 1024)
            if state != read.get(device):
                n["writes_after"] += 1
                n["wru_after"] += math.ceil(after / 1024)
        states.update(applied.states)
    hours_run = (night[-1].event_time_ms - night[0].event_time_ms) / 3_600_000
    scale = NIGHT_H / hours_run
    return {
        "night_hours": round(hours_run, 2),
        "batching_window_s": window_s,
        "invocations_with_this_bed": len(_invocations(night, window_s)),
        "largest_item_bytes": largest,
        "per_10h_bed_night": {k: round(v * scale) for k, v in n.items()},
    }


def epoch_write_volumes(seed: int = 0, hours: float | None = None, window_s: float = 1.0) -> dict[str, Any]:
    """State writes, lease writes and reads of one bed's night through the real handler with
    epoch writes (a local state store and live store in a temporary folder)."""
    from dead_letters import LocalDeadLetters
    from local.event_source_mapping import LambdaContext, kinesis_event
    from local.live_store import LocalLiveStore
    from local.state_store import LocalStateStore
    from speed_layer.epoch_writes import EpochWriter
    from speed_layer.handler import SpeedLayerHandler
    from speed_layer.replay import decoded

    night = simulated_night_records("c000", seed, apnea_per_hour=8.0)
    if hours is not None:
        night = [r for r in night if r.event_time_ms < night[0].event_time_ms + hours * 3_600_000]
    rows = [(_SEQ_BASE + i, to_wire(r), r.event_time_ms / 1000) for i, r in enumerate(night)]
    arn = "arn:aws:kinesis:us-east-1:000000000000:stream/bench"

    def replay(_source: str, _shard: str, after: int, before: int) -> Iterator[tuple[int, Record]]:
        return decoded((q, d) for q, d, _ in rows if after < q < before)

    invocations = _invocations(night, window_s)
    with tempfile.TemporaryDirectory(prefix="sleepstack-costs-") as tmp:
        states = _Counting(LocalStateStore(Path(tmp) / "state.sqlite"))
        live = LocalLiveStore(Path(tmp) / "live.sqlite")
        handler = SpeedLayerHandler(
            live,
            states,
            LocalDeadLetters(Path(tmp) / "dlq"),
            rules=AlertRules(),
            epoch_writes=EpochWriter(states, replay, owner="bench"),
        )
        at = 0
        for batch in invocations:
            event_rows = [
                {
                    "PartitionKey": "k",
                    "SequenceNumber": str(q),
                    "Data": d,
                    "ApproximateArrivalTimestamp": datetime.fromtimestamp(t, tz=UTC),
                }
                for q, d, t in rows[at : at + len(batch)]
            ]
            at += len(batch)
            handler(kinesis_event(event_rows, shard_id=ONE_SHARD, arn=arn, region="us-east-1"), LambdaContext())
        live.close()
    hours_run = (night[-1].event_time_ms - night[0].event_time_ms) / 3_600_000
    scale = NIGHT_H / hours_run
    n = states.n
    return {
        "night_hours": round(hours_run, 2),
        "batching_window_s": window_s,
        "invocations": len(invocations),
        "lease_writes_per_invocation": round(n["lease_writes"] / len(invocations), 4),
        "largest_item_bytes": n["largest_item_bytes"],
        "per_10h_bed_night": {k: round(v * scale) for k, v in n.items() if k != "largest_item_bytes"},
    }


def bill(volumes: dict[str, Any], epoch: dict[str, Any] | None = None) -> dict[str, Any]:
    """Monthly USD at 100 and 1,000 beds, before and after, from :func:`state_volumes`, and
    with epoch writes from :func:`epoch_write_volumes` when given."""
    per = volumes["per_10h_bed_night"]
    out: dict[str, Any] = {}
    for beds, others in OTHER_LINES_USD.items():
        rest = sum(others.values())
        reads = per["rru"] * NIGHTS_PER_MONTH * beds * RRU_USD
        row: dict[str, Any] = {}
        costs = {when: per[f"wru_{when}"] * NIGHTS_PER_MONTH * beds * WRU_USD + reads for when in ("before", "after")}
        if epoch is not None:
            e = epoch["per_10h_bed_night"]
            # one lease write per shard per invocation: a shard's invocations in a 10-h night
            lease_wru = epoch["lease_writes_per_invocation"] * NIGHT_H * 3600 / epoch["batching_window_s"]
            costs["epoch_writes"] = (
                e["wru"] * NIGHTS_PER_MONTH * beds * WRU_USD
                + lease_wru * NIGHTS_PER_MONTH * SHARDS[beds] * WRU_USD
                + e["rru"] * NIGHTS_PER_MONTH * beds * RRU_USD
            )
        for when, dynamodb in costs.items():
            total = rest + dynamodb
            row[when] = {
                "dynamodb_usd": round(dynamodb),
                "total_usd": round(total),
                "per_bed_usd": round(total / beds, 2),
            }
        out[f"{beds}_beds"] = row
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sleepstack.bench.costs", description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="simulated night's seed")
    parser.add_argument("--hours", type=float, default=None, help="only the night's first hours (scaled to 10 h)")
    parser.add_argument("--window-s", type=float, default=1.0, help="batching window: one invocation every so many s")
    args = parser.parse_args(argv)
    volumes = state_volumes(args.seed, args.hours, args.window_s)
    epoch = epoch_write_volumes(args.seed, args.hours, args.window_s)
    print(json.dumps({**volumes, "epoch_writes": epoch, "monthly": bill(volumes, epoch)}, indent=2))


if __name__ == "__main__":
    main()
