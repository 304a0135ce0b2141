"""Read the production CloudFormation template, so the local stack mirrors it."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Final

import yaml

__all__ = [
    "TEMPLATE_PATH",
    "StreamSpec",
    "delivery_buffering",
    "event_source_settings",
    "load_template",
    "stream_specs",
]

#: The production template, found as package data of ``infra``.
TEMPLATE_PATH: Final = Path(str(resources.files("infra") / "template.yaml"))


class _CfnLoader(yaml.SafeLoader):
    """YAML loader that keeps CloudFormation short-form tags (!Ref, !Sub, ...) as dicts."""


def _tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    fn = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if fn == "Fn::GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {fn: value}


_CfnLoader.add_multi_constructor("!", _tag)


def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    with path.open() as fh:
        doc: dict[str, Any] = yaml.load(fh, Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass
    return doc


_NO_VALUE: Final = object()


def _resolve(value: Any, params: dict[str, Any], doc: dict[str, Any] | None = None) -> Any:
    """Resolve what the local stack needs: Ref to parameters, Sub, If/Equals/Not on conditions.

    A property set to ``AWS::NoValue`` resolves to the module's no-value marker.
    """
    if isinstance(value, dict) and "Ref" in value:
        if value["Ref"] == "AWS::NoValue":
            return _NO_VALUE
        return params[value["Ref"]]
    if isinstance(value, dict) and "Fn::Sub" in value:
        out = str(value["Fn::Sub"])
        for key, val in params.items():
            out = out.replace("${" + key + "}", str(val))
        return out
    if isinstance(value, dict) and "Fn::If" in value:
        name, then, other = value["Fn::If"]
        return _resolve(then if _condition(name, params, doc or {}) else other, params, doc)
    return value


def _condition(name: str, params: dict[str, Any], doc: dict[str, Any]) -> bool:
    return bool(_truth(doc.get("Conditions", {})[name], params, doc))


def _truth(expr: Any, params: dict[str, Any], doc: dict[str, Any]) -> Any:
    if isinstance(expr, dict) and "Fn::Equals" in expr:
        a, b = (_truth(v, params, doc) for v in expr["Fn::Equals"])
        return str(a) == str(b)
    if isinstance(expr, dict) and "Fn::Not" in expr:
        return not _truth(expr["Fn::Not"][0], params, doc)
    if isinstance(expr, dict) and "Condition" in expr:
        return _condition(expr["Condition"], params, doc)
    return _resolve(expr, params, doc)


@dataclass(frozen=True, slots=True)
class StreamSpec:
    logical_id: str
    name: str
    shard_count: int
    #: how long the stream keeps a record (``RetentionPeriodHours``; Kinesis' default is 24)
    retention_hours: int = 24


def _params(doc: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    params = {k: v.get("Default") for k, v in doc.get("Parameters", {}).items()}
    params.update(overrides)
    return params


def stream_specs(doc: dict[str, Any], **overrides: Any) -> list[StreamSpec]:
    """The Kinesis streams the template creates, with parameters resolved."""
    params = _params(doc, overrides)
    out = []
    for lid, res in doc.get("Resources", {}).items():
        if res.get("Type") == "AWS::Kinesis::Stream":
            props = res["Properties"]
            shards = _resolve(props.get("ShardCount", {"Ref": "AWS::NoValue"}), params, doc)
            retention = _resolve(props.get("RetentionPeriodHours", 24), params, doc)
            out.append(
                StreamSpec(
                    lid,
                    str(_resolve(props["Name"], params)),
                    4 if shards is _NO_VALUE else int(shards),  # an on-demand stream starts with 4 shards
                    24 if retention is _NO_VALUE else int(retention),
                )
            )
    return out


def event_source_settings(doc: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """Settings of the speed layer's Kinesis event source mapping, parameters resolved.

    The references to other resources (function, stream, destination) are left out.
    """
    params = _params(doc, overrides)
    props = next(
        r["Properties"]
        for r in doc["Resources"].values()
        if r.get("Type") == "AWS::Lambda::EventSourceMapping"
        and r["Properties"].get("FunctionName") == {"Ref": "SpeedLayerFunction"}
    )
    skip = {"FunctionName", "EventSourceArn", "DestinationConfig"}
    return {k: _resolve(v, params, doc) for k, v in props.items() if k not in skip}


def delivery_buffering(doc: dict[str, Any]) -> tuple[int, float]:
    """The raw delivery stream's Firehose buffering hints: (size in bytes, interval in s)."""
    for res in doc.get("Resources", {}).values():
        if res.get("Type") == "AWS::KinesisFirehose::DeliveryStream":
            hints = res["Properties"].get("ExtendedS3DestinationConfiguration", {}).get("BufferingHints", {})
            return int(hints.get("SizeInMBs", 64)) << 20, float(hints.get("IntervalInSeconds", 300))
    return 64 << 20, 300.0
