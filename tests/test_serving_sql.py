from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel

from core.nights.nightly import EPOCH_COLUMNS, NIGHT_COLUMNS
from local.duckdb_sql import LocalSqlEngine
from local.template import load_template
from serving.catalog import CATALOG
from serving.export._lake import table_schema
from serving.sql_engine import AthenaSqlEngine, load_query, query_names
from tests.conftest import REPO_ROOT


def _write(df: pd.DataFrame, root: Path, table: str) -> None:
    """Parquet with the catalog's column types, as the nightly job writes it: integer columns
    stay integers where a row is null (pandas alone would write them as double, which
    DuckDB casts silently but Athena/Trino refuse against the catalog's ``int``)."""
    schema = table_schema(next(t for t in CATALOG if t.name == table))
    for night, part in df.groupby("night"):
        d = root / f"night={night}"
        d.mkdir(parents=True)
        pq.write_table(
            pa.Table.from_pandas(part.drop(columns="night"), schema=schema, preserve_index=False), d / "p.parquet"
        )


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
                **{f"p_{k}": 0.7 if j == i % 4 else 0.1 for j, k in enumerate(("wake", "light", "deep", "rem"))},
                "stage_confidence": 0.7,
                "hr_bpm": 50.0 + i % 4,
                "hr_source": "bed",
                "br_per_min": 14.0,
                "movement": 0.0,
                "presence": True,
                "rmssd_ms": None,
                "sdnn_ms": None,
                "breathing_pauses": i % 2,
                "bed_exits": 0,
                "rr_window": False,
                "cvhr_cycles": None,
                "apnoea_prob": None,
                "resp_event": None,
                "pause_s": None,
                "hr_surge_bpm": None,
                "rr_irregular": None,
                "strap_data": False,
                "bed_data": True,
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
                "mean_hr_bpm": 55.0 + k,
                "mean_br_per_min": 14.0,
                "light_pct": light,
                "deep_pct": deep,
                "rem_pct": 100.0 - light - deep,
                "breathing_pauses": round(pph * (400 + k) / 60),
                "pauses_per_hour": pph,
                "sleep_score": score,
                "hr_light_bpm": 56.0,
                "hr_deep_bpm": 50.0 + k,
                "hr_rem_bpm": 60.0,
                "br_deep_per_min": 13.0,
                "completeness": "complete" if k != 1 else "partial",
                "completeness_reason": None if k != 1 else "a 42-min gap without data (complete: none of 30 min)",
                "coverage_pct": 97.0,
                "in_bed_hours": 7.5,
                "gaps": 0 if k != 1 else 1,
                "longest_gap_min": 0.0 if k != 1 else 42.0,
            }
            for k, (s, n, light, deep, pph, score) in enumerate(
                [
                    ("s001", "2026-01-05", 55.0, 20.0, 12.0, 80.0),
                    ("s001", "2026-01-06", 65.0, 15.0, 2.0, 70.0),
                    ("s002", "2026-01-05", 53.0, 25.0, 31.0, 90.0),
                ]
            )
        ]
        + [
            {c: None for c, _ in NIGHT_COLUMNS}
            | {"subject_id": "s002", "night": "2026-01-06", "status": "insufficient", "status_reason": "under 1 h"}
        ]
    )
    _write(epochs, tmp_path / "curated" / "epochs", "epoch_stages")
    _write(nights, tmp_path / "curated" / "nights", "night_summary")
    return tmp_path


@pytest.mark.parametrize("name", query_names())
def test_every_query_parses_as_athena_and_transpiles(name: str) -> None:
    sql = load_query(name)
    sqlglot.parse_one(sql, read="athena")
    assert LocalSqlEngine.transpile(sql)


def _named_queries() -> dict[str, str]:
    """The template's Athena NamedQuery statements, for a deployment named ``prod``."""
    doc = load_template(REPO_ROOT / "infra" / "template.yaml")
    out = {}
    for key, res in doc["Resources"].items():
        if res["Type"] == "AWS::Athena::NamedQuery":
            sql = res["Properties"]["QueryString"]
            out[key] = (sql["Fn::Sub"] if isinstance(sql, dict) else sql).replace("${Environment}", "prod")
    return out


@pytest.mark.parametrize(
    ("name", "sql"), [(n, load_query(n)) for n in query_names()] + sorted(_named_queries().items())
)
def test_every_query_parses_strictly_as_trino(name: str, sql: str) -> None:
    """Athena engine v3 is Trino: each query parses in sqlglot's Trino dialect with every
    error raised, is not the opaque ``Command`` sqlglot falls back to, calls no function the
    dialect does not know, and prints back to the same tree."""
    tree = sqlglot.parse_one(sql, read="trino", error_level=ErrorLevel.RAISE)
    assert not list(tree.find_all(exp.Command)), name
    assert [f.name for f in tree.find_all(exp.Anonymous)] == [], name
    assert sqlglot.parse_one(tree.sql(dialect="trino"), read="trino") == tree


