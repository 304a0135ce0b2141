"""Every notebook under notebooks/ runs top to bottom (its cells carry their own asserts)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import DATA, REPO_ROOT

NOTEBOOKS = REPO_ROOT / "notebooks"
pytestmark = pytest.mark.slow


def test_committed_notebooks_are_what_the_builder_writes(tmp_path: Path) -> None:
    subprocess.run([sys.executable, str(NOTEBOOKS / "build_notebooks.py"), str(tmp_path)], check=True)
    built = {p.name: p.read_text() for p in tmp_path.glob("*.ipynb")}
    assert built == {p.name: p.read_text() for p in NOTEBOOKS.glob("*.ipynb")}
    assert len(built) == 3


@pytest.mark.parametrize("name", sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")))
def test_notebook_executes(name: str) -> None:
    if not (DATA / "sleep-accel").is_dir():
        pytest.skip("shared data sleep-accel not present")
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    # the figures render in the notebook (inline backend), as a data scientist opening it sees them
    figures = [o for o in outputs if o.output_type == "display_data" and "image/png" in o.get("data", {})]
    assert figures, f"{name}: no figure rendered"
