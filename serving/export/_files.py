"""Writing an export: owner-only files, in place only when whole (a temporary sibling, then a rename)."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from core.errors import InputError

__all__ = ["check_out", "staged_dir", "staged_file"]


def check_out(out: Path) -> Path:
    """``out`` made absolute, refused when it exists or its folder does not (nothing is overwritten)."""
    out = Path(out).expanduser().absolute()
    if out.exists() or out.is_symlink():
        raise InputError("--out", f"{out} already exists; give a new path (an export never overwrites)")
    if not out.parent.is_dir():
        raise InputError("--out", f"{out.parent} is not a folder; create it first")
    return out


@contextlib.contextmanager
def staged_dir(out: Path) -> Iterator[Path]:
    """A private (0700) temporary folder beside ``out`` to write into; renamed to ``out`` when
    the block ends without an error, removed with its contents when it raises."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        yield tmp
        for f in tmp.iterdir():
            f.chmod(0o600)
            _fsync(f)
        os.rename(tmp, out)  # fails (rather than merging) if out appeared meanwhile
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def staged_file(out: Path) -> Iterator[Path]:
    """A private (0600) temporary file beside ``out`` to write; linked into place as ``out``
    when the block ends without an error (never replacing a file that appeared meanwhile)."""
    fd, name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        tmp.chmod(0o600)
        _fsync(tmp)
        os.link(tmp, out)  # atomic, and refuses an existing out
    finally:
        tmp.unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    with path.open("rb") as fh:
        os.fsync(fh.fileno())
