"""The one exceptions module of the core."""

from __future__ import annotations

__all__ = ["ContractError", "SleepstackError"]


class SleepstackError(Exception):
    """Base class of every error sleepstack raises on purpose."""


class ContractError(SleepstackError, ValueError):
    """A record breaks the record contract.

    ``field`` names the offending field (or ``"<record>"`` when the record as a whole is
    unreadable), ``reason`` says what is wrong with it.
    """

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason
