"""Signing in and out, who am I, and the access audit's page and API.

| path | what |
|---|---|
| ``GET /login`` | the sign-in page |
| ``POST /api/session`` | sign in: ``{"name", "password"}`` (JSON) -> the session and CSRF cookies |
| ``DELETE /api/session`` | sign out |
| ``GET /api/me`` | the signed-in principal: name, role, groups, how signed in, what the role may do |
| ``GET /audit``, ``GET /api/audit`` | the access audit (admins): who looked at which subject, and the chain's check |

A wrong name or password is one message for both (401); too many failures for an account
or from an address within 15 minutes is 429 with ``Retry-After``.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, Field

from access.accounts import SESSION_MAX_MS, TooManyAttempts
from access.roles import GRANTS, AccessError
from serving.web.access import Who, visible_subjects
from serving.web.api import SUBJECT_PATTERN, Ctx
from serving.web.auth import CSRF_COOKIE, SESSION_COOKIE, cookie
from serving.web.views import page

__all__ = ["router"]

router = APIRouter()


class Credentials(BaseModel):
    name: str = Field(max_length=64, description="the user's name")
    password: str = Field(max_length=256, description="the user's password")


class Me(BaseModel):
    name: str = Field(description="the user's name (break-glass: the installation token)")
    role: str = Field(description="admin, clinician, researcher or viewer")
    groups: list[str] = Field(description="the studies or wards whose subjects the user sees (* every one)")
    via: str = Field(description="session, token or break-glass")
    may: list[str] = Field(description="what the role may do")


class AuditEntry(BaseModel):
    seq: int = Field(description="position in the chain, from 1")
    at_ms: int = Field(description="when, ms UTC")
    user: str = Field(description="who")
    role: str = Field(description="their role then")
    via: str = Field(description="session, token or break-glass")
    method: str = Field(description="HTTP method")
    route: str = Field(description="the route's template (no ids, no query)")
    subjects: list[str] = Field(description="the subjects the request named or returned")
    outcome: int = Field(description="the HTTP status")


class AuditPage(BaseModel):
    entries: list[AuditEntry] = Field(description="newest first")
    chain_ok: bool = Field(description="the hash chain verifies (no entry changed, removed or moved)")
    problems: list[str] = Field(description="where the chain breaks, if it does")


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


@router.get("/login", include_in_schema=False, response_class=HTMLResponse)
async def login_page(ctx: Ctx) -> HTMLResponse:
    return page(ctx, "login.html.j2", title="Sign in", page="login")


@router.post("/api/session", response_model=Me, summary="Sign in (sets the session and CSRF cookies)")
async def sign_in(body: Credentials, request: Request, ctx: Ctx) -> JSONResponse:
    if ctx.accounts is None:
        raise HTTPException(503, detail="this dashboard has no accounts store")
    if not request.headers.get("content-type", "").startswith("application/json"):
        raise HTTPException(415, detail="sign in with a JSON body")
    origin = request.headers.get("origin")
    if origin is not None and origin.rstrip("/") != str(request.base_url).rstrip("/"):
        raise HTTPException(403, detail="sign-in from another site is refused")
    address = request.client.host if request.client else "-"
    now = int(time.time() * 1000)
    try:
        session = await run_in_threadpool(ctx.accounts.sign_in, body.name, body.password, address=address, now_ms=now)
    except TooManyAttempts as exc:
        return JSONResponse({"detail": str(exc)}, 429, headers={"retry-after": str(exc.retry_after_s)})
    except AccessError as exc:
        raise HTTPException(401, detail=exc.reason) from None
    user = session.user
    me = {"name": user.name, "role": str(user.role), "groups": list(user.groups), "via": "session"}
    resp = JSONResponse({**me, "may": sorted(GRANTS[user.role])}, headers={"cache-control": "no-store"})
    max_age = SESSION_MAX_MS // 1000
    resp.headers.append(
        "set-cookie", cookie(SESSION_COOKIE, session.secret, secure=_secure(request), max_age_s=max_age)
    )
    resp.headers.append(
        "set-cookie", cookie(CSRF_COOKIE, session.csrf, secure=_secure(request), http_only=False, max_age_s=max_age)
    )
    return resp


@router.delete("/api/session", status_code=204, summary="Sign out")
async def sign_out(request: Request, ctx: Ctx, who: Who) -> JSONResponse:
    secret = request.cookies.get(SESSION_COOKIE)
    if secret and ctx.accounts is not None:
        await run_in_threadpool(ctx.accounts.sign_out, secret)
    resp = JSONResponse(None, 204)
    for name in (SESSION_COOKIE, CSRF_COOKIE):
        resp.headers.append("set-cookie", cookie(name, "", secure=_secure(request), max_age_s=0))
    return resp


@router.get("/api/me", response_model=Me, summary="Who is signed in, and what their role may do")
async def me(who: Who) -> dict[str, Any]:
    return {
        "name": who.name,
        "role": str(who.role),
        "groups": sorted(who.groups),
        "via": who.via,
        "may": sorted(GRANTS[who.role]),
    }


@router.get("/audit", include_in_schema=False, response_class=HTMLResponse)
async def audit_page(ctx: Ctx, subject: str = "", user: str = "") -> HTMLResponse:
    return page(ctx, "audit.html.j2", title="Access audit", page="audit", data={"subject": subject, "user": user})


@router.get("/api/audit", response_model=AuditPage, summary="Who looked at which subject (admins)")
async def audit(
    ctx: Ctx,
    who: Who,
    subject: Annotated[str | None, Query(pattern=SUBJECT_PATTERN, description="entries naming this subject")] = None,
    user: Annotated[str | None, Query(max_length=64, description="entries by this user")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 500,
) -> dict[str, Any]:
    if ctx.audit is None:
        raise HTTPException(503, detail="this dashboard keeps no audit")
    log = ctx.audit
    found, check = await run_in_threadpool(lambda: (log.find(subject=subject, user=user), log.verify()))
    allowed = await run_in_threadpool(visible_subjects, ctx, who)
    if allowed is not None:  # an admin of some groups sees the entries about their subjects only
        found = [e for e in found if set(e.get("subjects", ())) <= allowed]
    return {"entries": found[::-1][:limit], "chain_ok": check.ok, "problems": list(check.problems)}
