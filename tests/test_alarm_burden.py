"""The alarm-burden backtest: scoring against known events, the speed layer's own alerts, rules files."""

from __future__ import annotations

import json
import re
import shlex
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batch_layer.lake_schema import RAW_SCHEMA
from core.contract import to_row, to_wire
from core.contract.epochs import EPOCH_MS, night_of
from core.errors import InputError
from core.live.alarm_burden import Event, NightResult, episodes_from_docs, figures, match
from core.live.alerts import AlertRules, AlertTracker
from dead_letters import LocalDeadLetters
from local.event_source_mapping import LambdaContext, kinesis_event
from local.live_store import LocalLiveStore
from local.state_store import LocalStateStore
from simulator.nights import SimConfig, night_records, simulate_night
from sleepstack.backtest import backtest, lake_nights, replay_alerts
from sleepstack.backtest.rules_file import load_rule_sets, parse_rule_sets
from sleepstack.cli import main
from speed_layer.handler import SpeedLayerHandler
from tests.conftest import DATA, REPO_ROOT, T0_MS

# --------------------------------------------------------------------------- a constructed night

#: Pauses (start s from T0, length s) on a bed sensor; the last one is no apnoea (a false alarm).
PAUSES = ((100, 12.0), (400, 15.0), (700, 8.0), (1000, 12.0))
#: The true apnoeas: the first three pauses.
APNOEAS = tuple(Event("apnea", T0_MS + s * 1000, T0_MS + round((s + d) * 1000)) for s, d in PAUSES[:3])


def _bed_epochs() -> list[dict[str, Any]]:
    """Epoch documents of 20 min in bed: a pause where :data:`PAUSES` says, breathing elsewhere."""
    out = []
    for k in range(40):
        start = T0_MS + k * EPOCH_MS
        mine = [(T0_MS + s * 1000, T0_MS + round((s + d) * 1000)) for s, d in PAUSES]
        mine = [(a, b) for a, b in mine if start <= a < start + EPOCH_MS]
        out.append(
            {
                "epoch_start_ms": start,
                "subject_id": "s001",
                "device_id": "bed-1",
                "source": "bed",
                "presence": True,
                "hr_bpm": 60.0,
                "pause_start_ms": [a for a, _ in mine],
                "pause_end_ms": [b for _, b in mine],
            }
        )
    return out


def _night_of_epochs(rules: AlertRules) -> NightResult:
    tracker = AlertTracker(rules)
    docs = [d for e in _bed_epochs() for d in tracker.observe(e)]
    episodes = tuple(episodes_from_docs(docs))
    return NightResult("constructed", frozenset({"bed"}), episodes, APNOEAS, 20 / 60, frozenset({"apnea"}))


def test_three_apnoeas_one_short_and_a_false_pause_give_the_hand_computed_figures() -> None:
    default = figures("breathing_pause", [_night_of_epochs(AlertRules())])
    # 10 s rule: the 12-s and 15-s apnoeas and the 12-s false pause raise; the 8-s apnoea does not
    assert (default.alerts, default.events, default.sensitivity, default.ppv) == (
        3,
        3,
        round(2 / 3, 3),
        round(2 / 3, 3),
    )
    assert default.time_to_alert_s_median == 10.0  # raised 10 s after each pause began
    assert default.time_in_alarm_min_per_night == round((2 + 5 + 2) / 60, 2)  # alarm from raised to the pause's end
    low = figures("breathing_pause", [_night_of_epochs(AlertRules(pause_min_s=7))])
    assert (low.alerts, low.sensitivity, low.ppv) == (4, 1.0, 0.75)
    assert low.time_to_alert_s_median == 7.0
    assert low.time_in_alarm_min_per_night == round((5 + 8 + 1 + 5) / 60, 2)


def test_unscoreable_kinds_report_burden_without_sensitivity() -> None:
    for kind in ("hr_low", "hr_high"):  # no truth of bradycardia; tachycardia's is not known on this night
        hr = figures(kind, [_night_of_epochs(AlertRules())])
        assert (hr.nights, hr.alerts, hr.events, hr.sensitivity, hr.ppv) == (1, 0, None, None, None)
    strap_only = NightResult("strap", frozenset({"strap"}), (), APNOEAS, 1.0, frozenset({"apnea"}))
    pause = figures("breathing_pause", [strap_only])  # no bed sensor: a pause cannot be seen
    assert (pause.nights, pause.alerts_per_night, pause.sensitivity) == (0, None, None)


def test_matching_widens_the_event_by_the_tolerance() -> None:
    ev = Event("apnea", 100_000, 110_000)
    from core.live.alarm_burden import Episode

    near = Episode("breathing_pause", 114_000, 124_000, 130_000)  # starts 4 s after the event ended
    far = Episode("breathing_pause", 116_000, 126_000, 130_000)
    assert match([near, far], [ev], 5.0) == ([ev, None], [True])
    assert match([near], [ev], 0.0) == ([None], [False])


# --------------------------------------------------------------------------- the speed layer's own alerts


