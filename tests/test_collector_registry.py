"""The collector files every notification under the subject the registry assigns its device to then."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.contract import from_wire
from core.registry import Assignment, Device, Subject
from ingest.assignments import AssignmentCache
from ingest.collector import Collector, DeviceTarget
from ingest.fake_ble import Drop, FakeBleWorld, FakePeripheral
from ingest.simulated_devices import simulated_peripherals
from ingest.spool import Spool
from local.registry import LocalRegistry
from tests.conftest import record_until_played, sim_night

MIN = 60_000


def _strap_minutes(minutes: int) -> tuple[FakePeripheral, int]:
    (strap,) = [p for p in simulated_peripherals([sim_night()], drop_ms=0, malformed=False) if p.kind == "strap"]
    t0 = sim_night().t0_ms
    strap.script = [it for it in strap.script if isinstance(it, Drop) or it[0] < t0 + minutes * MIN]
    strap.subject_id = None  # a live strap: the recording says nothing about who wears it
    return strap, t0


@settings(max_examples=8, deadline=None)
@given(
    cuts=st.lists(st.integers(1, 11), min_size=0, max_size=3, unique=True),
    whom=st.lists(st.sampled_from(["s001", "s002", None]), min_size=4, max_size=4),
)
def test_a_shared_strap_lands_under_whoever_wore_it_at_each_moment(
    tmp_path_factory: pytest.TempPathFactory, cuts: list[int], whom: list[str | None]
) -> None:
    tmp = tmp_path_factory.mktemp("c")
    strap, t0 = _strap_minutes(12)
    reg = LocalRegistry(tmp / "registry.sqlite")
    for sid in ("s001", "s002"):
        reg.add_subject(Subject(sid, enrolled_ms=t0 - MIN))
    reg.add_device(Device(strap.address, "strap"), at_ms=t0)
    bounds = [t0 - MIN, *sorted(t0 + c * MIN for c in cuts), t0 + 60 * MIN]
    for (start, end), sid in zip(itertools.pairwise(bounds), whom, strict=False):
        if sid is not None:  # None: nobody wore it then
            reg.assign(Assignment(strap.address, start, sid, end), at_ms=t0)
    cache = AssignmentCache(reg.assignments)
    spool = Spool(tmp / "spool.sqlite", synchronous="NORMAL")
    world = FakeBleWorld([strap])
    collector = Collector(
        spool,
        [DeviceTarget(strap.address)],
        resolve=cache.subject_at,
        backend=world.client_backend(),
        clock=world.clock_ms,
        backoff_base_s=0.001,
    )
    asyncio.run(record_until_played(world, collector))
    spool.frame_all(end_of_stream=True)
    records = [from_wire(e.data) for e in spool.pending(10**9, 10**12)]
    assignments = reg.assignments()
    for r in records:  # every record (statuses too) under the subject assigned at its device time
        owner = [a.subject_id for a in assignments if a.covers(r.device_time_ms)]
        assert owner == [r.subject_id]
    played = sum(1 for it in strap.script if not isinstance(it, Drop))
    measured = [r for r in records if r.kind != "status"]  # the collector's device statuses obey it too (above)
    assert len(measured) + collector.stats.unassigned == played
    assert collector.stats.per_device[strap.address]["unassigned"] == collector.stats.unassigned


def test_the_cache_sees_a_change_within_its_refresh_and_keeps_working_offline() -> None:
    now = [0.0]
    table = [Assignment("strap-1", 0, "s001")]
    failing = [False]

    def load() -> list[Assignment]:
        if failing[0]:
            raise OSError("registry unreachable")
        return list(table)

    cache = AssignmentCache(load, refresh_s=30.0, clock=lambda: now[0])
    assert cache.subject_at("strap-1", 10) == "s001"
    table[:] = [Assignment("strap-1", 0, "s001", 5), Assignment("strap-1", 5, "s002")]
    now[0] = 29.0
    assert cache.subject_at("strap-1", 10) == "s001"  # not yet re-read
    now[0] = 30.0
    assert cache.subject_at("strap-1", 10) == "s002"  # within a refresh interval of the change
    failing[0] = True
    now[0] = 90.0
    assert cache.subject_at("strap-1", 10) == "s002" and cache.refresh_failures == 1  # offline: the last read
