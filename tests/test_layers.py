"""Imports flow one way: core <- adapters <- local stand-ins <- composition root.

Every import statement in every module counts, including the deferred ones inside
functions and those under ``TYPE_CHECKING``: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

ADAPTERS = {"dead_letters", "registry", "ingest", "speed_layer", "batch_layer", "serving"}
#: Which of our top-level packages each one may import.
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "infra": set(),
    "simulator": {"core"},
    "dead_letters": {"core"},
    "registry": {"core"},
    "ingest": {"core", "registry", "simulator"},
    "speed_layer": {"core", "dead_letters"},
    "batch_layer": {"core"},
    "access": {"core"},
    "serving": {"core", "registry", "speed_layer", "access"},
    "local": {"core", "infra", "access", *ADAPTERS},
    "glue_jobs": {"core", "batch_layer", "registry"},
    "sleepstack": {"core", "infra", "local", "glue_jobs", "simulator", "access", *ADAPTERS},
}
PACKAGES = set(ALLOWED)


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, imported top-level package) for every import of one of our packages."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        out += [(node.lineno, n.split(".")[0]) for n in names if n.split(".")[0] in PACKAGES]
    return out


def _graph() -> dict[str, dict[str, list[str]]]:
    """package -> imported package -> where ("path:line")."""
    graph: dict[str, dict[str, list[str]]] = {p: {} for p in PACKAGES}
    for pkg in PACKAGES:
        for path in sorted((REPO_ROOT / pkg).rglob("*.py")):
            for line, target in _imports(path):
                if target != pkg:
                    graph[pkg].setdefault(target, []).append(f"{path.relative_to(REPO_ROOT)}:{line}")
    return graph


def test_every_top_level_package_is_placed_in_a_layer() -> None:
    on_disk = {p.parent.name for p in REPO_ROOT.glob("*/__init__.py")} - {"tests"}
    assert on_disk == PACKAGES, "add the new package to ALLOWED with the packages it may import"


@pytest.mark.parametrize("pkg", sorted(PACKAGES))
def test_package_imports_only_the_layers_below_it(pkg: str) -> None:
    bad = {t: where for t, where in _graph()[pkg].items() if t not in ALLOWED[pkg]}
    assert not bad, f"{pkg} may not import " + "; ".join(f"{t} (at {', '.join(w)})" for t, w in sorted(bad.items()))


def test_no_cycles_between_packages() -> None:
    graph = _graph()
    try:
        list(TopologicalSorter({p: set(deps) for p, deps in graph.items()}).static_order())
    except CycleError as exc:
        pytest.fail(f"import cycle between packages: {' -> '.join(exc.args[1])}")


def test_the_checker_sees_deferred_imports(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from sleepstack.settings import Settings\n    import local.kinesis\n")
    assert _imports(module) == [(2, "sleepstack"), (3, "local")]


#: Inside the core, its rooms import one way too: the contract at the bottom, the nights on top.
CORE_ROOMS: dict[str, set[str]] = {
    "errors": set(),
    "contract": {"errors"},
    "ble": {"contract", "errors"},
    "signals": {"contract", "errors"},
    "live": {"contract", "signals", "errors"},
    "nights": {"contract", "signals", "live", "errors"},
    "registry": {"live", "errors"},
    "notify": {"live", "errors"},
    "outbox": {"registry", "errors"},
}


def _room(path: Path) -> str:
    rel = path.relative_to(REPO_ROOT / "core")
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def test_the_cores_rooms_import_only_the_rooms_below_them() -> None:
    core = REPO_ROOT / "core"
    rooms = {_room(p) for p in core.rglob("*.py")} - {"__init__"}
    assert rooms == set(CORE_ROOMS), "place the new module of core/ in CORE_ROOMS with the rooms it may import"
    bad = []
    for path in sorted(core.rglob("*.py")):
        room = _room(path)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("core."):
                target = (node.module or "").split(".")[1]
                if target != room and target not in CORE_ROOMS.get(room, set()):
                    bad.append(f"{path.relative_to(REPO_ROOT)}:{node.lineno} imports core.{target}")
    assert not bad, bad
