"""AWS Glue job: stage nights from the raw lake into the curated lake.

Job arguments: ``--RAW_PATH s3://.../raw --CURATED_PATH s3://.../curated --NIGHTS
2026-01-05,2026-01-06 --TZ Europe/Berlin``. ``--NIGHTS yesterday`` (the scheduled
trigger's default) stages the night that ended at the last noon in ``--TZ``. The job code is
``batch_layer.nightly_job.run_nightly``, the same the local ``sleepstack batch run`` uses;
the core and batch_layer travel as the wheel built by ``sleepstack package``.
"""

from __future__ import annotations

import re
import sys
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def resolve_nights(spec: str, tz: str, now: datetime) -> list[str]:
    """Nights (``YYYY-MM-DD`` of their evening) named by a ``--NIGHTS`` argument.

    ``yesterday``: the last night that has ended (a night runs noon to noon in ``tz``);
    otherwise a comma-separated list of dates, each checked.
    """
    if spec.strip() == "yesterday":
        local = now.astimezone(ZoneInfo(tz))
        ended = local.date() - timedelta(days=1 if local.hour >= 12 else 2)
        return [ended.isoformat()]
    nights = [n.strip() for n in spec.split(",") if n.strip()]
    bad = [n for n in nights if not _DATE.match(n)]
    if not nights or bad:
        raise ValueError(f"--NIGHTS must be 'yesterday' or YYYY-MM-DD[,YYYY-MM-DD...], got {spec!r}")
    for n in nights:
        try:
            date.fromisoformat(n)
        except ValueError:
            raise ValueError(f"--NIGHTS: {n!r} is not a calendar date") from None
    return nights


def main(argv: list[str]) -> None:
    from awsglue.context import GlueContext  # only on Glue
    from awsglue.utils import getResolvedOptions
    from pyspark.context import SparkContext

    from batch_layer.nightly_job import run_nightly

    args = getResolvedOptions(argv, ["RAW_PATH", "CURATED_PATH", "NIGHTS", "TZ"])
    spark = GlueContext(SparkContext.getOrCreate()).spark_session
    spark.conf.set("spark.sql.sources.partitionColumnTypeInference.enabled", "false")
    spark.conf.set("spark.sql.session.timeZone", "UTC")
    nights = resolve_nights(args["NIGHTS"], args["TZ"], datetime.now(tz=ZoneInfo("UTC")))
    result = run_nightly(spark, args["RAW_PATH"], args["CURATED_PATH"], nights, args["TZ"])
    print(
        f"staged {result.subject_nights} subject-nights, {result.epochs} epochs;"
        f" re-staged for late data: {result.reprocessed}"
    )


if __name__ == "__main__":
    main(sys.argv)