RULES = AlertRules(hr_high_bpm=66, hr_low_bpm=52, hr_sustained_s=90)  # low thresholds: every kind fires


def _records(hours: float) -> list[Any]:
    night = simulate_night(SimConfig("s001", T0_MS, seed=3, apnea_per_hour=8.0))
    recs = night_records(night, strap_device="strap-1", bed_device="bed-1")
    return [r for r in recs if r.event_time_ms < night.t0_ms + hours * 3_600_000]


def _stored_by_speed_layer(recs: list[Any], tmp: Path, per_batch: int) -> list[dict[str, Any]]:
    store = LocalLiveStore(tmp / "live.sqlite")
    handler = SpeedLayerHandler(
        store, LocalStateStore(tmp / "state.sqlite"), LocalDeadLetters(tmp / "dlq"), rules=RULES
    )
    for i in range(0, len(recs), per_batch):
        rows = [
            {
                "PartitionKey": r.device_id,
                "SequenceNumber": str(1000 + i + j),
                "Data": to_wire(r),
                "ApproximateArrivalTimestamp": datetime.now(tz=UTC),
            }
            for j, r in enumerate(recs[i : i + per_batch])
        ]
        event = kinesis_event(
            rows, shard_id="shardId-000000000000", arn="arn:aws:kinesis:local:0:stream/s", region="local"
        )
        handler(event, LambdaContext())
    docs = store.alerts()
    store.close()
    return docs


def test_backtest_alerts_from_the_raw_lake_are_what_the_speed_layer_stores(tmp_path: Path) -> None:
    recs = _records(hours=1.5)
    stored = {d["doc_id"]: d for d in _stored_by_speed_layer(recs, tmp_path, per_batch=400)}
    kinds = {d["kind"] for d in stored.values()}
    assert "breathing_pause" in kinds and kinds & {"hr_low", "hr_high"}  # a breathing rule and a heart-rate rule
    # the same records landed in the raw lake, read back by the backtest's lake source
    raw = tmp_path / "lake" / "raw"
    for dt in {datetime.fromtimestamp(r.event_time_ms / 1000, tz=UTC).date().isoformat() for r in recs}:
        part = raw / f"dt={dt}"
        part.mkdir(parents=True)
        mine = [
            to_row(r) for r in recs if datetime.fromtimestamp(r.event_time_ms / 1000, tz=UTC).date().isoformat() == dt
        ]
        pq.write_table(pa.Table.from_pylist(mine, schema=RAW_SCHEMA), part / "part-0.parquet")
    (night,) = lake_nights(raw, [night_of(T0_MS)], "UTC")
    assert len(night.records) == len(recs) and night.events == () and night.truth == frozenset()
    replayed = {d["doc_id"]: d for d in replay_alerts(night.records, RULES)}  # the last document of each alert
    assert replayed.keys() == stored.keys()
    for doc_id, live in stored.items():
        if live["status"] == "closed":
            assert replayed[doc_id] == live
        else:  # still open where the data ends: the backtest closes it there, nothing else differs
            same = {k: v for k, v in replayed[doc_id].items() if k not in ("status", "end_ms", "duration_s")}
            assert same == {k: v for k, v in live.items() if k not in ("status", "end_ms", "duration_s")}
            assert replayed[doc_id]["status"] == "closed"


@pytest.mark.slow
def test_simulated_nights_score_pauses_and_bed_exits_against_their_truth() -> None:
    from sleepstack.backtest import simulated_nights

    sets = parse_rule_sets("[sets.default]\n[sets.quiet]\npause_min_s = 15\n", "inline")
    rows = {(r["rule_set"], r["kind"]): r for r in backtest(simulated_nights(2, 1), sets)["rows"]}
    default, quiet = rows["default", "breathing_pause"], rows["quiet", "breathing_pause"]
    assert default["events"] == quiet["events"] >= 20
    assert default["sensitivity"] >= 0.95 and default["ppv"] >= 0.95  # pauses are 10-25 s: the 10-s rule sees them
    # a 15-s rule misses the shorter ones (uniform 10-25 s: about a third)
    assert 0.5 <= quiet["sensitivity"] <= 0.85 and quiet["ppv"] >= 0.95
    assert quiet["alerts_per_night"] < default["alerts_per_night"]
    assert rows["default", "bed_exit"]["sensitivity"] == 1.0 and rows["default", "bed_exit"]["ppv"] == 1.0
    # tachycardias of 1-8 min, +50-75 bpm: the 2-min rule at 120/min misses the short and the mild ones
    hr = rows["default", "hr_high"]
    assert hr["events"] >= 4 and 0 < hr["sensitivity"] < 1 and hr["ppv"] == 1.0
    assert hr["time_to_alert_s_median"] >= 120  # sustained 2 min, after the rate has climbed past 120


# --------------------------------------------------------------------------- rules files


