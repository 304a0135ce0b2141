"""The local SparkSession (``local[*]``) the CLI and tests use; Glue builds its own."""

from __future__ import annotations

import os
import sys
from typing import Any

__all__ = ["local_spark"]


def local_spark(app: str = "sleepstack-nightly", cores: str = "*") -> Any:
    """A quiet local session with the settings the nightly job relies on."""
    # Spark's Python workers are child processes: they must run this interpreter (the venv),
    # which the spark.pyspark.python setting alone does not achieve in local mode.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # noqa: TID251 - sets, not reads
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)  # noqa: TID251
    from pyspark.sql import SparkSession

    spark = (
        SparkSession.builder.master(f"local[{cores}]")
        .appName(app)
        .config("spark.pyspark.python", sys.executable)
        .config("spark.pyspark.driver.python", sys.executable)
        .config("spark.driver.host", "127.0.0.1")  # loopback only
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.sql.sources.partitionColumnTypeInference.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.memory", "3g")
        .config("spark.python.worker.reuse", "true")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    return spark
