"""The command line's own error and its exit codes.

``sleepstack`` exits 0 on success, 2 when what the user gave is wrong (an argument, a
setting, a file, a query: :attr:`core.errors.SleepstackError.bad_input`) and 1 when a run
failed on good input. Either way the message is one line naming what is wrong; a
traceback means a bug.
"""

from __future__ import annotations

from core.errors import InputError, SleepstackError

__all__ = ["UsageError", "exit_code"]


class UsageError(InputError):
    """A command line argparse refuses, or a flag whose value a command cannot use.

    ``what`` names the command or flag (e.g. ``"--night"``), ``reason`` says what is wrong.
    """


def exit_code(exc: SleepstackError) -> int:
    """2 for bad input, 1 for a failed run."""
    return 2 if exc.bad_input else 1
