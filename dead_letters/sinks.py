"""Where quarantined records go: a local directory or an S3 bucket (on-failure destination).

Each dead letter is one JSON object: the reason, the offending field, where the record
came from, and the payload in base64, so nothing is lost and it can be replayed.
"""

from __future__ import annotations

import base64
import json
import threading
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

__all__ = ["DeadLetterSink", "LocalDeadLetters", "S3DeadLetters", "dead_letter"]


def dead_letter(payload: bytes, *, reason: str, field: str, source: dict[str, Any]) -> dict[str, Any]:
    return {"reason": reason, "field": field, "source": source, "payload_b64": base64.b64encode(payload).decode()}


class DeadLetterSink(ABC):
    """Destination of records that cannot be processed."""

    @abstractmethod
    def put(self, key: str, letter: dict[str, Any]) -> None: ...


class LocalDeadLetters(DeadLetterSink):
    """One JSON file per dead letter under ``directory`` (``key`` is its relative name)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._lock = threading.Lock()

    def put(self, key: str, letter: dict[str, Any]) -> None:
        path = self.directory / f"{key}.json"
        with self._lock:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(letter, sort_keys=True))

    def read_all(self) -> list[dict[str, Any]]:
        return [json.loads(p.read_text()) for p in sorted(self.directory.rglob("*.json"))]


class S3DeadLetters(DeadLetterSink):
    """Dead letters as S3 objects ``prefix/key.json`` (SSE by the bucket's default key)."""

    def __init__(self, s3_client: Any, bucket: str, prefix: str = "speed-layer") -> None:
        self.s3, self.bucket, self.prefix = s3_client, bucket, prefix

    def put(self, key: str, letter: dict[str, Any]) -> None:
        self.s3.put_object(
            Bucket=self.bucket,
            Key=f"{self.prefix}/{key}.json",
            Body=json.dumps(letter, sort_keys=True).encode(),
            ContentType="application/json",
        )
