"""The journal of a resumable operation on the stored data (``reassign``, ``erase``).

One owner-only JSON file per operation under the home, replaced atomically after each
step, and a lock beside it (``<op>.lock``, ``flock``) that keeps a second run of the same
operation out while one runs; a killed process's lock is released by the kernel.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol

from core.errors import SleepstackError

__all__ = ["Stepped", "load_journal", "locked", "run_steps", "save_journal"]


def save_journal(path: Path, body: dict[str, Any]) -> None:
    """Replace the journal at ``path`` with ``body`` atomically (fsynced); owner-only whatever the umask."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(body, out, sort_keys=True, indent=1)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)


def load_journal(path: Path) -> dict[str, Any] | None:
    """The journal's body, or None when the operation never started."""
    try:
        body: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    return body


@contextlib.contextmanager
def locked(path: Path, busy: SleepstackError) -> Iterator[None]:
    """Hold the operation's lock (beside ``path``) or raise ``busy`` if another process does."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise busy from None
        yield
    finally:
        os.close(fd)  # releases the lock (a killed process's is released by the kernel)


class Stepped(Protocol):
    """A journal that lists the steps done and the figures they reported."""

    done: list[str]
    figures: dict[str, Any]


def run_steps(
    journal: Stepped,
    steps: Iterable[str],
    step: Callable[[str], dict[str, Any]],
    save: Callable[[], None],
    checkpoint: Callable[[str], None],
) -> list[str]:
    """Do each of ``steps`` not yet done, in order: its figures into the journal, the journal
    saved, then ``checkpoint(name)`` (a crash test stops there). The steps this run did."""
    did = []
    for name in steps:
        if name in journal.done:
            continue
        journal.figures.update(step(name))
        journal.done.append(name)
        save()
        did.append(name)
        checkpoint(name)
    return did
