"""AWS Glue job: stage nights from the raw lake into the curated lake.

Job arguments: ``--RAW_PATH s3://.../raw --CURATED_PATH s3://.../curated --NIGHTS
2026-01-05,2026-01-06 --TZ Europe/Berlin --STAGING_RR off`` (``on``: nights with a strap's RR
are staged by the RR model, as ``SLEEPSTACK_STAGING_RR`` does locally). ``--NIGHTS yesterday`` (the scheduled
trigger's default) stages the night that ended at the last noon in ``--TZ``.
``--REGISTRY_TABLE`` (optional; the template sets it): the registry's DynamoDB table, whose
subjects' time zones cut each subject's nights (``--TZ`` for a subject it does not name). The job code is
``batch_layer.nightly_job.run_nightly``, the same the local ``sleepstack batch run`` uses;
the core and batch_layer travel as the wheel built by ``sleepstack package``.
"""

from __future__ import annotations

import sys
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo


def subject_zones(table: str) -> dict[str, str]:
    """Each registered subject's time zone, from the registry's DynamoDB table."""
    import boto3

    from registry.dynamodb import DynamoRegistry

    return {s.subject_id: s.tz for s in DynamoRegistry(boto3.client("dynamodb"), table).subjects()}


def main(argv: list[str]) -> None:
    from awsglue.context import GlueContext  # only on Glue
    from awsglue.utils import getResolvedOptions
    from pyspark.context import SparkContext

    from batch_layer.nightly_job import run_nightly
    from core.contract.epochs import resolve_nights

    names = ["RAW_PATH", "CURATED_PATH", "NIGHTS", "TZ", "STAGING_RR"]
    args = getResolvedOptions(argv, [*names, *(["REGISTRY_TABLE"] if "--REGISTRY_TABLE" in argv else [])])
    if args["STAGING_RR"] not in ("on", "off"):
        raise SystemExit(f"--STAGING_RR must be 'on' or 'off', not {args['STAGING_RR']!r}")
    spark = GlueContext(SparkContext.getOrCreate()).spark_session
    spark.conf.set("spark.sql.sources.partitionColumnTypeInference.enabled", "false")
    spark.conf.set("spark.sql.session.timeZone", "UTC")
    nights = resolve_nights(args["NIGHTS"], args["TZ"], datetime.now(tz=ZoneInfo("UTC")))
    options: dict[str, Any] = {"rr_staging": args["STAGING_RR"] == "on"}
    if args.get("REGISTRY_TABLE"):
        options["subject_tz"] = subject_zones(args["REGISTRY_TABLE"])
    result = run_nightly(spark, args["RAW_PATH"], args["CURATED_PATH"], nights, args["TZ"], **options)
    print(
        f"staged {result.subject_nights} subject-nights, {result.epochs} epochs;"
        f" re-staged for late data: {result.reprocessed}"
    )


if __name__ == "__main__":
    main(sys.argv)
