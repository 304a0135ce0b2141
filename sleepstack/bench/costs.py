"""``python -m sleepstack.bench.costs``: the speed layer's DynamoDB volumes and the monthly bill, before and after.

Measured, not assumed: one simulated night (strap + 100 Hz bed sensor, with breathing
pauses so alerts open and close) goes through :func:`speed_layer.processing.apply_records`
one invocation per second of stream time (a 1-s batching window: every device with a
record in that second is in the invocation). For each invocation it counts, as the
handler does them:

* **before** (the stack before ADR 0007): every present device's state written, as JSON
  text; write units ``ceil(item bytes / 1 KB)``;
* **after**: only the states that changed, in :mod:`core.live.state_codec` bytes;
* reads: one strongly consistent read per present device (``ceil(item / 4 KB)`` read units).

Volumes are scaled to a 10-h night and 30 nights a month and priced at DynamoDB's
on-demand list prices (us-east-1). Every other line of the bill is carried from
``docs/costs.md`` (they come from ``sleepstack bench ingest`` and ``bench speed`` and
did not change), so the totals are comparable; the run prints both columns side by side.
"""

from __future__ import annotations

import argparse
import json
import math
from typing import Any, Final

from core.contract import Record
from core.live.alerts import AlertRules
from core.live.state_codec import encode_state
from sleepstack.bench.fixtures import simulated_night_records
from speed_layer.processing import apply_records
from speed_layer.state_store import item_bytes

__all__ = ["bill", "main", "state_volumes"]

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
#: The key and TTL attributes every state item carries besides its state.
_KEY_TTL: Final = {"expires_at": {"N": "1767660570"}}


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


def bill(volumes: dict[str, Any]) -> dict[str, Any]:
    """Monthly USD at 100 and 1,000 beds, before and after, from :func:`state_volumes`."""
    per = volumes["per_10h_bed_night"]
    out: dict[str, Any] = {}
    for beds, others in OTHER_LINES_USD.items():
        rest = sum(others.values())
        reads = per["rru"] * NIGHTS_PER_MONTH * beds * RRU_USD
        row: dict[str, Any] = {}
        for when in ("before", "after"):
            dynamodb = per[f"wru_{when}"] * NIGHTS_PER_MONTH * beds * WRU_USD + reads
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
    print(json.dumps({**volumes, "monthly": bill(volumes)}, indent=2))


if __name__ == "__main__":
    main()
