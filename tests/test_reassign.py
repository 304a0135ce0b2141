"""Correcting a mistaken assignment (``sleepstack reassign``): the plan, the registry on both
adapters, each data step, the journal's resume and rerun, and bad input."""

from __future__ import annotations

import dataclasses
import itertools
import json
import stat
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.contract import to_row
from core.registry import Assignment, Device, RegistryError, Subject, plan_reassignment, subject_at
from local.relabel import relabel_device
from registry.store import RegistryStore
from sleepstack import reassign, wiring
from sleepstack.cli import main
from speed_layer.processing import DOC_KINDS
from speed_layer.store import OpenSearchLiveStore, reassign_query
from tests.fake_opensearch import FakeCluster
from tests.reassign_helpers import (
    BED,
    REASSIGN,
    STRAP,
    T0_MS,
    WINDOW,
    build_home,
    in_window,
    lake_rows,
    live_docs,
    records,
)
from tests.test_registry import registry  # noqa: F401 - the fixture: SQLite and DynamoDB (moto)

H = 3_600_000


# ---------------------------------------------------------------------------- the plan
def _apply(state: dict[int, Assignment], plan: Any) -> None:
    for a in plan.deletes:
        del state[a.from_ms]
    for a in plan.writes:
        state[a.from_ms] = a


def _no_overlap(assignments: list[Assignment]) -> bool:
    ordered = sorted(assignments)
    return all(a.to_ms is not None and a.to_ms <= b.from_ms for a, b in itertools.pairwise(ordered))


