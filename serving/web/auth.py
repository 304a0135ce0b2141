"""Access control of the dashboard: one secret token per ``SLEEPSTACK_HOME``, then a cookie.

Every request must carry the token, in one of three ways:

* ``?token=...`` on any page: answered with a redirect to the same address without it
  and a cookie holding it (``HttpOnly``, ``SameSite=Strict``, ``Secure`` under TLS), so
  the token is in the URL a person opens once and not in the pages' addresses after;
* the cookie;
* ``Authorization: Bearer <token>`` (scripts, the benchmarks).

Anything else gets 401 and no data. Tokens are compared in constant time
(:func:`hmac.compare_digest`). The access log (:class:`AccessLog`) names the route's
template (``/api/subjects/{subject_id}/vitals``), never the path with its ids or the
query string with the token.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import SimpleCookie
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode

__all__ = ["COOKIE", "AccessLog", "TokenGate"]

COOKIE: Final = "sleepstack_token"

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


class TokenGate:
    """ASGI middleware: 401 unless the request carries ``token`` (see the module's doc)."""

    def __init__(self, app: App, token: str, *, secure_cookie: bool = False) -> None:
        if len(token) < 32:
            raise ValueError("the dashboard token must be at least 32 characters")
        self.app, self.token, self.secure_cookie = app, token, secure_cookie

    def _ok(self, candidate: str | None) -> bool:
        return candidate is not None and hmac.compare_digest(candidate.encode(), self.token.encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        given = dict(query).get("token")
        if given is not None:
            if not self._ok(given):
                await _refuse(send, "the token in the address is not this dashboard's")
                return
            rest = urlencode([(k, v) for k, v in query if k != "token"])
            await _redirect_with_cookie(send, scope["path"] + (f"?{rest}" if rest else ""), self._cookie())
            return
        auth = _header(scope, b"authorization")
        bearer = auth[7:] if auth and auth.lower().startswith("bearer ") else None
        cookies = SimpleCookie(_header(scope, b"cookie") or "")
        cookie = cookies[COOKIE].value if COOKIE in cookies else None
        if self._ok(bearer) or self._ok(cookie):
            await self.app(scope, receive, send)
            return
        await _refuse(send, "open the address `sleepstack stack status` prints (it carries the token)")

    def _cookie(self) -> str:
        flags = "; Secure" if self.secure_cookie else ""
        return f"{COOKIE}={self.token}; Path=/; HttpOnly; SameSite=Strict{flags}"


async def _refuse(send: Send, why: str) -> None:
    body = f'{{"detail": "not authenticated: {why}"}}'.encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"www-authenticate", b'Bearer realm="sleepstack"'),
        (b"cache-control", b"no-store"),
    ]
    await send({"type": "http.response.start", "status": 401, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _redirect_with_cookie(send: Send, location: str, cookie: str) -> None:
    headers = [
        (b"location", location.encode("latin-1")),
        (b"set-cookie", cookie.encode("latin-1")),
        (b"content-length", b"0"),
        (b"cache-control", b"no-store"),
        (b"referrer-policy", b"no-referrer"),
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
