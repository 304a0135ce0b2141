"""Accounts: users with a role and groups, their sessions and API tokens, sign-in throttling.

The rules live here, once; an adapter (:class:`local.accounts.LocalAccounts`, SQLite in the
home) stores rows. Secrets are never stored: passwords as Argon2id hashes (RFC 9106, the
``argon2-cffi`` library's defaults), session ids and API tokens as SHA-256 hashes (they are
256-bit random, so a fast hash is enough). A new user's password is generated and printed
once (``sleepstack users add``); an admin issues a new one with ``sleepstack users reset``.

* **Sessions** last :data:`SESSION_IDLE_MS` without a request and at most
  :data:`SESSION_MAX_MS` in all; each has its own CSRF token.
* **API tokens** (``sst_...``) expire after the days given (at most a year) and can be
  revoked; a disabled user's sessions and tokens stop working at once.
* **Sign-in throttling**: :data:`MAX_FAILURES` failed sign-ins for one account (or
  :data:`MAX_FAILURES_PER_ADDRESS` from one address) within :data:`FAILURE_WINDOW_MS`
  refuse further attempts until the window has passed (:class:`TooManyAttempts` says how long).

Times are ms UTC.
"""

from __future__ import annotations

import hashlib
import secrets
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from access.roles import AccessError, Principal, Role, check_group, check_name
from core.errors import SleepstackError

__all__ = [
    "FAILURE_WINDOW_MS",
    "MAX_FAILURES",
    "MAX_FAILURES_PER_ADDRESS",
    "SESSION_IDLE_MS",
    "SESSION_MAX_MS",
    "AccountStore",
    "AccountsUnavailable",
    "Session",
    "TooManyAttempts",
    "User",
    "secret_hash",
]

SESSION_IDLE_MS: Final = 2 * 3600 * 1000
SESSION_MAX_MS: Final = 12 * 3600 * 1000
MAX_FAILURES: Final = 5
#: an address is shared by a ward's workstation: it may fail more before it is held back
MAX_FAILURES_PER_ADDRESS: Final = 20
FAILURE_WINDOW_MS: Final = 15 * 60 * 1000
MAX_TOKEN_DAYS: Final = 365
TOKEN_PREFIX: Final = "sst_"  # noqa: S105 - the prefix of every API token, not a secret
_HASHER: Final = PasswordHasher()


class AccountsUnavailable(SleepstackError):
    """The account store cannot be read or written."""


class TooManyAttempts(SleepstackError):
    """Sign-in refused for a while: too many failures for the account or from the address."""

    def __init__(self, what: str, retry_after_s: int) -> None:
        self.what, self.retry_after_s = what, retry_after_s
        super().__init__(f"too many failed sign-ins for this {what}; try again in {max(1, retry_after_s // 60)} min")


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class User:
    name: str
    role: Role
    groups: tuple[str, ...]
    created_ms: int
    disabled: bool = False

    def principal(self, via: str) -> Principal:
        return Principal(self.name, self.role, frozenset(self.groups), via)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "role": str(self.role),
            "groups": list(self.groups),
            "created_ms": self.created_ms,
            "disabled": self.disabled,
        }


@dataclass(frozen=True)
class Session:
    """A signed-in browser: the cookie's value (``secret``, only at creation) and its CSRF token."""

    user: User
    csrf: str
    expires_ms: int
    secret: str = ""


