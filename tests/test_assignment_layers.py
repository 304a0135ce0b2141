"""A shared strap and bed handed between subjects during a night: every layer files each record
under the subject assigned at its device time (issue 26's property, through both layers).

The collector's resolution (:class:`ingest.assignments.AssignmentCache` over the registry's
assignments) is applied to the records of a simulated night, which then go through the
stream packing, the speed layer's handler, the raw landing and the nightly job's
functions (:mod:`sleepstack.evaluation.layers`). Checked: the live store's epoch documents
and the epochs staged from the lake's rows each carry exactly the assigned subject; nothing
recorded while the devices were assigned to nobody appears anywhere.
"""

from __future__ import annotations

import dataclasses
import itertools
from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.contract import Record
from core.contract.epochs import EPOCH_MS
from core.registry import Assignment
from ingest.assignments import AssignmentCache
from simulator.nights import SimConfig, simulate_night
from sleepstack.evaluation.layers import collected_records, run_layers
from tests.conftest import T0_MS

pytestmark = pytest.mark.slow

HOURS = 1.0
MIN = 60_000


@cache
def _records() -> tuple[Record, ...]:  # one simulated hour of a strap and a bed sensor
    night = simulate_night(SimConfig("sim", T0_MS, 3, apnea_per_hour=5.0))
    recs = collected_records(night, strap_device="strap-1", bed_device="bed-1")
    return tuple(r for r in recs if r.event_time_ms < T0_MS + HOURS * 3_600_000)


def _hand_overs(cuts: list[int], whom: list[str | None]) -> list[Assignment]:
    """Both devices go together: [t0 - 1 min, cut1) to whom[0], [cut1, cut2) to whom[1] ...; None: nobody."""
    bounds = [T0_MS - MIN, *sorted(T0_MS + c * MIN for c in cuts), T0_MS + 2 * 3_600_000]
    out = []
    for (a, b), sid in zip(itertools.pairwise(bounds), whom, strict=False):
        if sid is not None:
            out += [Assignment(d, a, sid, b) for d in ("strap-1", "bed-1")]
    return out


@settings(max_examples=4, deadline=None, derandomize=True)
@given(
    cuts=st.lists(st.integers(5, 55), min_size=1, max_size=2, unique=True),
    whom=st.lists(st.sampled_from(["s001", "s002", None]), min_size=3, max_size=3),
)
def test_every_layer_files_each_record_under_the_subject_assigned_at_its_device_time(
    cuts: list[int], whom: list[str | None]
) -> None:
    assignments = _hand_overs(cuts, whom)
    cache = AssignmentCache(lambda: assignments)
    mine = []
    for r in _records():
        subject = cache.subject_at(r.device_id, r.device_time_ms)
        if subject is not None:  # the collector does not collect for nobody
            mine.append(dataclasses.replace(r, subject_id=subject))
    out = run_layers(mine)

    def assigned(device: str, t_ms: int) -> str | None:
        return cache.subject_at(device, t_ms)

    boundaries = {a.from_ms for a in assignments} | {a.to_ms for a in assignments if a.to_ms}

    def straddles(epoch_ms: int) -> bool:  # an epoch cut by a hand-over holds two subjects' data
        return any(epoch_ms < b < epoch_ms + EPOCH_MS for b in boundaries)

    # the live store: each epoch document under the subject assigned over its epoch
    assert out.vitals
    for doc in out.vitals:
        if not straddles(doc["epoch_start_ms"]):
            assert doc["subject_id"] == assigned(doc["device_id"], doc["epoch_start_ms"]), doc["epoch_start_ms"]
    # the batch: each staged epoch with data only under a subject assigned then
    with_data = out.epochs[out.epochs["strap_data"].astype(bool) | out.epochs["bed_data"].astype(bool)]
    for subject, start in zip(with_data["subject_id"], with_data["epoch_start_ms"], strict=True):
        if not straddles(int(start)):
            assert subject in {assigned("strap-1", int(start)), assigned("bed-1", int(start))}, int(start)
    # nobody's time appears nowhere; each subject appears only if assigned some of the hour
    held = {a.subject_id for a in assignments if a.from_ms < T0_MS + HOURS * 3_600_000}
    assert set(out.nights["subject_id"]) <= held and {d["subject_id"] for d in out.vitals} <= held
