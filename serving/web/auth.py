"""Who a request is: sessions, API tokens, the break-glass token; CSRF; the access audit.

:class:`Gate` (ASGI middleware) finds the request's principal (:class:`access.roles.Principal`):

* a **session** cookie (``sleepstack_session``: ``HttpOnly``, ``SameSite=Strict``,
  ``Secure`` under TLS) from signing in (``POST /api/session``, :mod:`serving.web.session`);
  it expires after 2 h idle and 12 h in all (:mod:`access.accounts`);
* an **API token** (``Authorization: Bearer sst_...``) a user was issued
  (``sleepstack users token``), stored hashed, expiring, revocable;
* the installation's **break-glass** token (``dashboard/token``, the address
  ``sleepstack stack status`` prints: ``?token=`` once, then a cookie; or as a bearer): an
  admin over every subject, for the first start and emergencies. Every request made with
  it is audited, whatever the route.

Without one, an API request gets 401 and a page a redirect to ``/login``; the sign-in page,
its assets and ``POST /api/session`` are open. What a principal may do is decided per route
by :func:`serving.web.access.authorize`.

**Limits.** Each user may make :data:`RATE_PER_S` requests a second on average with bursts of
:data:`BURST` (a token bucket per user; the break-glass token is not limited): over it, 429
with ``Retry-After``, and other users are unaffected. A body over :data:`MAX_BODY_BYTES` is 413.

**CSRF.** A state-changing request (POST, PATCH, PUT, DELETE) authenticated by a cookie must
carry ``X-CSRF-Token`` equal to the ``sleepstack_csrf`` cookie (double submit; the pages'
script sends it), and for a session, equal to that session's own token. A bearer request
carries no ambient credential and needs none. Sign-in itself must be JSON (a cross-site
form cannot send that without a preflight) and, when the browser says where it comes from
(``Origin``), come from this server.

**Audit.** Every request to a route the policy marks audited, and every break-glass request
(but for the pages' scripts and styles), appends who, role, how signed in, method, route
template, the subjects it named or returned (``subject_id`` and ``assigned_to`` values in
the path, query and JSON body, and those a route names in ``request.state.audit_subjects``,
as the acknowledgement pages do) and the status to the hash-chained audit
(:class:`access.audit.AuditLog`); nothing else.

Secrets are compared in constant time; the access log (:class:`AccessLog`) names the
route's template, never the path with its ids or the query string.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import math
import secrets
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import Any, Final
from urllib.parse import parse_qsl, quote, urlencode

import anyio.to_thread
import orjson
from starlette.exceptions import HTTPException

from access.accounts import AccountStore
from access.audit import AuditLog
from access.roles import ALL_GROUPS, Principal, Role
from serving.web.access import rule_of

__all__ = ["COOKIE", "CSRF_COOKIE", "CSRF_HEADER", "SESSION_COOKIE", "AccessLog", "Gate", "cookie"]

COOKIE: Final = "sleepstack_token"  # the break-glass token's cookie
SESSION_COOKIE: Final = "sleepstack_session"
CSRF_COOKIE: Final = "sleepstack_csrf"
CSRF_HEADER: Final = b"x-csrf-token"
_UNSAFE: Final = frozenset({"POST", "PATCH", "PUT", "DELETE"})
_OPEN_PREFIXES: Final = ("/static/", "/vendor/")
_SUBJECT_KEYS: Final = frozenset({"subject_id", "assigned_to"})
BREAK_GLASS: Final = Principal("break-glass", Role.ADMIN, frozenset({ALL_GROUPS}), "break-glass")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

log = logging.getLogger("sleepstack.dashboard")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def cookie(name: str, value: str, *, secure: bool, http_only: bool = True, max_age_s: int | None = None) -> str:
    """A ``Set-Cookie`` value: path /, SameSite=Strict, HttpOnly unless asked, Secure under TLS."""
    flags = "; HttpOnly" if http_only else ""
    flags += "; Secure" if secure else ""
    flags += f"; Max-Age={max_age_s}" if max_age_s is not None else ""
    return f"{name}={value}; Path=/; SameSite=Strict{flags}"


def _subjects_in(value: Any, out: set[str]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            if k in _SUBJECT_KEYS and isinstance(v, str):
                out.add(v)
            else:
                _subjects_in(v, out)
    elif isinstance(value, list):
        for v in value:
            _subjects_in(v, out)


#: Each signed-in principal may make this many requests a second on average...
RATE_PER_S: Final = 20.0
#: ...and this many at once (a page opening fetches several); over it: 429 with Retry-After.
BURST: Final = 60.0
#: The largest request body accepted (the API's bodies are a few hundred bytes).
MAX_BODY_BYTES: Final = 64 * 1024


#: The rate limits' clock (a test freezes it: a loaded machine refills the bucket mid-burst).
_monotonic = time.monotonic


@dataclass
class _Bucket:
    tokens: float
    at: float


class RateLimit:
    """A token bucket per key (a user, not a connection): ``take`` says how long to wait, 0 if allowed."""

    def __init__(self, rate_per_s: float = RATE_PER_S, burst: float = BURST) -> None:
        self.rate, self.burst = rate_per_s, burst
        self._buckets: dict[str, _Bucket] = {}

    def take(self, key: str, now: float) -> float:
        b = self._buckets.get(key)
        if b is None:
            b = self._buckets[key] = _Bucket(self.burst, now)
        b.tokens = min(self.burst, b.tokens + (now - b.at) * self.rate)
        b.at = now
        if b.tokens >= 1:
            b.tokens -= 1
            return 0.0
        return (1 - b.tokens) / self.rate


class Gate:
    """ASGI middleware: the principal, CSRF, rate limits, body size and the audit (see the module's doc)."""

    def __init__(
        self,
        app: App,
        token: str,
        *,
        accounts: AccountStore | None,
        audit: AuditLog,
        secure_cookie: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if len(token) < 32:
            raise ValueError("the dashboard token must be at least 32 characters")
        self.app, self.token, self.accounts, self.audit = app, token, accounts, audit
        self.secure_cookie, self.clock = secure_cookie, clock
        self.limits = RateLimit()

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    def _break_glass(self, candidate: str | None) -> bool:
        return candidate is not None and hmac.compare_digest(candidate.encode(), self.token.encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        given = dict(query).get("token")
        if given is not None:  # the break-glass address: a cookie, then the address without the token
            if not self._break_glass(given):
                await _respond(send, 401, "not authenticated: the token in the address is not this dashboard's")
                return
            rest = urlencode([(k, v) for k, v in query if k != "token"])
            setting = [
                cookie(COOKIE, self.token, secure=self.secure_cookie),
                cookie(CSRF_COOKIE, secrets.token_urlsafe(32), secure=self.secure_cookie, http_only=False),
            ]
            await _redirect(send, path + (f"?{rest}" if rest else ""), setting)
            return
        cookies = SimpleCookie(_header(scope, b"cookie") or "")
        jar = {k: m.value for k, m in cookies.items()}
        who, csrf_expected = await anyio.to_thread.run_sync(self._principal, scope, jar)
        if who is None:
            if path in {"/login", "/api/session"} or path.startswith(_OPEN_PREFIXES):
                await self.app(scope, receive, send)
            elif path.startswith("/api/"):
                await _respond(send, 401, "not authenticated: sign in at /login, or send a bearer token")
            else:
                await _redirect(send, "/login?next=" + quote(path, safe="/"), [])
            return
        if scope["method"] in _UNSAFE and csrf_expected is not None:
            sent = _header(scope, CSRF_HEADER)
            if sent is None or not hmac.compare_digest(sent.encode(), csrf_expected.encode()):
                await _respond(send, 403, "the request lacks this session's X-CSRF-Token header (cross-site?)")
                return
        if who.via != "break-glass":  # the installation's own token (the stack's tools) is not limited
            wait = self.limits.take(f"{who.via}:{who.name}", _monotonic())
            if wait > 0:
                retry = str(max(1, math.ceil(wait)))
                await _respond(send, 429, f"too many requests from {who.name}: retry in {retry} s", retry_after=retry)
                return
        length = _header(scope, b"content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
            await _respond(send, 413, f"the request body is larger than {MAX_BODY_BYTES // 1024} KiB")
            return
        scope.setdefault("state", {})["principal"] = who
        await self._run_audited(scope, _capped(receive), send, who, query)

    def _principal(self, scope: Scope, jar: dict[str, str]) -> tuple[Principal | None, str | None]:
        """(principal, the CSRF token a state-changing request must carry: None for bearer requests)."""
        auth = _header(scope, b"authorization")
        bearer = auth[7:].strip() if auth and auth.lower().startswith("bearer ") else None
        now = self._now_ms()
        if bearer is not None:
            if self._break_glass(bearer):
                return BREAK_GLASS, None
            user = self.accounts.token_user(bearer, now_ms=now) if self.accounts else None
            return (user.principal("token"), None) if user else (None, None)
        if self.accounts is not None and SESSION_COOKIE in jar:
            session = self.accounts.session(jar[SESSION_COOKIE], now_ms=now)
            if session is not None:
                if jar.get(CSRF_COOKIE) != session.csrf:
                    return session.user.principal("session"), f"!{secrets.token_hex(8)}"  # never matches
                return session.user.principal("session"), session.csrf
        if self._break_glass(jar.get(COOKIE)):
            return BREAK_GLASS, jar.get(CSRF_COOKIE) or f"!{secrets.token_hex(8)}"
        return None, None

    async def _run_audited(
        self, scope: Scope, receive: Receive, send: Send, who: Principal, query: list[tuple[str, str]]
    ) -> None:
        state: dict[str, Any] = {"status": 500, "json": False, "body": []}

        async def watch(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                state["status"] = int(message["status"])
                kind = dict(message.get("headers", [])).get(b"content-type", b"")
                state["json"] = kind.startswith(b"application/json")
            elif message["type"] == "http.response.body" and state["json"]:
                state["body"].append(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            await self._audit(scope, who, query, state)

    async def _audit(self, scope: Scope, who: Principal, query: list[tuple[str, str]], state: dict[str, Any]) -> None:

        route = scope.get("route")
        template = getattr(route, "path", None)
        rule = rule_of(scope["method"], template) if template else None
        if scope["path"].startswith(_OPEN_PREFIXES):  # the pages' code and styles: no data
            return
        if not (who.via == "break-glass" or (rule is not None and rule.audited)):
            return
        subjects: set[str] = set()
        params = scope.get("path_params") or {}
        if isinstance(params.get("subject_id"), str):
            subjects.add(params["subject_id"])
        subjects.update(v for k, v in query if k == "subject_id")
        subjects.update((scope.get("state") or {}).get("audit_subjects", ()))  # a page's route names them
        if state["json"] and 200 <= state["status"] < 300:
            with contextlib.suppress(orjson.JSONDecodeError):
                _subjects_in(orjson.loads(b"".join(state["body"])), subjects)
        entry = {
            "at_ms": self._now_ms(),
            "user": who.name,
            "role": str(who.role),
            "via": who.via,
            "method": scope["method"],
            "route": template or scope["path"].split("?")[0][:80],
            "subjects": subjects,
            "outcome": state["status"],
        }
        await anyio.to_thread.run_sync(lambda: self.audit.append(**entry))


def _capped(receive: Receive) -> Receive:
    """``receive`` refusing a body (without a length) that grows past :data:`MAX_BODY_BYTES`."""
    seen = 0

    async def wrapped() -> MutableMapping[str, Any]:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > MAX_BODY_BYTES:  # raised where the route reads its body: answered as 413
                raise HTTPException(413, detail=f"the request body is larger than {MAX_BODY_BYTES // 1024} KiB")
        return message

    return wrapped


async def _respond(send: Send, status: int, detail: str, *, retry_after: str | None = None) -> None:
    body = orjson.dumps({"detail": detail})
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
    ]
    if status == 401:
        headers.append((b"www-authenticate", b'Bearer realm="sleepstack"'))
    if retry_after is not None:
        headers.append((b"retry-after", retry_after.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _redirect(send: Send, location: str, cookies: list[str]) -> None:
    headers = [
        (b"location", location.encode("latin-1")),
        (b"content-length", b"0"),
        (b"cache-control", b"no-store"),
        (b"referrer-policy", b"no-referrer"),
        *((b"set-cookie", c.encode("latin-1")) for c in cookies),
    ]
    await send({"type": "http.response.start", "status": 303, "headers": headers})
    await send({"type": "http.response.body", "body": b""})


class AccessLog:
    """ASGI middleware: one INFO line per request with method, route template, status and ms."""

    def __init__(self, app: App) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = {"code": 500}

        async def watch(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status["code"] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or ("/static/*" if scope["path"].startswith("/static/") else "-")
            log.info("%s %s %d %.1f ms", scope["method"], template, status["code"], (time.perf_counter() - t0) * 1000)
