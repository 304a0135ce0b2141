"""Build AWS clients: the one place that knows local endpoints from real ones."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config

__all__ = ["kinesis_client"]


def kinesis_client(endpoint: str | None, region: str) -> Any:
    """A Kinesis client; ``endpoint`` set means the local stack (dummy credentials)."""
    config = Config(retries={"max_attempts": 3, "mode": "standard"}, max_pool_connections=16)
    if endpoint is None:
        return boto3.client("kinesis", region_name=region, config=config)
    return boto3.client(
        "kinesis",
        region_name=region,
        endpoint_url=endpoint,
        config=config,
        aws_access_key_id="local",  # kinesalite accepts any credentials
        aws_secret_access_key="local",  # noqa: S106
    )
