"""The one exceptions module of the core."""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "ConfigError",
    "ContractError",
    "DatasetError",
    "DecodeError",
    "EmptyTableError",
    "InputError",
    "NoDataError",
    "QueryError",
    "SleepstackError",
    "StateCodecError",
]


class SleepstackError(Exception):
    """Base class of every error sleepstack raises on purpose.

    ``bad_input`` says whose the fault is: ``True`` when what the caller gave (a record, a
    payload, a file, an argument, a setting, a query) is wrong, ``False`` when a run failed
    on good input. Callers map it to their own outcome (the command line to its exit code,
    the HTTP API to 4xx or 5xx).
    """

    bad_input: ClassVar[bool] = False


class ContractError(SleepstackError, ValueError):
    """A record breaks the record contract.

    ``field`` names the offending field (or ``"<record>"`` when the record as a whole is
    unreadable), ``reason`` says what is wrong with it.
    """

    bad_input: ClassVar[bool] = True

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class DecodeError(SleepstackError, ValueError):
    """A Bluetooth notification (or other device payload) cannot be decoded.

    ``what`` names the payload type (e.g. ``"0x2A37"``), ``reason`` says what is wrong and
    ``payload_hex`` carries the offending bytes so the log line and the quarantine can show
    them.
    """

    bad_input: ClassVar[bool] = True

    def __init__(self, what: str, reason: str, payload: bytes | bytearray | memoryview = b"") -> None:
        self.what = what
        self.reason = reason
        self.payload_hex = bytes(payload).hex()
        super().__init__(f"{what}: {reason} (payload {self.payload_hex or '<empty>'})")


class DatasetError(SleepstackError, ValueError):
    """A file of a reference dataset (e.g. sleep-accel) is missing or malformed; ``path`` names it."""

    bad_input: ClassVar[bool] = True

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class InputError(SleepstackError, ValueError):
    """An argument a caller gave (a command-line flag, a job argument, a query parameter) is invalid.

    ``what`` names the flag or argument (e.g. ``"--night"``), ``reason`` says what is wrong
    with the value given.
    """

    bad_input: ClassVar[bool] = True

    def __init__(self, what: str, reason: str) -> None:
        self.what = what
        self.reason = reason
        super().__init__(f"{what}: {reason}")


class ConfigError(SleepstackError, ValueError):
    """A setting (an environment variable) is missing or invalid; ``name`` names it."""

    bad_input: ClassVar[bool] = True

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.reason = reason
        super().__init__(f"{name} {reason}")


class QueryError(SleepstackError, ValueError):
    """An analyst's SQL is refused (not a single read-only query on the lake's tables) or fails."""

    bad_input: ClassVar[bool] = True


class NoDataError(SleepstackError):
    """There is no data (yet) for what was asked: an empty lake, a night nothing was delivered for."""


class EmptyTableError(QueryError, NoDataError):
    """A query reads a table that holds no data yet (nothing delivered or staged)."""

    bad_input: ClassVar[bool] = False


class StateCodecError(SleepstackError):
    """A stored device state of the speed layer does not decode (unknown tag, corrupt stream)."""