def test_the_template_names_its_device_status_view() -> None:
    assert list(_named_queries()) == ["DeviceStatusView"]


def test_night_summaries_returns_every_staged_night(lake: Path) -> None:
    df = LocalSqlEngine(lake).query(load_query("night_summaries"))
    assert list(zip(df["subject_id"], df["night"], strict=True)) == [
        ("s001", "2026-01-05"),
        ("s001", "2026-01-06"),
        ("s002", "2026-01-05"),
        ("s002", "2026-01-06"),
    ]
    assert df["night"].dtype == object  # partitions stay text, as Athena reads them
    assert df["tst_min"].tolist()[:3] == [400.0, 401.0, 402.0]
    assert df["status_reason"].tolist()[3] == "under 1 h" and pd.isna(df["tst_min"].iloc[3])


def test_night_completeness_names_each_nights_verdict_and_its_reason(lake: Path) -> None:
    sql = load_query("night_completeness")
    df = LocalSqlEngine(lake).query(sql, {"subject": "s001", "limit": 10})
    assert df["night"].tolist() == ["2026-01-06", "2026-01-05"]
    assert df["completeness"].tolist() == ["partial", "complete"]
    assert df["completeness_reason"].iloc[0].startswith("a 42-min gap") and df["gaps"].tolist() == [1, 0]
    assert df["longest_gap_min"].tolist() == [42.0, 0.0] and df["in_bed_h"].tolist() == [7.5, 7.5]


def test_hr_by_stage(lake: Path) -> None:
    df = LocalSqlEngine(lake).query(load_query("hr_by_stage")).set_index(["subject_id", "stage_label"])
    assert sorted(df.index) == [(s, st) for s in ("s001", "s002") for st in ("deep", "light", "rem")]  # no HR in wake
    deep = df.loc[("s001", "deep")]
    assert deep["epochs"] == 360 and deep["nights"] == 2  # 90 min on each of 2 nights
    assert deep["mean_hr_bpm"] == 50.5 and deep["mean_br_per_min"] == 13.0
    assert df.loc[("s002", "deep"), "mean_hr_bpm"] == 52.0 and pd.isna(df.loc[("s001", "light"), "mean_br_per_min"])


def test_stage_distribution_trend(lake: Path) -> None:
    df = LocalSqlEngine(lake).query(load_query("stage_distribution_trend"))
    assert len(df) == 3  # the insufficient night is left out
    s1 = df[df["subject_id"] == "s001"].set_index("night")
    assert s1.loc["2026-01-06", "deep_pct_change"] == -5.0 and s1.loc["2026-01-06", "rem_pct_change"] == -5.0
    assert pd.isna(s1.loc["2026-01-05", "deep_pct_change"])
    assert s1.loc["2026-01-06", "deep_pct_7_night_avg"] == 17.5


def test_breathing_pause_nights(lake: Path) -> None:
    df = LocalSqlEngine(lake).query(load_query("breathing_pause_nights"))
    assert list(zip(df["subject_id"], df["band"], strict=True)) == [("s002", "severe range"), ("s001", "mild range")]
    assert df["pauses_per_hour"].tolist() == [31.0, 12.0]


def test_cohort_percentiles(lake: Path) -> None:
    row = LocalSqlEngine(lake).query(load_query("cohort_percentiles")).iloc[0]
    assert row["nights"] == 3 and row["subjects"] == 2
    assert row["tst_min_p50"] == pytest.approx(401.0, abs=0.6)
    assert row["sleep_score_p50"] == pytest.approx(80.0, abs=0.6)
    assert row["tst_min_p10"] <= row["tst_min_p50"] <= row["tst_min_p90"]


def test_local_views_have_the_catalog_columns(lake: Path) -> None:
    engine = LocalSqlEngine(lake)
    assert engine.present == {"epoch_stages", "night_summary"}  # the raw table and its views: test_device_health
    for table in (t for t in CATALOG if t.name in engine.present):
        cols = engine.query(f"SELECT * FROM sleepstack.{table.name} LIMIT 0").columns.tolist()  # noqa: S608
        assert cols == [c for c, _, _ in table.columns] + [table.partition]


def test_athena_engine_binds_the_deployed_database_and_runs_the_text() -> None:
    class Cursor:
        description = (("n",),)

        def execute(self, sql: str) -> None:
            self.sql = sql

        def fetchall(self) -> list[tuple[int]]:
            return [(3,)]

    class Connection:
        def cursor(self) -> Cursor:
            self.last = Cursor()
            return self.last

    conn = Connection()
    engine = AthenaSqlEngine(conn, database="sleepstack_prod")
    for name in query_names():
        bound = engine.bind(load_query(name))
        assert "sleepstack_prod." in bound and "sleepstack." not in bound.replace("sleepstack_prod.", "")
    df = engine.query("SELECT count(*) AS n FROM sleepstack.night_summary WHERE status = 'staged'")
    assert df["n"].tolist() == [3]
    assert conn.last.sql == "SELECT COUNT(*) AS n FROM sleepstack_prod.night_summary WHERE status = 'staged'"