def test_a_rules_file_holds_named_sets_side_by_side(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text("[sets.default]\n\n[sets.sensitive]\npause_min_s = 8\nhr_high_bpm = 110\n")
    sets = load_rule_sets(path)
    assert list(sets) == ["default", "sensitive"]
    assert sets["default"] == AlertRules()
    assert sets["sensitive"] == AlertRules(pause_min_s=8.0, hr_high_bpm=110.0)
    assert isinstance(sets["sensitive"].hr_sustained_s, int)


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("[sets.a]\npause_min_s = -1\n", "r.toml: sets.a.pause_min_s"),
        ("[sets.a]\npause_min_s = true\n", "r.toml: sets.a.pause_min_s"),
        ("[sets.a]\npause_min = 8\n", "r.toml: sets.a.pause_min"),
        ("[sets]\na = 3\n", "r.toml: sets.a"),
        ("[rules.a]\npause_min_s = 8\n", "r.toml: rules"),
        ("# nothing\n", "r.toml"),
        ("[sets.a\n", "r.toml"),
    ],
)
def test_bad_rules_files_name_the_file_and_the_key(text: str, names: str) -> None:
    with pytest.raises(InputError) as err:
        parse_rule_sets(text, "r.toml")
    assert str(err.value).startswith(names + ":") or err.value.what == names


def test_the_command_refuses_a_bad_rules_file_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SLEEPSTACK_HOME", str(tmp_path / "home"))
    rules = tmp_path / "r.toml"
    rules.write_text("[sets.sensitive]\npause_min_s = 'short'\n")
    assert main(["alerts", "backtest", "--rules", str(rules), "--simulate", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"sleepstack: error: {rules}: sets.sensitive.pause_min_s: must be a positive number, not 'short'"
    assert not (tmp_path / "home").exists()


def test_the_command_prints_json_for_lake_nights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    recs = _records(hours=1.5)
    part = tmp_path / "home" / "lake" / "raw" / "dt=2026-01-05"
    part.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist([to_row(r) for r in recs], schema=RAW_SCHEMA), part / "part-0.parquet")
    rules = tmp_path / "r.toml"
    rules.write_text("[sets.low]\nhr_low_bpm = 56\nhr_sustained_s = 90\n")
    monkeypatch.setenv("SLEEPSTACK_HOME", str(tmp_path / "home"))
    argv = ["alerts", "backtest", "--rules", str(rules), "--nights", "2026-01-05", "--subject", "s001", "--json"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["nights"] == ["s001/2026-01-05"] and out["rule_sets"] == {
        "low": {"hr_low_bpm": 56.0, "hr_sustained_s": 90}
    }
    hr = next(r for r in out["rows"] if r["kind"] == "hr_low")
    expected = [d for d in replay_alerts(recs, AlertRules(hr_low_bpm=56, hr_sustained_s=90)) if d["kind"] == "hr_low"]
    assert hr["alerts"] == len({d["doc_id"] for d in expected}) > 0
    assert hr["sensitivity"] is None  # no truth in the lake
    # the subject's own threshold in the registry, applied on top of the set as the speed layer does
    assert main(["subjects", "add", "s001", "--alert", "hr_low_bpm=40"]) == 0
    capsys.readouterr()
    assert main([*argv, "--subject-overrides"]) == 0
    mine = json.loads(capsys.readouterr().out)
    assert mine["subject_overrides"] is True
    assert next(r for r in mine["rows"] if r["kind"] == "hr_low")["alerts"] == 0
    assert main(argv) == 0  # without the flag the set applies as it is
    assert next(r for r in json.loads(capsys.readouterr().out)["rows"] if r["kind"] == "hr_low") == hr
    assert main([*argv[:4], "--nights", "2026-01-09"]) == 1  # nothing landed that night
    assert "holds no records" in capsys.readouterr().err


# --------------------------------------------------------------------------- the docs' tables

DOC = REPO_ROOT / "docs" / "alarm-burden.md"


def _documented_tables() -> list[tuple[list[str], list[str]]]:
    """(argv, printed lines) of each ```console command on the page followed by its output block."""
    blocks = re.findall(r"```console\n(sleepstack alerts backtest [^\n]*)\n```\n\n```\n(.*?)```", DOC.read_text(), re.S)
    return [(shlex.split(cmd)[1:], out.rstrip("\n").splitlines()) for cmd, out in blocks]


def test_the_page_shows_two_measured_tables() -> None:
    tables = _documented_tables()
    assert [argv[argv.index("--rules") + 2] for argv, _ in tables] == ["--simulate", "--slpdb"]


@pytest.mark.slow
@pytest.mark.parametrize("which", [0, 1], ids=["simulated", "slpdb"])
def test_the_documented_tables_are_what_the_commands_print(
    which: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    argv, printed = _documented_tables()[which]
    argv = [str(DATA / a.removeprefix("../shared/data/")) if a.startswith("../shared/data/") else a for a in argv]
    if "--slpdb" in argv and not (Path(argv[argv.index("--slpdb") + 1]) / "meta.csv").exists():
        pytest.skip("shared slpdb-rr data not present")
    monkeypatch.chdir(REPO_ROOT)
    monkeypatch.setenv("SLEEPSTACK_HOME", str(tmp_path / "home"))
    assert main(argv) == 0
    assert capsys.readouterr().out.rstrip("\n").splitlines() == printed
