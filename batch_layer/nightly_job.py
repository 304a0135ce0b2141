"""The nightly batch job: raw lake -> staged epochs and night summaries (PySpark).

One code path for AWS Glue (``glue_jobs/nightly_staging.py``) and local ``local[*]``
(``sleepstack batch run``): read the raw partitions that can hold the nights, assign each
record to its noon-to-noon night in the subjects' time zone,
``groupBy(subject_id, night).applyInPandas`` the core's staging, and write both curated
tables partitioned by night with dynamic partition overwrite — rerunning a night
replaces exactly its partitions.

Late data: every run also writes, per night it staged, the newest ``ingest_time_ms`` it
consumed (``<curated>/_state/nights``). Before staging, the job scans the raw lake's
last :data:`LOOKBACK_DAYS` days (two columns only) for nights already staged that now
hold records ingested after that watermark; those nights are marked pending and staged
again in the same run, so a strap that uploads its spool days late corrects its night.

Conflicts: a record id that names two contents in the raw data (an old lake, a bug) is
counted per night in the state table (``record_conflicts``) and in the result; staging
keeps one copy deterministically (:mod:`core.contract.conflicts`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Final

import pandas as pd

from batch_layer.stage_models import bundled
from core.contract import MEASUREMENT_KINDS, spark_ddl
from core.nights.nightly import EPOCH_COLUMNS, NIGHT_COLUMNS, stage_subject_night, summarize_night

__all__ = ["LOOKBACK_DAYS", "NightlyResult", "pending_nights", "raw_dates_for", "run_nightly"]

LOOKBACK_DAYS: Final = 14
_STATE: Final = "_state/nights"
_STATE_DDL: Final = (
    "night STRING, max_ingest_time_ms BIGINT, raw_records BIGINT, processed_at_ms BIGINT, record_conflicts BIGINT"
)


@dataclass(frozen=True)
class NightlyResult:
    nights: list[str]
    subject_nights: int
    epochs: int
    reprocessed: list[str] = field(default_factory=list)  # nights staged again because late data arrived
    #: contents beyond the first under a record id in the raw data (one kept, :mod:`core.contract.conflicts`)
    record_conflicts: int = 0


def _ddl(cols: tuple[tuple[str, str], ...]) -> str:
    return ", ".join(f"{name} {typ}" for name, typ in cols)


def raw_dates_for(nights: list[str]) -> list[str]:
    """``dt`` partitions (event date, UTC) that can hold records of these nights, any zone."""
    out: set[str] = set()
    for n in nights:
        d = date.fromisoformat(n)
        out.update((d + timedelta(days=k)).isoformat() for k in (-1, 0, 1, 2))
    return sorted(out)


def _raw(spark: Any, raw_path: str, dates: list[str], tz: str, subject_tz: Mapping[str, str] | None = None) -> Any:
    """Raw measurement rows of the ``dt`` partitions ``dates``, with their ``night`` column: noon to noon
    in each subject's own zone (``subject_tz``, from the registry), ``tz`` for the rest."""
    from pyspark.sql import functions as F

    raw = (
        spark.read.schema(spark_ddl() + ", dt STRING")
        .option("basePath", raw_path)
        .parquet(raw_path)
        .where(F.col("dt").isin(dates) & F.col("kind").isin(list(MEASUREMENT_KINDS)))  # not device statuses
    )
    zone = F.lit(tz)
    if subject_tz:
        zones = spark.createDataFrame(sorted(subject_tz.items()), "subject_id STRING, _subject_tz STRING")
        raw = raw.join(F.broadcast(zones), "subject_id", "left")
        zone = F.coalesce(F.col("_subject_tz"), F.lit(tz))
    local = F.from_utc_timestamp(F.timestamp_millis("event_time_ms"), zone)
    raw = raw.withColumn("night", F.date_format(local - F.expr("INTERVAL 12 HOURS"), "yyyy-MM-dd"))
    return raw.drop("_subject_tz") if subject_tz else raw


def _state(spark: Any, curated_path: str) -> Any | None:
    from pyspark.errors import AnalysisException

    try:
        return spark.read.schema(_STATE_DDL).parquet(f"{curated_path}/{_STATE}")
    except AnalysisException:  # nothing staged yet
        return None


