from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import sqlglot

from core.nightly import EPOCH_COLUMNS, NIGHT_COLUMNS
from serving.sql_engine import LocalSqlEngine, load_query, query_names


def _write(df: pd.DataFrame, root: Path) -> None:
    for night, part in df.groupby("night"):
        d = root / f"night={night}"
        d.mkdir(parents=True)
        part.drop(columns="night").to_parquet(d / "part-0.parquet")


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    epochs = pd.DataFrame(
        [
            {
                "subject_id": s,
                "night": n,
                "epoch_start_ms": 1_767_651_000_000 + 30_000 * i,
                "stage": i % 4,
                "stage_label": ["wake", "light", "deep", "rem"][i % 4],
                "hr_bpm": 50.0 + i % 4,
                "hr_source": "bed",
                "br_per_min": 14.0,
                "movement": 0.0,
                "presence": True,
                "rmssd_ms": None,
                "sdnn_ms": None,
                "method": "m",
            }
            for s in ("s001", "s002")
            for n in ("2026-01-05", "2026-01-06")
            for i in range(8)
        ]
    )
    assert list(epochs.columns) == [c for c, _ in EPOCH_COLUMNS]
    nights = pd.DataFrame(
        [
            {c: None for c, _ in NIGHT_COLUMNS}
            | {
                "subject_id": s,
                "night": n,
                "status": "staged",
                "total_sleep_time_min": 400.0 + k,
                "sleep_efficiency_pct": 90.0,
                "waso_min": 20.0,
                "light_min": 200.0,
                "deep_min": 90.0,
                "rem_min": 100.0,
                "mean_hr_bpm": 55.0,
                "mean_br_per_min": 14.0,
            }
            for k, (s, n) in enumerate([("s001", "2026-01-05"), ("s001", "2026-01-06"), ("s002", "2026-01-05")])
        ]
    )
    _write(epochs, tmp_path / "curated" / "epochs")
    _write(nights, tmp_path / "curated" / "nights")
    return tmp_path


@pytest.mark.parametrize("name", query_names())
def test_every_query_parses_as_athena_and_transpiles(name: str) -> None:
    sql = load_query(name)
    sqlglot.parse_one(sql, read="athena")
    assert LocalSqlEngine.transpile(sql)


def test_night_summaries_returns_every_staged_night(lake: Path) -> None:
    df = LocalSqlEngine(lake).query(load_query("night_summaries"))
    assert list(zip(df["subject_id"], df["night"], strict=True)) == [
        ("s001", "2026-01-05"),
        ("s001", "2026-01-06"),
        ("s002", "2026-01-05"),
    ]
    assert df["night"].dtype == object  # partitions stay text, as Athena reads them
    assert df["tst_min"].tolist() == [400.0, 401.0, 402.0]


def test_hr_by_stage(lake: Path) -> None:
    df = LocalSqlEngine(lake).query(load_query("hr_by_stage"))
    assert len(df) == 8 and set(df["epochs"]) == {4}
    assert df.set_index(["subject_id", "stage_label"]).loc[("s001", "deep"), "mean_hr_bpm"] == 52.0


def test_unknown_query_name() -> None:
    with pytest.raises(KeyError, match="night_summaries"):
        load_query("nope")
