"""Install the live store's OpenSearch artefacts: ISM policies, index templates, dashboards.

Idempotent: running it again updates every artefact in place. The requests are

* ``PUT /_plugins/_ism/policies/<prefix>-<kind>-lifecycle`` (with ``if_seq_no`` and
  ``if_primary_term`` when the policy exists, as ISM requires for an update);
* ``PUT /_index_template/<prefix>-<kind>`` for vitals, alerts and samples;
* ``POST <dashboards>/api/saved_objects/_import?overwrite=true`` (multipart NDJSON,
  ``osd-xsrf: true``) when a Dashboards URL is given.

ISM templates attach the policy to indices created afterwards; indices that already
exist keep the policy they had. A cluster without the ISM plugin (the local single node:
the plugin is not published to Maven Central) gets the templates and no policies, and
the report says so.
"""

from __future__ import annotations

import base64
import json
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from core.errors import SleepstackError
from speed_layer.dashboards import saved_objects_ndjson
from speed_layer.indices import index_pattern, index_template, ism_policy, mapping, policy_id, template_name
from speed_layer.processing import DOC_KINDS

__all__ = ["HttpPost", "SetupError", "SetupReport", "import_dashboards", "install", "urllib_post", "writer_role"]

HttpPost = Callable[[str, dict[str, str], bytes], tuple[int, bytes]]


class SetupError(SleepstackError):
    """An artefact could not be installed."""


@dataclass
class SetupReport:
    policies: list[str] = field(default_factory=list)
    templates: list[str] = field(default_factory=list)
    dashboards: int = 0
    role_mappings: list[str] = field(default_factory=list)
    #: the cluster has no Index State Management plugin: no lifecycle policies installed
    ism_missing: bool = False

    def summary(self) -> str:
        policies = "none (no ISM plugin on this cluster)" if self.ism_missing else ",".join(self.policies)
        return (
            f"opensearch: policies={policies} templates={','.join(self.templates)}"
            f" dashboards_objects={self.dashboards} role_mappings={','.join(self.role_mappings) or '-'}"
        )


def _put_policy(client: Any, pid: str, body: dict[str, Any]) -> bool:
    """Install or update one ISM policy; False when the cluster has no ISM plugin."""
    url = f"/_plugins/_ism/policies/{pid}"
    # 404: no such policy yet; 400 "no handler found for uri": a cluster without the ISM plugin
    current = client.transport.perform_request("GET", url, params={"ignore": [400, 404]})
    if not isinstance(current, dict) or "_seq_no" not in current:
        if "no handler found" in json.dumps(current):
            return False
        params = {}
    else:
        params = {"if_seq_no": current["_seq_no"], "if_primary_term": current["_primary_term"]}
    client.transport.perform_request("PUT", url, params=params, body=body)
    return True


def writer_role(prefix: str) -> dict[str, Any]:
    """The security-plugin role the speed layer writes with: its indices, nothing else."""
    return {
        "cluster_permissions": ["cluster_composite_ops", "cluster_monitor"],
        "index_permissions": [
            {
                "index_patterns": [f"{prefix}-*"],
                "allowed_actions": ["crud", "create_index", "indices_monitor"],
            }
        ],
    }


def install(
    client: Any,
    *,
    prefix: str = "sleepstack",
    retention_days: dict[str, int] | None = None,
    replicas: int = 1,
    dashboards_url: str | None = None,
    http_post: HttpPost | None = None,
    writer_arns: tuple[str, ...] = (),
) -> SetupReport:
    """Install policies and templates through an ``opensearchpy.OpenSearch`` client.

    ``writer_arns``: IAM roles (the speed-layer function's) to map to the writer role on a
    domain with fine-grained access control; without a mapping the domain refuses them.
    """
    report = SetupReport()
    if writer_arns:
        role = f"{prefix}_writer"
        api = "/_plugins/_security/api"
        client.transport.perform_request("PUT", f"{api}/roles/{role}", body=writer_role(prefix))
        client.transport.perform_request("PUT", f"{api}/rolesmapping/{role}", body={"backend_roles": list(writer_arns)})
        report.role_mappings.append(role)
    for kind in DOC_KINDS:
        pid = policy_id(prefix, kind)
        policy = ism_policy(prefix, kind, (retention_days or {}).get(kind))
        if not report.ism_missing and _put_policy(client, pid, policy):
            report.policies.append(pid)
        else:
            report.ism_missing = True
        name = template_name(prefix, kind)
        client.indices.put_index_template(name=name, body=index_template(prefix, kind, replicas=replicas))
        report.templates.append(name)
        # indices made from an older template get the fields added since (e.g. alerts' indexed_ms):
        # their strict mappings would refuse documents carrying them until the next day's index
        client.indices.put_mapping(
            index=index_pattern(prefix, kind),
            body={"properties": mapping(kind)["properties"]},
            params={"ignore_unavailable": "true", "allow_no_indices": "true"},
        )
    if dashboards_url:
        report.dashboards = import_dashboards(dashboards_url, prefix=prefix, http_post=http_post)
    return report


def urllib_post(url: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise SetupError(f"dashboards URL must be http(s), not {parts.scheme!r}")
    if parts.username:
        token = base64.b64encode(f"{parts.username}:{parts.password or ''}".encode()).decode()
        headers = {**headers, "Authorization": f"Basic {token}"}
        netloc = parts.hostname or ""
        if parts.port:
            netloc += f":{parts.port}"
        url = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310 - scheme checked
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 - scheme checked
            return int(resp.status), resp.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read()


def import_dashboards(base_url: str, *, prefix: str = "sleepstack", http_post: HttpPost | None = None) -> int:
    """Import the saved objects into OpenSearch Dashboards; returns how many it accepted."""
    ndjson = saved_objects_ndjson(prefix).encode()
    boundary = uuid.uuid4().hex
    body = (
        (
            f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="file"; filename="sleepstack.ndjson"\r\n'
            "Content-Type: application/ndjson\r\n\r\n"
        ).encode()
        + ndjson
        + f"\r\n--{boundary}--\r\n".encode()
    )
    headers = {"osd-xsrf": "true", "Content-Type": f"multipart/form-data; boundary={boundary}"}
    url = base_url.rstrip("/") + "/api/saved_objects/_import?overwrite=true"
    status, raw = (http_post or urllib_post)(url, headers, body)
    try:
        resp = json.loads(raw or b"{}")
    except json.JSONDecodeError:
        resp = {}
    if status != 200 or not resp.get("success"):
        errors = resp.get("errors") or raw[:300].decode(errors="replace")
        raise SetupError(f"dashboards import failed ({status}): {errors}")
    return int(resp.get("successCount", 0))