def pending_nights(
    spark: Any, raw_path: str, curated_path: str, tz: str, until: str, subject_tz: Mapping[str, str] | None = None
) -> list[str]:
    """Staged nights up to ``until`` whose raw data gained records after they were staged."""
    from pyspark.sql import functions as F

    state = _state(spark, curated_path)
    if state is None:
        return []
    end = date.fromisoformat(until)
    dates = [(end - timedelta(days=k)).isoformat() for k in range(-2, LOOKBACK_DAYS + 1)]
    seen = _raw(spark, raw_path, dates, tz, subject_tz).groupBy("night").agg(F.max("ingest_time_ms").alias("newest"))
    late = seen.join(state, "night").where(F.col("newest") > F.col("max_ingest_time_ms"))
    return sorted(r["night"] for r in late.select("night").collect())


def run_nightly(
    spark: Any,
    raw_path: str,
    curated_path: str,
    nights: list[str],
    tz: str = "UTC",
    *,
    include_pending: bool = True,
    rr_staging: bool = False,
    subject_tz: Mapping[str, str] | None = None,
) -> NightlyResult:
    """Stage ``nights`` (``YYYY-MM-DD``), plus pending late-data nights, into ``curated_path``.

    ``rr_staging``: nights with a strap's RR are staged by the RR model (``SLEEPSTACK_STAGING_RR``).
    ``subject_tz``: each subject's time zone (the registry's); a night runs noon to noon in
    its subject's zone, ``tz`` for a subject not named."""
    from pyspark.sql import functions as F

    spark.conf.set("spark.sql.sources.partitionOverwriteMode", "dynamic")
    late = pending_nights(spark, raw_path, curated_path, tz, max(nights), subject_tz) if include_pending else []
    todo = sorted(set(nights) | set(late))
    raw = _raw(spark, raw_path, raw_dates_for(todo), tz, subject_tz).where(F.col("night").isin(todo))
    # watermark taken *before* staging (a column-pruned scan): a record landing in between is
    # staged now and merely triggers one needless re-stage later, never a missed one
    content = F.xxhash64(*[c for c in raw.columns if c not in ("dt", "night")])
    state = raw.groupBy("night").agg(
        F.max("ingest_time_ms").alias("max_ingest_time_ms"),
        F.countDistinct("record_id").alias("raw_records"),
        F.lit(int(time.time() * 1000)).alias("processed_at_ms"),
        (F.countDistinct("record_id", content) - F.countDistinct("record_id")).alias("record_conflicts"),
    )
    rows = state.collect()
    state = spark.createDataFrame(rows, schema=_STATE_DDL)
    conflicts = sum(int(r["record_conflicts"] or 0) for r in rows)
    # duplicate record ids are dropped inside each group (stage_subject_night): a record id is a
    # hash of the record's content, so its copies always share a (subject, night) group; a
    # dropDuplicates here would shuffle every 100 Hz sample a second time
    raw = raw.drop("dt")

    def stage(night: pd.DataFrame) -> pd.DataFrame:  # type hints: how Spark reads a grouped-map function
        return stage_subject_night(night, models=bundled(), rr_staging=rr_staging)

    def summarize(epochs: pd.DataFrame) -> pd.DataFrame:
        return summarize_night(epochs, bundled())

    epochs = raw.groupBy("subject_id", "night").applyInPandas(stage, schema=_ddl(EPOCH_COLUMNS))
    epochs = epochs.cache()
    summaries = epochs.groupBy("subject_id", "night").applyInPandas(summarize, schema=_ddl(NIGHT_COLUMNS))
    (
        epochs.repartition("night")
        .sortWithinPartitions("subject_id", "epoch_start_ms")
        .write.mode("overwrite")
        .partitionBy("night")
        .parquet(f"{curated_path}/epochs")
    )
    (
        summaries.repartition("night")
        .sortWithinPartitions("subject_id")
        .write.mode("overwrite")
        .partitionBy("night")
        .parquet(f"{curated_path}/nights")
    )
    state.repartition(1).write.mode("overwrite").partitionBy("night").parquet(f"{curated_path}/{_STATE}")
    n_epochs = epochs.count()
    n_groups = summaries.count()
    epochs.unpersist()
    return NightlyResult(todo, n_groups, n_epochs, [n for n in late if n not in nights], conflicts)
