"""Commands the program prints for a person to paste: they must work in the shell they were printed in."""

from __future__ import annotations

import shlex
import shutil
import sys
from pathlib import Path

__all__ = ["command"]


def command(*args: str | Path, home: Path | None = None) -> str:
    """A ``sleepstack`` command line that works when pasted into a shell here.

    The program is ``sleepstack`` when it is on ``PATH``, else this interpreter's
    ``sleepstack`` script (``.venv/bin/sleepstack``, relative to the current directory
    when under it); ``home`` (a non-default ``SLEEPSTACK_HOME``) is set in front.
    """
    program = "sleepstack"
    script = Path(sys.executable).parent / "sleepstack"
    if shutil.which("sleepstack") is None and script.exists():
        try:
            program = str(script.relative_to(Path.cwd()))
        except ValueError:
            program = str(script)
    words = shlex.join([program, *map(str, args)])
    if home is not None and home.resolve() != (Path.cwd() / ".sleepstack").resolve():
        return f"SLEEPSTACK_HOME={shlex.quote(str(home))} {words}"
    return words
