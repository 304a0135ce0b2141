"""The nightly batch job: raw lake -> staged epochs and night summaries (PySpark).

One code path for AWS Glue (``glue_jobs/nightly_staging.py``) and local ``local[*]``
(``sleepstack batch run``): read the raw partitions that can hold the nights, assign each
record to its noon-to-noon night in the subjects' time zone, drop duplicate record ids,
``groupBy(subject_id, night).applyInPandas`` the core's staging, and write both curated
tables partitioned by night with dynamic partition overwrite — rerunning a night
replaces exactly its partitions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from core.contract import spark_ddl
from core.nightly import EPOCH_COLUMNS, NIGHT_COLUMNS, stage_subject_night, summarize_night

__all__ = ["NightlyResult", "raw_dates_for", "run_nightly"]


@dataclass(frozen=True)
class NightlyResult:
    nights: list[str]
    subject_nights: int
    epochs: int


def _ddl(cols: tuple[tuple[str, str], ...]) -> str:
    return ", ".join(f"{name} {typ}" for name, typ in cols)


def raw_dates_for(nights: list[str]) -> list[str]:
    """``dt`` partitions (event date, UTC) that can hold records of these nights, any zone."""
    out: set[str] = set()
    for n in nights:
        d = date.fromisoformat(n)
        out.update((d + timedelta(days=k)).isoformat() for k in (-1, 0, 1, 2))
    return sorted(out)


def run_nightly(spark: Any, raw_path: str, curated_path: str, nights: list[str], tz: str = "UTC") -> NightlyResult:
    """Stage ``nights`` (``YYYY-MM-DD``) from ``raw_path`` into ``curated_path``."""
    from pyspark.sql import functions as F

    spark.conf.set("spark.sql.sources.partitionOverwriteMode", "dynamic")
    raw = (
        spark.read.schema(spark_ddl() + ", dt STRING")
        .option("basePath", raw_path)
        .parquet(raw_path)
        .where(F.col("dt").isin(raw_dates_for(nights)))
    )
    local = F.from_utc_timestamp(F.timestamp_millis("event_time_ms"), tz)
    raw = (
        raw.withColumn("night", F.date_format(local - F.expr("INTERVAL 12 HOURS"), "yyyy-MM-dd"))
        .where(F.col("night").isin(nights))
        .dropDuplicates(["record_id"])
        .drop("dt")
    )
    epochs = raw.groupBy("subject_id", "night").applyInPandas(stage_subject_night, schema=_ddl(EPOCH_COLUMNS))
    epochs = epochs.cache()
    summaries = epochs.groupBy("subject_id", "night").applyInPandas(summarize_night, schema=_ddl(NIGHT_COLUMNS))
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
    n_epochs = epochs.count()
    n_groups = summaries.count()
    epochs.unpersist()
    return NightlyResult(sorted(nights), n_groups, n_epochs)