def test_unknown_query_name() -> None:
    from core.errors import QueryError

    with pytest.raises(QueryError, match="night_summaries"):
        load_query("nope")


@pytest.mark.parametrize(
    ("sql", "refusal"),
    [
        ("SELECT * FROM read_csv('/etc/passwd', delim=':')", "read_csv()"),
        ("select * FROM READ_TEXT('/etc/passwd')", "read_text()"),
        ("SELECT * FROM query('SELECT 1')", "query()"),
        ("SELECT * FROM 'x.parquet'", "unknown table"),
        ("SELECT * FROM other.t", "unknown table"),
        ("SELECT * FROM sleepstack.nope", "unknown table"),
        ("COPY (SELECT 1) TO '/tmp/x'", "not COPY"),
        ("CREATE TABLE t AS SELECT 1", "not CREATE"),
        ("INSERT INTO sleepstack.night_summary SELECT * FROM sleepstack.night_summary", "not INSERT"),
        ("SET enable_external_access = true", "not SET"),
        ("SELECT 1; DROP TABLE x", "2 statements"),
        ("  -- nothing\n", "holds no statement"),
        ("", "empty"),
    ],
)
def test_analyst_sql_is_one_read_only_query_on_the_lake(sql: str, refusal: str) -> None:
    from core.errors import QueryError
    from serving.sql_policy import check_query

    with pytest.raises(QueryError, match=re.escape(refusal)):
        check_query(sql, {"night_summary", "epoch_stages", "raw_records"})


def test_the_local_engine_is_confined_to_the_lake_even_past_the_check(tmp_path: Path) -> None:
    """DuckDB itself refuses files outside the lake and configuration changes (defence in depth)."""
    from core.errors import QueryError

    engine = LocalSqlEngine(tmp_path / "lake")
    assert engine.query("WITH a AS (SELECT 1 AS x) SELECT x FROM a")["x"].tolist() == [1]
    for raw in (
        "SELECT * FROM read_csv('/etc/passwd')",
        f"COPY (SELECT 1) TO '{tmp_path}/out.csv'",
        f"ATTACH '{tmp_path}/x.db' AS x",
        "SET enable_external_access = true",
    ):
        with pytest.raises(QueryError, match="the query failed"):
            engine._execute(raw)
    assert not (tmp_path / "out.csv").exists() and not (tmp_path / "x.db").exists()


def test_parameters_are_bound_as_literals_never_as_sql(lake: Path) -> None:
    engine = LocalSqlEngine(lake)
    sql = load_query("night_detail")
    (row,) = engine.query(sql, {"subject": "s001", "night": "2026-01-05"}).to_dict(orient="records")
    assert row["subject_id"] == "s001"
    hostile = {"subject": "s001' OR '1'='1", "night": "2026-01-05' OR night <> '"}
    assert engine.query(sql, hostile).empty  # the quotes are part of the value, not of the query


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"subject": "s001"}, "needs a value for :night"),
        ({"subject": "s001", "night": "x", "extra": 1}, "no placeholder :extra"),
        ({"subject": ["s001"], "night": "x"}, "must be text or a number"),
    ],
)
def test_missing_extra_or_odd_parameters_are_refused(lake: Path, params: dict[str, Any], message: str) -> None:
    from core.errors import QueryError

    with pytest.raises(QueryError, match=message):
        LocalSqlEngine(lake).query(load_query("night_detail"), params)


def test_the_batch_bench_times_every_query_it_can_on_its_synthetic_year(tmp_path: Path) -> None:
    from sleepstack.bench.batch import _query_latency, _year

    _year(tmp_path, 3, 3, 11)
    figures = _query_latency(tmp_path, 1)
    timed = {k for k, v in figures.items() if isinstance(v, float)} - {"engine_open"}
    assert timed | set(figures["not_timed"]) == set(query_names())
    assert figures["not_timed"] == ["night_epochs"]  # the year holds nights, not epochs


def test_sql_command_binds_params_and_lists_queries(lake: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from sleepstack.cli import main

    argv = ["sql", "night_list", "--lake", str(lake), "--param", "subject=s001", "--param", "limit=1"]
    assert main(argv) == 0
    rows = capsys.readouterr().out.strip().splitlines()
    assert len(rows) == 2 and "s001" in rows[1] and "2026-01-06" in rows[1]  # newest first, one row
    assert main(["sql", "--list"]) == 0
    listing = capsys.readouterr().out
    assert "night_list" in listing and "--param limit=... --param subject=..." in listing
    assert "night_summary" in listing and "pauses_per_hour" in listing  # the catalog's tables and columns
    for argv, flag in (
        (["sql", "night_list", "--lake", str(lake), "--param", "subject"], "--param"),
        (["sql", "night_list", "--lake", str(lake), "--param", "subject=s001"], ":limit"),
        (["sql"], "QUERY"),
    ):
        assert main(argv) == 2, argv
        assert flag in capsys.readouterr().err