class AccountStore(ABC):
    """Users, sessions, tokens and failed sign-ins."""

    # ------------------------------------------------------------------ primitives
    @abstractmethod
    def get_user(self, name: str) -> tuple[User, str] | None:
        """The user and their password hash."""

    @abstractmethod
    def users(self) -> list[User]: ...

    @abstractmethod
    def _put_user(self, user: User, password_hash: str, *, new: bool) -> None: ...

    @abstractmethod
    def _put_session(self, key: str, name: str, csrf: str, created_ms: int, expires_ms: int) -> None: ...

    @abstractmethod
    def _session(self, key: str) -> tuple[str, str, int, int] | None:
        """(user name, csrf, created_ms, expires_ms) of a session."""

    @abstractmethod
    def _touch_session(self, key: str, expires_ms: int) -> None: ...

    @abstractmethod
    def _drop_sessions(self, *, key: str | None = None, name: str | None = None) -> None: ...

    @abstractmethod
    def _put_token(self, key: str, name: str, label: str, created_ms: int, expires_ms: int) -> None: ...

    @abstractmethod
    def _token(self, key: str) -> tuple[str, int, int | None] | None:
        """(user name, expires_ms, revoked_ms) of an API token."""

    @abstractmethod
    def tokens(self, name: str) -> list[dict[str, Any]]:
        """A user's tokens: ``{"id", "label", "created_ms", "expires_ms", "revoked_ms"}`` (id: a prefix of the hash)."""

    @abstractmethod
    def _revoke_token(self, name: str, id_prefix: str, at_ms: int) -> int: ...

    @abstractmethod
    def _failures(self, key: str, since_ms: int) -> list[int]:
        """Times of failed sign-ins under ``key`` since ``since_ms``."""

    @abstractmethod
    def _fail(self, keys: Iterable[str], at_ms: int) -> None: ...

    # ------------------------------------------------------------------ users
    def add_user(self, name: str, role: str, groups: Iterable[str], *, now_ms: int) -> tuple[User, str]:
        """A new user and their one-time password (printed once, stored hashed)."""
        user = self._user(name, role, groups, now_ms)
        password = secrets.token_urlsafe(15)
        self._put_user(user, _HASHER.hash(password), new=True)
        return user, password

    def reset_password(self, name: str) -> str:
        user, _ = self._require(name)
        password = secrets.token_urlsafe(15)
        self._put_user(user, _HASHER.hash(password), new=False)
        self._drop_sessions(name=name)
        return password

    def set_disabled(self, name: str, disabled: bool) -> User:
        user, hashed = self._require(name)
        changed = User(user.name, user.role, user.groups, user.created_ms, disabled)
        self._put_user(changed, hashed, new=False)
        if disabled:
            self._drop_sessions(name=name)
        return changed

    def _user(self, name: str, role: str, groups: Iterable[str], now_ms: int) -> User:
        check_name(name)
        try:
            r = Role(role)
        except ValueError:
            raise AccessError("role", f"{role!r} is not one of {', '.join(Role)}") from None
        gs = tuple(sorted({check_group(g) for g in groups}))
        if not gs:
            raise AccessError("group", "a user needs at least one group (or * for every subject)")
        return User(name, r, gs, now_ms)

    def _require(self, name: str) -> tuple[User, str]:
        found = self.get_user(name)
        if found is None:
            raise AccessError("name", f"no user {name!r}")
        return found

    # ------------------------------------------------------------------ sign-in
    def sign_in(self, name: str, password: str, *, address: str, now_ms: int) -> Session:
        """A new session, or :class:`AccessError` (wrong name or password: one message for both)
        or :class:`TooManyAttempts`."""
        keys = [f"user:{name}", f"addr:{address}"]
        for key, what, most in zip(keys, ("account", "address"), (MAX_FAILURES, MAX_FAILURES_PER_ADDRESS), strict=True):
            recent = self._failures(key, now_ms - FAILURE_WINDOW_MS)
            if len(recent) >= most:
                raise TooManyAttempts(what, int((min(recent) + FAILURE_WINDOW_MS - now_ms) / 1000))
        found = self.get_user(name)
        if found is None or found[0].disabled or not _verify(found[1], password):
            self._fail(keys, now_ms)
            raise AccessError("password", "that name and password do not match an account")
        secret, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        expires = now_ms + SESSION_IDLE_MS
        self._put_session(secret_hash(secret), name, csrf, now_ms, expires)
        return Session(found[0], csrf, expires, secret)

    def session(self, secret: str, *, now_ms: int) -> Session | None:
        """The live session of a cookie (its idle expiry moved on), or None."""
        key = secret_hash(secret)
        row = self._session(key)
        if row is None:
            return None
        name, csrf, created, expires = row
        found = self.get_user(name)
        if now_ms >= expires or now_ms >= created + SESSION_MAX_MS or found is None or found[0].disabled:
            self._drop_sessions(key=key)
            return None
        new_expiry = min(now_ms + SESSION_IDLE_MS, created + SESSION_MAX_MS)
        if new_expiry - expires > 60_000:  # at most one write a minute per session
            self._touch_session(key, new_expiry)
        return Session(found[0], csrf, new_expiry)

    def sign_out(self, secret: str) -> None:
        self._drop_sessions(key=secret_hash(secret))

    # ------------------------------------------------------------------ API tokens
    def issue_token(self, name: str, *, days: int, label: str, now_ms: int) -> str:
        """A new API token (printed once, stored hashed) valid for ``days``."""
        self._require(name)
        if not 1 <= days <= MAX_TOKEN_DAYS:
            raise AccessError("days", f"must be 1 to {MAX_TOKEN_DAYS}")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        self._put_token(secret_hash(token), name, label, now_ms, now_ms + days * 86_400_000)
        return token

    def token_user(self, token: str, *, now_ms: int) -> User | None:
        if not token.startswith(TOKEN_PREFIX):
            return None
        row = self._token(secret_hash(token))
        if row is None:
            return None
        name, expires, revoked = row
        found = self.get_user(name)
        if revoked is not None or now_ms >= expires or found is None or found[0].disabled:
            return None
        return found[0]

    def revoke_token(self, name: str, id_prefix: str, *, now_ms: int) -> None:
        if len(id_prefix) < 6:
            raise AccessError("token", "name the token by at least 6 characters of its id (users tokens NAME)")
        if self._revoke_token(name, id_prefix, now_ms) != 1:
            raise AccessError("token", f"{name} has no single live token whose id starts {id_prefix!r}")


def _verify(hashed: str, password: str) -> bool:
    try:
        return bool(_HASHER.verify(hashed, password))
    except (VerificationError, InvalidHashError):
        return False
