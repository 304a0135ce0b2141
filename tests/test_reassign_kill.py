"""``sleepstack reassign`` killed with SIGKILL in the middle, then run again: the same result as
an uninterrupted run, nothing lost or doubled.

The command runs in a child process (:mod:`tests.reassign_helpers`) that SIGKILLs itself when
the correction passes a checkpoint: after its journal, after each step, and between writing a
rewritten lake object and deleting the old one. The rerun must finish it; checked: the lake
holds every record id exactly once, the window's rows under the new subject and every
other row as before; the live store's documents agree; the registry holds the corrected
assignments with one history entry; a third run says it is done. The fast cases stand the
nightly job in with a recorder of the nights it is asked for; the slow one runs it (Spark)
and checks the staged epochs of both subjects.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds
import pytest

from sleepstack import wiring
from sleepstack.settings import Settings
from speed_layer.processing import TIME_FIELD
from tests.conftest import REPO_ROOT
from tests.reassign_helpers import (
    REASSIGN,
    STRAP,
    WINDOW,
    build_home,
    in_window,
    lake_rows,
    live_docs,
    settings_for,
)


def _run(home: Path, kill_at: str, restaged: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tests.reassign_helpers", kill_at, restaged, "--", *REASSIGN, *args],
        cwd=REPO_ROOT,
        env=settings_for(home).child_env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def _check_moved(s: Settings, before_rows: list[dict[str, Any]], before_docs: dict[Any, dict[str, Any]]) -> None:
    rows = lake_rows(s)
    ids = Counter(r["record_id"] for r in rows)
    assert set(ids) == {r["record_id"] for r in before_rows} and max(ids.values()) == 1  # each record once
    old = {r["record_id"]: r["subject_id"] for r in before_rows}
    moved = 0
    for r in rows:
        if in_window(r["device_id"], r["device_time_ms"]):
            moved += 1
            assert r["subject_id"] == "s002"
        else:
            assert r["subject_id"] == old[r["record_id"]]
    assert moved > 0
    docs = live_docs(s)
    assert docs.keys() == before_docs.keys()
    for (kind, doc_id), doc in docs.items():
        moved_doc = in_window(doc["device_id"], doc[TIME_FIELD[kind]])
        assert doc == before_docs[(kind, doc_id)] | ({"subject_id": "s002"} if moved_doc else {})
    reg = wiring.registry(s, create=False)
    assert [(a.subject_id, a.from_ms, a.to_ms) for a in reg.assignments(STRAP)][1:] == [
        ("s002", WINDOW[0], WINDOW[1]),
        ("s001", WINDOW[1], None),
    ]
    assert [h["detail"]["previous"][0]["subject_id"] for h in reg.history() if h["action"] == "reassigned"] == ["s001"]


@pytest.mark.parametrize(
    "kill_at",
    [
        pytest.param("journal", marks=pytest.mark.slow),
        "registry",
        "lake:written",  # between a rewritten object's rename and the old one's deletion
        pytest.param("lake", marks=pytest.mark.slow),
        pytest.param("live", marks=pytest.mark.slow),
        pytest.param("restage", marks=pytest.mark.slow),
    ],
)
def test_killed_anywhere_a_rerun_finishes_the_correction(kill_at: str, tmp_path: Path) -> None:
    s = build_home(tmp_path / "home")
    before_rows, before_docs = lake_rows(s), live_docs(s)
    restaged = tmp_path / "restaged.ndjson"

    killed = _run(s.home, kill_at, str(restaged))
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    done = _run(s.home, "-", str(restaged))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("resumed and finished strap-1"), done.stdout
    _check_moved(s, before_rows, before_docs)
    asked = [json.loads(line) for line in restaged.read_text().splitlines()]
    assert asked[-1] == ["2026-01-05", "2026-01-06"]  # s001's night (UTC) and s002's (UTC+14)
    again = _run(s.home, "-", str(restaged))
    assert again.returncode == 0 and again.stdout.startswith("already done:"), again.stdout
    assert len(restaged.read_text().splitlines()) == len(asked)


def _epochs(lake: Path) -> Any:
    return ds.dataset(lake / "curated" / "epochs", format="parquet", partitioning="hive").to_table().to_pandas()


@pytest.mark.slow
@pytest.mark.spark
def test_killed_between_lake_objects_the_rerun_restages_both_subjects_nights(tmp_path: Path) -> None:
    from batch_layer.nightly_job import run_nightly
    from local.spark import local_spark

    s = build_home(tmp_path / "home")
    zones = {x.subject_id: x.tz for x in wiring.registry(s).subjects()}
    run_nightly(local_spark(), str(s.lake / "raw"), str(s.lake / "curated"), ["2026-01-05"], "UTC", subject_tz=zones)
    staged = _epochs(s.lake)
    in_win = staged["epoch_start_ms"].between(WINDOW[0], WINDOW[1] - 30_000)
    assert set(staged["subject_id"]) == {"s001"} and staged[in_win]["strap_data"].all()
    before_rows, before_docs = lake_rows(s), live_docs(s)

    killed = _run(s.home, "lake:written", "-")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    done = _run(s.home, "-", "-")
    assert done.returncode == 0, done.stderr
    assert "nights re-staged: 2026-01-05, 2026-01-06" in done.stdout, done.stdout
    _check_moved(s, before_rows, before_docs)

    epochs = _epochs(s.lake)
    mine = epochs[epochs["subject_id"] == "s001"]
    theirs = epochs[epochs["subject_id"] == "s002"]
    # s001 keeps the night (their bed) without the strap's window; s002 has it, in their own night
    assert set(mine["night"]) == {"2026-01-05"} and set(theirs["night"]) == {"2026-01-06"}
    inside = mine["epoch_start_ms"].between(WINDOW[0], WINDOW[1] - 30_000)
    assert inside.any() and not mine[inside]["strap_data"].any() and mine[inside]["bed_data"].all()
    theirs_inside = theirs["epoch_start_ms"].between(WINDOW[0], WINDOW[1] - 30_000)
    assert theirs_inside.sum() == inside.sum() and theirs[theirs_inside]["strap_data"].all()
    assert not theirs[~theirs_inside]["strap_data"].any()
