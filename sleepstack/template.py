"""Read the production CloudFormation template, so the local stack mirrors it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = ["StreamSpec", "event_source_settings", "load_template", "stream_specs"]


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


def load_template(path: Path) -> dict[str, Any]:
    with path.open() as fh:
        doc: dict[str, Any] = yaml.load(fh, Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass
    return doc


def _resolve(value: Any, params: dict[str, Any]) -> Any:
    """Resolve the intrinsic functions the local stack needs (Ref to parameters, Sub)."""
    if isinstance(value, dict) and "Ref" in value:
        return params[value["Ref"]]
    if isinstance(value, dict) and "Fn::Sub" in value:
        out = str(value["Fn::Sub"])
        for key, val in params.items():
            out = out.replace("${" + key + "}", str(val))
        return out
    return value


@dataclass(frozen=True, slots=True)
class StreamSpec:
    logical_id: str
    name: str
    shard_count: int


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
            out.append(
                StreamSpec(lid, str(_resolve(props["Name"], params)), int(_resolve(props["ShardCount"], params)))
            )
    return out


def event_source_settings(doc: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """Kinesis event-source settings of the speed-layer function, parameters resolved."""
    params = _params(doc, overrides)
    fn = doc["Resources"]["SpeedLayerFunction"]["Properties"]
    props = next(e["Properties"] for e in fn["Events"].values() if e["Type"] == "Kinesis")
    return {k: _resolve(v, params) for k, v in props.items() if k != "Stream"}
