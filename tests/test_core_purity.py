"""The core imports only numpy/scipy/pandas and the standard library, and does no I/O.

"No I/O" includes reading package data (``importlib.resources``, ``pkgutil.get_data``,
``__file__``-relative paths): the committed model artefacts under ``core/nights/models``
are read by :mod:`batch_layer.stage_models` and passed in.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[1] / "core"
MODULES = sorted(CORE.rglob("*.py"))
ALLOWED_THIRD_PARTY = {"numpy", "scipy", "pandas", "core"}
FORBIDDEN_STDLIB = {
    "os",
    "io",
    "socket",
    "subprocess",
    "pathlib",
    "shutil",
    "sqlite3",
    "urllib",
    "http",
    "importlib",  # importlib.resources reads package data
    "pkgutil",  # pkgutil.get_data too
    "tempfile",
    "glob",
}
FORBIDDEN_CALLS = {"open", "__import__"}


def _imports(tree: ast.AST) -> set[str]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module.split(".")[0])
    return out


def _problems(source: str, name: str) -> list[str]:
    tree = ast.parse(source)
    out = []
    for mod in _imports(tree):
        is_std = mod in sys.stdlib_module_names or mod == "__future__"
        if not (mod in ALLOWED_THIRD_PARTY or is_std):
            out.append(f"{name} imports {mod}")
        if mod in FORBIDDEN_STDLIB:
            out.append(f"{name} imports {mod} (I/O, package data or environment)")
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in FORBIDDEN_CALLS:
            out.append(f"{name} calls {node.func.id}() (file or module access)")
        if isinstance(node, ast.Name) and node.id == "__file__":
            out.append(f"{name} uses __file__ (a path to package data)")
    return out


def test_the_core_has_rooms_and_every_module_is_checked() -> None:
    rooms = {p.parent.relative_to(CORE).as_posix() for p in MODULES}
    assert {"contract", "ble", "signals", "live", "nights"} <= rooms
    assert len(MODULES) > 25


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.relative_to(CORE).as_posix())
def test_core_module_is_pure(path: Path) -> None:
    assert _problems(path.read_text(), path.relative_to(CORE).as_posix()) == []


@pytest.mark.parametrize(
    "source",
    [
        "from importlib import resources\nresources.files('core').joinpath('m.json').read_text()",
        "import pkgutil\npkgutil.get_data('core', 'm.json')",
        "import json\njson.load(open('m.json'))",
        "from pathlib import Path\nPath(__file__).with_name('m.json').read_text()",
        "import boto3",
    ],
)
def test_the_checker_catches_io_and_package_data_reads(source: str) -> None:
    assert _problems(source, "m.py")
