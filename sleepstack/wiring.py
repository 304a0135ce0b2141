"""Wire core + adapters from settings: the only place that picks local or AWS edges."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.alerts import AlertRules
from sleepstack.settings import Settings
from speed_layer.dead_letters import DeadLetterSink, LocalDeadLetters, S3DeadLetters
from speed_layer.handler import SpeedLayerHandler
from speed_layer.state_store import DynamoStateStore, LocalStateStore, StateStore
from speed_layer.store import LiveStore, LocalLiveStore, OpenSearchLiveStore

__all__ = ["dead_letters", "live_store", "opensearch_client", "speed_layer_handler", "state_store"]


def opensearch_client(url: str) -> Any:
    from opensearchpy import OpenSearch

    return OpenSearch(hosts=[url], timeout=30)


def live_store(settings: Settings) -> LiveStore:
    if settings.opensearch_url:
        return OpenSearchLiveStore(opensearch_client(settings.opensearch_url))
    return LocalLiveStore(settings.home / "serving" / "live.sqlite")


def state_store(settings: Settings) -> StateStore:
    if settings.target == "aws":
        if not settings.state_table:
            raise ValueError("SLEEPSTACK_STATE_TABLE must be set when SLEEPSTACK_TARGET=aws")
        import boto3

        return DynamoStateStore(boto3.client("dynamodb", region_name=settings.region), settings.state_table)
    return LocalStateStore(settings.home / "serving" / "state.sqlite")


def dead_letters(settings: Settings, local_dir: Path | None = None) -> DeadLetterSink:
    if settings.target == "aws":
        if not settings.dead_letter_bucket:
            raise ValueError("SLEEPSTACK_DEAD_LETTER_BUCKET must be set when SLEEPSTACK_TARGET=aws")
        import boto3

        return S3DeadLetters(boto3.client("s3", region_name=settings.region), settings.dead_letter_bucket)
    return LocalDeadLetters(local_dir or settings.home / "dead-letters")


def speed_layer_handler(settings: Settings, **kwargs: Any) -> SpeedLayerHandler:
    return SpeedLayerHandler(
        live_store(settings),
        state_store(settings),
        dead_letters(settings),
        rules=AlertRules.from_dict(settings.alert_rules),
        **kwargs,
    )
