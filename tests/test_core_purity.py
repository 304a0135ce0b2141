"""The core imports only numpy/scipy/pandas and the standard library, and does no I/O."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

CORE = Path(__file__).resolve().parents[1] / "core"
ALLOWED_THIRD_PARTY = {"numpy", "scipy", "pandas", "core"}
FORBIDDEN_STDLIB = {"os", "io", "socket", "subprocess", "pathlib", "shutil", "sqlite3", "urllib", "http"}


def _imports(tree: ast.AST) -> set[str]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module.split(".")[0])
    return out


def test_core_imports_are_pure() -> None:
    for path in CORE.glob("*.py"):
        tree = ast.parse(path.read_text())
        for mod in _imports(tree):
            is_std = mod in sys.stdlib_module_names or mod == "__future__"
            assert mod in ALLOWED_THIRD_PARTY or is_std, f"{path.name} imports {mod}"
            assert mod not in FORBIDDEN_STDLIB, f"{path.name} imports {mod} (I/O or environment)"


def test_core_does_no_file_io() -> None:
    for path in CORE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id != "open", f"{path.name} calls open()"
