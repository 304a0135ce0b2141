"""Read a routes file (YAML) into :class:`core.notify.Route` s, errors naming the file, route, line and field."""

from __future__ import annotations

from pathlib import Path

import yaml

from core.notify import Route, RouteError, parse_routes

__all__ = ["load_routes"]


def load_routes(path: Path) -> list[Route]:
    """The routes of ``path``; :class:`core.notify.RouteError` if it is missing or invalid."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise RouteError(str(path), f"cannot be read ({type(exc).__name__})") from None
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}, line {mark.line + 1}" if mark is not None else str(path)
        raise RouteError(where, f"is not valid YAML ({getattr(exc, 'problem', None) or exc})") from None
    lines: dict[int, int] = {}
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if getattr(k, "value", None) == "routes" and isinstance(v, yaml.SequenceNode):
                lines = {i: item.start_mark.line + 1 for i, item in enumerate(v.value)}
    return parse_routes(data, str(path), lines)
