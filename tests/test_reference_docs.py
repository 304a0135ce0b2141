"""The generated references match the code, and every command line the docs show parses."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from sleepstack import settings as settings_module
from sleepstack.cli import _parser
from sleepstack.cli.errors import UsageError
from sleepstack.reference import write_references
from tests.conftest import REPO_ROOT


def test_committed_references_are_what_the_generator_writes(tmp_path: Path) -> None:
    for path in write_references(tmp_path):
        committed = REPO_ROOT / "docs" / "reference" / path.name
        assert committed.read_text() == path.read_text(), f"run python -m sleepstack.reference ({path.name})"


def test_every_setting_read_is_in_the_settings_table() -> None:
    source = Path(settings_module.__file__).read_text()
    read = set(re.findall(r'e(?:\.get\(|\[)"([A-Z][A-Z0-9_]+)"', source))
    listed = set(re.findall(r"``([A-Z][A-Z0-9_]+)``", settings_module.__doc__ or ""))
    assert read and read <= listed, sorted(read - listed)


def _documented_commands() -> list[tuple[str, str]]:
    """(file:line, command) for every ``sleepstack ...`` line in the README's and docs' code blocks.

    Lines with placeholders of the docs' own notation (``[optional]``, ``a|b``, ``...``,
    ``<...>``, ``YYYY``) are templates, not commands, and are left out.
    """
    out = []
    for doc in [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").rglob("*.md"))]:
        in_block, pending = False, ""
        for n, raw in enumerate(doc.read_text().splitlines(), start=1):
            if raw.startswith("```"):
                in_block = not in_block
                continue
            if not in_block:
                continue
            line = pending + re.split(r"\s#\s", raw, maxsplit=1)[0].strip()
            if line.endswith("\\"):
                pending = line[:-1] + " "
                continue
            pending = ""
            m = re.match(r"^(?:[A-Z_]+=\S+ )*(?:\.venv/bin/)?sleepstack (.*)$", line)
            if m and not re.search(r"[\[\]|<>]|\.\.\.|YYYY|HH:MM|\bD\b", m.group(1)):
                out.append((f"{doc.relative_to(REPO_ROOT)}:{n}", m.group(1)))
    return out


COMMANDS = _documented_commands()


def test_the_docs_show_commands() -> None:
    assert len(COMMANDS) >= 30


@pytest.mark.parametrize(("where", "command"), COMMANDS, ids=[w for w, _ in COMMANDS])
def test_a_documented_command_parses(where: str, command: str) -> None:
    try:
        _parser().parse_args(shlex.split(command))
    except UsageError as exc:
        pytest.fail(f"{where}: sleepstack {command}: {exc}")
    except SystemExit as exc:  # --version and -h print and exit 0
        assert exc.code == 0, f"{where}: sleepstack {command}"