_layout = st.lists(
    st.tuples(st.integers(0, 6), st.integers(1, 8), st.sampled_from(["s1", "s2", "s3"])), min_size=1, max_size=6
)
_windows = st.lists(
    st.tuples(st.integers(0, 60), st.integers(1, 20), st.sampled_from(["s1", "s2", "s3"])), min_size=1, max_size=6
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(layout=_layout, windows=_windows, open_end=st.booleans())
def test_any_reassignments_keep_one_subject_per_time_and_change_only_the_window(
    layout: list[tuple[int, int, str]], windows: list[tuple[int, int, str]], open_end: bool
) -> None:
    state: dict[int, Assignment] = {}
    t = 0
    for gap, length, subject in layout:  # the device's assignments, with gaps between some
        t += gap
        state[t] = Assignment("d", t, subject, t + length)
        t += length
    if open_end:
        last = max(state)
        state[last] = dataclasses.replace(state[last], to_ms=None)
    probes = range(-1, 80)
    for start, length, subject in windows:
        before = list(state.values())
        old = {p: subject_at(before, "d", p) for p in probes}
        try:
            plan = plan_reassignment(before, "d", start, start + length, subject)
        except RegistryError as exc:  # refused only when the window holds unassigned time
            assert exc.what == "window"
            assert any(old[p] is None for p in range(start, start + length))
            continue
        _apply(state, plan)
        after = list(state.values())
        assert _no_overlap(after)
        for p in probes:
            expected = subject if start <= p < start + length else old[p]
            assert subject_at(after, "d", p) == expected, p
        assert {a.subject_id for a in plan.previous} == {old[p] for p in range(start, start + length)}
        again = plan_reassignment(after, "d", start, start + length, subject)
        assert not again.changed  # a rerun changes nothing


def test_a_window_inside_one_assignment_splits_it_in_three() -> None:
    night = Assignment("d", 0, "s1", None)
    plan = plan_reassignment([night], "d", 10, 20, "s2")
    assert sorted(plan.writes) == [
        Assignment("d", 0, "s1", 10),
        Assignment("d", 10, "s2", 20),
        Assignment("d", 20, "s1"),
    ]
    assert plan.deletes == () and plan.previous == (Assignment("d", 10, "s1", 20),)


def test_a_window_joins_the_new_subjects_neighbour_and_removes_what_it_covers() -> None:
    current = [Assignment("d", 0, "s1", 10), Assignment("d", 10, "s2", 20), Assignment("d", 20, "s3", 30)]
    plan = plan_reassignment(current, "d", 5, 25, "s3")
    assert sorted(plan.writes) == [Assignment("d", 0, "s1", 5), Assignment("d", 5, "s3", 30)]
    assert plan.deletes == (Assignment("d", 10, "s2", 20), Assignment("d", 20, "s3", 30))
    assert plan.previous_subjects() == ["s1", "s2"]


@pytest.mark.parametrize(
    ("current", "window", "message"),
    [
        ([], (0, 10), "assigned to nobody from 1970-01-01T00:00:00Z until 1970-01-01T00:00:00Z"),
        ([Assignment("d", 0, "s1", 5), Assignment("d", 7_000, "s1", 20_000)], (0, 10_000), "from 1970-01-01T00:00:00Z"),
        ([Assignment("d", 0, "s1", 5_000)], (1_000, 9_000), "until 1970-01-01T00:00:09Z"),
    ],
)
def test_a_window_with_unassigned_time_is_refused_naming_it(
    current: list[Assignment], window: tuple[int, int], message: str
) -> None:
    with pytest.raises(RegistryError, match=message) as err:
        plan_reassignment(current, "d", *window, "s2")
    assert err.value.what == "window"


# ---------------------------------------------------------------------------- the registry
def _setup(reg: RegistryStore) -> None:
    for sid in ("s001", "s002"):
        reg.add_subject(Subject(sid, enrolled_ms=T0_MS - 48 * H))
    reg.add_device(Device(STRAP, "strap"), at_ms=T0_MS - 2 * H)
    reg.assign(Assignment(STRAP, T0_MS - H, "s001"), at_ms=T0_MS - 2 * H)


def test_the_registry_is_corrected_with_its_history_once(registry: RegistryStore) -> None:  # noqa: F811
    _setup(registry)
    done = registry.reassign(STRAP, *WINDOW, "s002", at_ms=T0_MS + 9 * H, why="strap swapped", by="nurse", op="x1")
    assert done.changed and done.previous_subjects() == ["s001"]
    assert registry.assignments(STRAP) == [
        Assignment(STRAP, T0_MS - H, "s001", WINDOW[0]),
        Assignment(STRAP, WINDOW[0], "s002", WINDOW[1]),
        Assignment(STRAP, WINDOW[1], "s001"),
    ]
    again = registry.reassign(STRAP, *WINDOW, "s002", at_ms=T0_MS + 10 * H, why="again", by="nurse", op="x1")
    assert not again.changed
    entries = [h for h in registry.history() if h["action"] == "reassigned"]
    assert len(entries) == 1
    (entry,) = entries
    assert entry["at_ms"] == T0_MS + 9 * H and entry["why"] == "strap swapped"
    assert entry["detail"]["by"] == "nurse" and entry["detail"]["op"] == "x1"
    assert entry["detail"]["previous"] == [Assignment(STRAP, *WINDOW[:1], "s001", WINDOW[1]).to_dict()]
    assert entry["detail"]["subject_id"] == "s002"


def test_the_registry_refuses_unknown_and_withdrawn(registry: RegistryStore) -> None:  # noqa: F811
    _setup(registry)
    with pytest.raises(RegistryError, match="not registered") as err:
        registry.reassign("nope", *WINDOW, "s002", at_ms=T0_MS)
    assert err.value.what == "device"
    with pytest.raises(RegistryError, match="not registered") as err:
        registry.reassign(STRAP, *WINDOW, "s009", at_ms=T0_MS)
    assert err.value.what == "subject"
    registry.withdraw("s002", at_ms=WINDOW[0] + 60_000)
    with pytest.raises(RegistryError, match="s002 was withdrawn at"):
        registry.reassign(STRAP, *WINDOW, "s002", at_ms=T0_MS)
    assert len(registry.assignments(STRAP)) == 1


# ---------------------------------------------------------------------------- the data steps
def test_the_lake_refiles_the_window_only_and_a_rerun_moves_nothing(tmp_path: Path) -> None:
    s = build_home(tmp_path / "home", live=False)
    before = lake_rows(s)
    stats = relabel_device(s.lake / "raw", STRAP, *WINDOW, "s002", op="op1")
    after = lake_rows(s)
    moved = [r for r in before if in_window(r["device_id"], r["device_time_ms"])]
    assert stats.rows_moved == len(moved) > 0 and stats.objects_rewritten >= 2
    assert sorted(r["record_id"] for r in after) == sorted(r["record_id"] for r in before)
    old = {r["record_id"]: r["subject_id"] for r in before}
    for r in after:
        assert r["subject_id"] == ("s002" if in_window(r["device_id"], r["device_time_ms"]) else old[r["record_id"]])
    assert relabel_device(s.lake / "raw", STRAP, *WINDOW, "s002", op="op1").rows_moved == 0


def test_a_lake_partitioned_by_subject_gets_the_rows_under_the_new_subjects_partition(tmp_path: Path) -> None:
    from batch_layer.lake_schema import RAW_SCHEMA

    old = tmp_path / "raw" / "dt=2026-01-05" / "kind=strap" / "subject_id=s001"
    old.mkdir(parents=True)
    near_edges = [
        r for r in records() if r.device_id == STRAP and any(abs(r.device_time_ms - edge) < 5_000 for edge in WINDOW)
    ]
    rows = [to_row(r) for r in near_edges]
    pq.write_table(pa.Table.from_pylist(rows, schema=RAW_SCHEMA), old / "part-0.parquet")
    inside = sorted(r.record_id for r in near_edges if in_window(r.device_id, r.device_time_ms))
    outside = sorted(r.record_id for r in near_edges if not in_window(r.device_id, r.device_time_ms))
    assert inside and outside
    assert relabel_device(tmp_path / "raw", STRAP, *WINDOW, "s002", op="op1").rows_moved == len(inside)
    new = tmp_path / "raw" / "dt=2026-01-05" / "kind=strap" / "subject_id=s002"
    moved = [r for p in new.glob("*.parquet") for r in pq.read_table(p).to_pylist()]
    kept = [r for p in old.glob("*.parquet") for r in pq.read_table(p).to_pylist()]
    assert sorted(r["record_id"] for r in moved) == inside and {r["subject_id"] for r in moved} == {"s002"}
    assert sorted(r["record_id"] for r in kept) == outside and {r["subject_id"] for r in kept} == {"s001"}


def test_the_embedded_live_store_refiles_the_devices_documents_of_the_window(tmp_path: Path) -> None:
    s = build_home(tmp_path / "home")
    before = live_docs(s)
    store = wiring.live_store(s)
    n = store.reassign(STRAP, *WINDOW, "s002")
    after = live_docs(s)
    assert n > 0 and after.keys() == before.keys()
    from speed_layer.processing import TIME_FIELD

    moved = 0
    for (kind, doc_id), doc in after.items():
        if in_window(doc["device_id"], doc[TIME_FIELD[kind]]):
            moved += 1
            assert doc == before[(kind, doc_id)] | {"subject_id": "s002"}
        else:
            assert doc == before[(kind, doc_id)]
    assert moved == n
    assert store.reassign(STRAP, *WINDOW, "s002") == 0
    # the live views read it: the subject's night now has the strap's window
    assert wiring.live_queries(s).between("vitals", "s002", *WINDOW)


def test_opensearch_updates_each_kind_by_query() -> None:
    cluster = FakeCluster(lambda sent: (200, {"updated": 3, "failures": [], "version_conflicts": 0}))
    store = OpenSearchLiveStore(cluster.client(), prefix="t")
    assert store.reassign(STRAP, *WINDOW, "s002") == 3 * len(DOC_KINDS)
    # each kind refreshed first: a by-query sees only what a refresh made searchable
    urls = [u for k in DOC_KINDS for u in (f"/t-{k}-*/_refresh", f"/t-{k}-*/_update_by_query")]
    assert [s.url for s in cluster.sent] == urls
    cluster.sent = [s for s in cluster.sent if s.url.endswith("_update_by_query")]
    sent = cluster.sent[0]
    assert sent.params["conflicts"] == "proceed" and sent.params["refresh"] == "true"
    assert sent.json() == reassign_query("vitals", STRAP, *WINDOW, "s002")
    body = sent.json()
    assert body["query"]["bool"]["filter"] == [
        {"term": {"device_id": STRAP}},
        {"range": {"epoch_start_ms": {"gte": WINDOW[0], "lt": WINDOW[1], "format": "epoch_millis"}}},
    ]
    assert body["query"]["bool"]["must_not"] == [{"term": {"subject_id": "s002"}}]
    assert body["script"]["params"] == {"subject_id": "s002"}


def test_opensearch_failures_are_a_store_error_to_rerun() -> None:
    from speed_layer.store import StoreError

    cluster = FakeCluster(lambda sent: (200, {"updated": 1, "failures": [], "version_conflicts": 2}))
    with pytest.raises(StoreError, match="2 version conflicts; run it again"):
        OpenSearchLiveStore(cluster.client(), prefix="t").reassign(STRAP, *WINDOW, "s002")


# ---------------------------------------------------------------------------- the journal
class _Stop(BaseException):
    """Stands for the process dying at a checkpoint (the kill -9 test: test_reassign_kill.py)."""


def _job(s: Any, restaged: list[list[str]]) -> reassign.Reassigner:
    def restage(nights: list[str]) -> list[str]:
        restaged.append(nights)
        return nights

    return reassign.Reassigner(
        registry=wiring.registry(s),
        raw=s.lake / "raw",
        live=lambda: wiring.live_store(s),
        restage=restage,
        journal_path=s.paths.reassign_journal,
    )


def _state(s: Any) -> tuple[Any, ...]:
    reg = wiring.registry(s)
    rows = sorted((r["record_id"], r["subject_id"]) for r in lake_rows(s))
    history = [(h["action"], h["detail"].get("previous")) for h in reg.history() if h["action"] == "reassigned"]
    return reg.assignments(), rows, live_docs(s), history


NOW = T0_MS + 48 * H  # both subjects' nights have closed (s002's ends 2026-01-06T22:00Z)


@pytest.mark.parametrize("stop_at", ["journal", "registry", "lake:written", "lake", "live", "restage"])
def test_a_correction_stopped_anywhere_resumes_to_the_same_result(
    stop_at: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = build_home(tmp_path / "whole")
    restaged_whole: list[list[str]] = []
    out = _job(whole, restaged_whole).run(STRAP, *WINDOW, "s002", why="swap", by="me", now_ms=NOW)
    assert out.did == reassign.STEPS and not out.resumed
    assert restaged_whole == [["2026-01-05", "2026-01-06"]]  # s001's night (UTC) and s002's (UTC+14)

    s = build_home(tmp_path / "home")

    def stop(name: str) -> None:
        if name == stop_at:
            raise _Stop(name)

    monkeypatch.setattr(reassign, "checkpoint_hook", stop)
    restaged: list[list[str]] = []
    with pytest.raises(_Stop):
        _job(s, restaged).run(STRAP, *WINDOW, "s002", why="swap", by="me", now_ms=NOW)
    monkeypatch.setattr(reassign, "checkpoint_hook", None)
    resumed = _job(s, restaged).run(STRAP, *WINDOW, "s002", why="swap", by="me", now_ms=NOW)
    assert resumed.resumed and resumed.journal.finished_ms == NOW
    assert _state(s) == _state(whole)
    assert restaged[-1] == ["2026-01-05", "2026-01-06"]
    finished = _job(s, restaged).run(STRAP, *WINDOW, "s002", why="swap", by="me", now_ms=NOW + 1)
    assert finished.already and finished.did == ()
    journal = s.paths.reassign_journal(resumed.journal.op)
    assert stat.S_IMODE(journal.stat().st_mode) == 0o600
    assert stat.S_IMODE(journal.parent.stat().st_mode) == 0o700


def test_a_night_in_progress_is_left_to_the_nightly_batch(tmp_path: Path) -> None:
    s = build_home(tmp_path / "home", live=False)
    restaged: list[list[str]] = []
    out = _job(s, restaged).run(STRAP, *WINDOW, "s002", why="", by="me", now_ms=WINDOW[1] + H)
    assert restaged == [] and out.journal.figures["nights_touched"] == ["2026-01-05", "2026-01-06"]
    assert out.journal.figures["nights_restaged"] == []


def test_reassigned_back_and_again_is_a_new_correction(tmp_path: Path) -> None:
    s = build_home(tmp_path / "home", live=False)
    job = _job(s, [])
    first = job.run(STRAP, *WINDOW, "s002", why="", by="me", now_ms=NOW)
    job.run(STRAP, *WINDOW, "s001", why="oops", by="me", now_ms=NOW + 1)
    again = job.run(STRAP, *WINDOW, "s002", why="", by="me", now_ms=NOW + 2)
    assert not again.already and again.did == reassign.STEPS
    assert again.journal.previous_subjects() == ["s001"]
    assert s.paths.reassign_journal(f"{first.journal.op}-{NOW}").exists()  # the first run's journal, kept


# ---------------------------------------------------------------------------- the command
def _cli(argv: list[str], home: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setenv("SLEEPSTACK_HOME", str(home))
    monkeypatch.setenv("SLEEPSTACK_TZ", "UTC")
    return main(argv)


def _with(flag: str, value: str) -> list[str]:
    argv = list(REASSIGN)
    argv[argv.index(flag) + 1] = value
    return argv


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (_with("--device", "strap-9"), "--device: 'strap-9' is not registered"),
        (_with("--subject", "s009"), "--subject: 's009' is not registered"),
        (_with("--to", "2026-01-05T22:19:00+00:00"), "--to: 2026-01-05 22:19:00Z is not after --from"),
        (_with("--from", "2026-01-05T20:00:00+00:00"), "--from/--to: strap-1 is assigned to nobody from"),
        (_with("--from", "noon"), "--from: 'noon' is not an ISO time"),
    ],
)
def test_bad_input_exits_2_in_one_line_and_changes_nothing(
    argv: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    s = build_home(tmp_path / "home", live=False)
    before = (wiring.registry(s).assignments(), wiring.registry(s).history(), lake_rows(s))
    assert _cli(argv, tmp_path / "home", monkeypatch) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"sleepstack: error: {message}") and "\n" not in err, err
    assert not (tmp_path / "home" / "reassign").exists()
    assert (wiring.registry(s).assignments(), wiring.registry(s).history(), lake_rows(s)) == before


def test_a_home_without_a_registry_is_refused_and_left_empty(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _cli(REASSIGN, tmp_path / "home", monkeypatch) == 2
    assert "--device" in capsys.readouterr().err
    assert not (tmp_path / "home").exists()


def test_the_command_reports_what_it_moved_and_a_rerun_says_it_is_done(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    s = build_home(tmp_path / "home", live=False)
    monkeypatch.setattr(reassign, "restage_nights", lambda lake, nights, run: nights)  # no Spark here
    assert _cli([*REASSIGN, "--why", "strap swapped", "--by", "nurse 4", "--json"], tmp_path / "home", monkeypatch) == 0
    out = json.loads(capsys.readouterr().out)
    moved = sum(in_window(r["device_id"], r["device_time_ms"]) for r in lake_rows(s))
    assert out["done"] == list(reassign.STEPS) and out["figures"]["lake_rows_moved"] == moved
    assert out["by"] == "nurse 4" and out["why"] == "strap swapped"
    assert out["previous"] == [{"device": STRAP, "subject_id": "s001", "from_ms": WINDOW[0], "to_ms": WINDOW[1]}]
    assert _cli(REASSIGN, tmp_path / "home", monkeypatch) == 0
    said = capsys.readouterr().out
    assert said.startswith("already done: strap-1 from 2026-01-05 22:20:00Z until 2026-01-05 22:50:00Z is s002's")
    assert {(a.subject_id, a.from_ms) for a in wiring.registry(s).assignments(BED)} == {("s001", T0_MS - H)}
