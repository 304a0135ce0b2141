"""``collect --replay``: the recording's clock (latest day before now, as recorded, or a start) and subjects."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from core.contract.epochs import night_of
from ingest.fake_ble import load_recording, recording_lines
from ingest.simulated_devices import simulated_peripherals
from ingest.spool import Spool
from simulator.nights import FIRST_NIGHT_T0_MS, SimConfig, simulate_night
from sleepstack.cli import main
from sleepstack.cli.devices import _load_recordings, _replayed

DAY_MS = 86_400_000


@pytest.fixture(scope="module")
def recordings(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    out = tmp_path_factory.mktemp("rec")
    nights = [simulate_night(SimConfig(f"s00{k + 1}", FIRST_NIGHT_T0_MS, 3 + k)) for k in range(2)]
    paths = []
    for p in simulated_peripherals(nights, seed=1, drop_ms=0):
        p.script = p.script[:600]  # the first minutes are enough for the clock
        paths.append(out / f"{p.address}.jsonl")
        paths[-1].write_text("\n".join(recording_lines(p)))
    return paths


def _times(peripherals: list) -> list[int]:
    return [it[0] for p in peripherals for it in p.script if isinstance(it, tuple)]


def test_recordings_carry_their_subject(recordings: list[Path]) -> None:
    assert {load_recording(p).subject_id for p in recordings} == {"s001", "s002"}


def test_latest_moves_by_whole_days_to_end_before_now(
    recordings: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spool = Spool(tmp_path / "spool.sqlite")
    recorded = _times([load_recording(p) for p in recordings])
    played = _times(_replayed(_load_recordings(recordings), spool, 60.0, "latest", "Europe/Berlin"))
    shift = played[0] - recorded[0]
    assert shift % DAY_MS == 0 and shift > 0  # whole days: the time of day and the 30-s phase are kept
    now = time.time() * 1000
    assert max(played) <= now < max(played) + DAY_MS  # the latest day it fits, never in the future
    night = night_of(min(played), "Europe/Berlin")
    assert f"nights to stage: {night}" in capsys.readouterr().out
    again = _times(_replayed(_load_recordings(recordings), spool, 60.0, "latest", "Europe/Berlin"))
    assert again == played  # the shift is kept in the spool: a resumed replay runs on the same clock


def test_as_recorded_and_start(recordings: list[Path], tmp_path: Path) -> None:
    recorded = _times([load_recording(p) for p in recordings])
    spool = Spool(tmp_path / "spool.sqlite")
    assert _times(_replayed(_load_recordings(recordings), spool, None, "as-recorded", "UTC")) == recorded
    start = FIRST_NIGHT_T0_MS + 3 * DAY_MS + 1234
    assert min(_times(_replayed(_load_recordings(recordings), spool, None, start, "UTC"))) == start


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["--start", "yesterday"], "--start"),
        (["--start", "2026-01-05T22:00"], "--start"),  # no offset: ambiguous
        (["--start", "2026-01-05T22:00+00:00", "--as-recorded"], "--start"),
        (["--as-recorded"], "--as-recorded"),  # without a replay
    ],
)
def test_bad_replay_clocks_are_usage_errors(
    argv: list[str],
    flag: str,
    recordings: list[Path],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    replay = [] if argv == ["--as-recorded"] else ["--replay", str(recordings[0])]
    monkeypatch.setenv("SLEEPSTACK_HOME", str(tmp_path / "home"))
    try:  # argparse refuses a malformed value itself (exit 2), the command an impossible combination
        code = main(["collect", *replay, *argv] if replay else ["collect", "--device", "x", *argv])
    except SystemExit as exc:
        code = int(exc.code or 0)
    assert code == 2
    assert not (tmp_path / "home").exists()  # a refused command creates nothing
    assert flag in capsys.readouterr().err
