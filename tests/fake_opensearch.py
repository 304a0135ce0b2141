"""An opensearch-py Connection that records every HTTP request and answers from a script.

The real ``OpenSearch`` client, transport and serializer run unchanged; only the socket
is replaced, so tests see the exact method, path, query parameters and body sent.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from opensearchpy import OpenSearch
from opensearchpy.connection import Connection


@dataclass
class Sent:
    method: str
    url: str
    params: dict[str, Any]
    body: bytes | None

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def ndjson(self) -> list[Any]:
        return [json.loads(line) for line in (self.body or b"").decode().splitlines()]


Responder = Callable[[Sent], tuple[int, Any]]


@dataclass
class FakeCluster:
    """Records requests; ``respond`` maps a request to (status, JSON body)."""

    respond: Responder
    sent: list[Sent] = field(default_factory=list)

    def client(self) -> OpenSearch:
        cluster = self

        class _Recording(Connection):
            def perform_request(  # type: ignore[override]
                self,
                method: str,
                url: str,
                params: Any = None,
                body: Any = None,
                timeout: Any = None,
                ignore: Any = (),
                headers: Any = None,
            ) -> tuple[int, dict[str, str], str]:
                raw = body.encode() if isinstance(body, str) else body
                req = Sent(method, url, dict(params or {}), raw)
                cluster.sent.append(req)
                status, payload = cluster.respond(req)
                data = json.dumps(payload)
                if not 200 <= status < 300 and status not in ignore:
                    self._raise_error(status, data, "application/json")
                return status, {"content-type": "application/json"}, data

        return OpenSearch(hosts=[{"host": "fake", "port": 9200}], connection_class=_Recording, max_retries=0)


def bulk_ok(req: Sent) -> tuple[int, Any]:
    """A cluster that accepts every bulk item."""
    lines = req.ndjson()
    items = [{"index": {"_index": a["index"]["_index"], "_id": a["index"]["_id"], "status": 201}} for a in lines[::2]]
    return 200, {"took": 1, "errors": False, "items": items}
