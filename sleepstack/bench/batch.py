"""``sleepstack bench batch``: nightly-job throughput and serving-query latency.

* Throughput: the nightly Spark job (``run_nightly`` on ``local[*]``, the job Glue runs)
  over raw lakes of 10, 100 and 1,000 subject-nights of strap (1 Hz, RR) + 100 Hz bed
  data. The lake is built from ``templates`` simulated nights, each copied under fresh
  subject and record ids (the staging work per copy is the same as for a new night; the
  simulation itself is not what is measured). Reported per count: subject-nights staged
  per minute of job wall time, seconds per night, and the raw bytes read. Cost per
  night must not grow with the count. Goal: >= 200 nights/min on 2 cores.
  ``core_nights_per_min_per_core`` times the same per-night function without Spark, so
  the job's overhead is visible beside it.
* Query latency: each named serving query on a year of 100 subjects (36,500 nights in
  365 night partitions) in the local curated layout, through the DuckDB engine; median
  of ``rounds`` after a warm-up. ``engine_open`` is the one-off cost of opening the
  engine (it snapshots small tables into memory). The year's values are synthetic
  (random stages and vitals of realistic ranges); its shape (rows, partitions, types,
  files) is the real one. Goal: <= 200 ms per query.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from batch_layer.lake_schema import RAW_SCHEMA
from batch_layer.raw_landing import partition_keys
from batch_layer.stage_models import bundled
from core.contract import to_row
from core.contract.epochs import night_of
from core.nights.nightly import NIGHT_COLUMNS, stage_subject_night, summarize_night
from simulator.nights import FIRST_NIGHT_T0_MS
from sleepstack.bench.fixtures import simulated_night_records

__all__ = ["bench_batch"]

_LABELS = ("wake", "light", "deep", "rem")


def _templates(n: int, seed: int) -> list[dict[str, pa.Table]]:
    """``n`` simulated nights as raw-lake tables by ``dt`` partition."""
    out = []
    for k in range(n):
        recs = simulated_night_records(f"t{k}", seed + k, apnea_per_hour=4.0)
        by_dt: dict[str, list[dict[str, Any]]] = {}
        for r in recs:
            by_dt.setdefault(partition_keys(r)["dt"], []).append(to_row(r))
        out.append({dt: pa.Table.from_pylist(rows, schema=RAW_SCHEMA) for dt, rows in by_dt.items()})
    return out


def _copy(table: pa.Table, subject: str) -> pa.Table:
    n = table.num_rows
    table = table.set_column(table.schema.get_field_index("subject_id"), "subject_id", pa.array([subject] * n))
    ids = pc.binary_join_element_wise(table["record_id"], pa.array([subject] * n), "-")
    return table.set_column(table.schema.get_field_index("record_id"), "record_id", ids)


def _raw_lake(root: Path, templates: list[dict[str, pa.Table]], nights: int) -> int:
    """Write ``nights`` subject-nights (all on the first night) under ``root/raw``; bytes written."""
    written = 0
    for i in range(nights):
        for dt, table in templates[i % len(templates)].items():
            d = root / "raw" / f"dt={dt}"
            d.mkdir(parents=True, exist_ok=True)
            path = d / f"bench-{i:05d}.parquet"
            pq.write_table(_copy(table, f"b{i:05d}"), path, compression="zstd")
            written += path.stat().st_size
    return written


def _core_rate(templates: list[dict[str, pa.Table]]) -> float:
    """Nights per minute of the per-night function alone, one core (median over templates)."""
    times = []
    for tables in templates:
        raw = pa.concat_tables(tables.values()).to_pandas()
        raw["night"] = night_of(FIRST_NIGHT_T0_MS)
        t = time.perf_counter()
        summarize_night(stage_subject_night(raw, models=bundled()), bundled())
        times.append(time.perf_counter() - t)
    return 60.0 / statistics.median(times)


def _year(root: Path, subjects: int, days: int, seed: int) -> None:
    """The curated nights table for ``subjects`` x ``days`` (synthetic values, one file per night).

    No named query reads the epochs table (HR by stage uses the nightly per-stage means),
    so the year has none; the engine's views over it would be read only by ad-hoc SQL.
    """
    rng = np.random.default_rng(seed)
    n_ep = 960  # 8 h
    first = pd.Timestamp("2025-01-01")
    subject_ids = np.array([f"s{k:03d}" for k in range(subjects)])
    for day in range(days):
        night = (first + pd.Timedelta(days=day)).strftime("%Y-%m-%d")
        t0 = int((first + pd.Timedelta(days=day, hours=22)).timestamp() * 1000)
        stage = rng.choice(4, size=(subjects, n_ep), p=[0.1, 0.5, 0.15, 0.25]).astype(np.int8)
        hr = 50 + 10 * rng.random((subjects, n_ep)) + 3 * stage
        tst = (stage != 0).sum(axis=1) / 2.0
        nights = pd.DataFrame({c: [None] * subjects for c, _ in NIGHT_COLUMNS if c != "night"})
        nights = nights.assign(
            subject_id=subject_ids,
            first_epoch_ms=t0,
            epochs=n_ep,
            coverage_pct=100.0,
            time_in_bed_min=n_ep / 2.0,
            total_sleep_time_min=tst,
            sleep_onset_latency_min=10.0,
            waso_min=n_ep / 2.0 - tst - 10.0,
            sleep_efficiency_pct=100 * tst / (n_ep / 2.0),
            awakenings=rng.integers(0, 8, subjects).astype(np.int32),
            light_pct=100 * (stage == 1).sum(axis=1) / (2 * tst),
            deep_pct=100 * (stage == 2).sum(axis=1) / (2 * tst),
            rem_pct=100 * (stage == 3).sum(axis=1) / (2 * tst),
            breathing_pauses=rng.poisson(20, subjects).astype(np.int32),
            pauses_per_hour=rng.gamma(2.0, 3.0, subjects),
            sleep_score=rng.uniform(40, 100, subjects),
            mean_hr_bpm=hr.mean(axis=1),
            mean_br_per_min=14.0,
            **{
                f"hr_{label}_bpm": np.nanmean(np.where(stage == k, hr, np.nan), axis=1)
                for k, label in enumerate(_LABELS)
            },
            **{f"br_{label}_per_min": 12 + 4 * rng.random(subjects) for label in _LABELS},
            status="staged",
            method="bench",
        )
        d = root / "curated" / "nights" / f"night={night}"
        d.mkdir(parents=True)
        nights.astype({"status_reason": "string"}).to_parquet(d / "part-0.parquet", index=False)


def _query_latency(root: Path, rounds: int) -> dict[str, Any]:
    from core.errors import EmptyTableError
    from local.duckdb_sql import LocalSqlEngine
    from serving.sql_engine import load_query, query_names

    t = time.perf_counter()
    engine = LocalSqlEngine(root)
    out: dict[str, Any] = {"engine_open": round(1000 * (time.perf_counter() - t), 1)}
    for name in query_names():
        text = load_query(name)
        # the dashboard's queries take a subject, a night and a row limit (bound as literals)
        params = {k: v for k, v in _QUERY_PARAMS.items() if f":{k}" in text}
        try:
            engine.query(text, params)  # warm-up: file metadata, plan
        except EmptyTableError:  # the synthetic year holds nights only (bench dashboard times epochs)
            out.setdefault("not_timed", []).append(name)
            continue
        times = []
        for _ in range(rounds):
            t = time.perf_counter()
            engine.query(text, params)
            times.append(time.perf_counter() - t)
        out[name] = round(1000 * statistics.median(times), 1)
    return out


#: Values of the named queries' placeholders: a subject and a night of the synthetic year.
_QUERY_PARAMS: dict[str, str | int] = {"subject": "s007", "night": "2025-06-30", "limit": 100}


def bench_batch(
    counts: tuple[int, ...] = (10, 100, 1000),
    *,
    templates: int = 4,
    query_subjects: int = 100,
    query_days: int = 365,
    rounds: int = 5,
    seed: int = 11,
) -> dict[str, Any]:
    from batch_layer.nightly_job import run_nightly
    from local.spark import local_spark

    tpl = _templates(templates, seed)
    figures: dict[str, Any] = {"cores": os.cpu_count(), "template_nights": templates}
    figures["core_nights_per_min_per_core"] = round(_core_rate(tpl), 1)
    spark = local_spark("sleepstack-bench")
    night = night_of(FIRST_NIGHT_T0_MS)
    runs = []
    for n in counts:
        with tempfile.TemporaryDirectory(prefix="sleepstack-bench-") as tmp:
            root = Path(tmp)
            raw_bytes = _raw_lake(root, tpl, n)
            t = time.perf_counter()
            res = run_nightly(spark, str(root / "raw"), str(root / "curated"), [night], include_pending=False)
            wall = time.perf_counter() - t
        runs.append(
            {
                "nights": n,
                "staged": res.subject_nights,
                "wall_s": round(wall, 2),
                "nights_per_min": round(60 * n / wall, 1),
                "s_per_night": round(wall / n, 3),
                "raw_mib": round(raw_bytes / 2**20, 1),
            }
        )
    figures["job"] = runs
    figures["nights_per_min_at_largest"] = runs[-1]["nights_per_min"]
    figures["goal_nights_per_min"] = 200
    with tempfile.TemporaryDirectory(prefix="sleepstack-bench-sql-") as tmp:
        t = time.perf_counter()
        _year(Path(tmp), query_subjects, query_days, seed)
        figures["query_year"] = {
            "subjects": query_subjects,
            "nights": query_subjects * query_days,
            "build_s": round(time.perf_counter() - t, 1),
        }
        figures["query_ms_median"] = _query_latency(Path(tmp), rounds)
    figures["goal_query_ms"] = 200
    return figures
