"""Acknowledging alerts: the API, and the one-click link a message carries (issue 28 item 4).

| path | what |
|---|---|
| ``POST /api/alerts/{alert_id}/ack`` | acknowledge an alert (clinicians, admins); the dashboard's button posts here |
| ``GET /ack/{token}`` | a message's link: the alert and a button to acknowledge it |
| ``POST /ack/{token}`` | the button: uses the link up and acknowledges the alert (``via`` link) |

The first acknowledgement of an alert wins; acknowledging again returns it unchanged.
Acknowledging stops the alert's escalation (the notifier reads the store); every
acknowledgement is in the access audit (the routes are audited, with the alert's subject).

**The link never acknowledges by itself.** It is signed (HMAC-SHA256), expiring and single
use (:mod:`access.ack_links`), but it is only a pointer: the person must be signed in with
a role that may acknowledge (clinician or admin) — without a session the gate sends them to
``/login`` and back, and a signed-in viewer or researcher is sent to sign in as someone who
may. Anyone who sees a message (a shared inbox, a forwarded mail) could otherwise
acknowledge a patient's alert in a clinician's name. The GET only shows the alert:
mail scanners and link previewers fetch links, and a GET that acknowledged would stop
escalations nobody saw. The POST (CSRF-checked like every cookie request) consumes the
link's nonce and acknowledges as the signed-in user; a link is used once even if the alert
was acknowledged in the meantime by another route. Expired (410), used (410), forged or
malformed (400) links get a page saying so. The alert's subject must be in the user's
groups (404 otherwise, as for every subject route) — checked before the link is used up.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Final

from fastapi import APIRouter, HTTPException, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse

from access.ack_links import LinkClaim, LinkError, LinkExpired, verify_link
from access.acks import Ack, AckStore
from access.roles import Permission
from core.live.alerts import category
from serving.web.access import Who, visible
from serving.web.api import ApiContext, Ctx
from serving.web.models import Acknowledged
from serving.web.pages import local_time
from serving.web.views import page

__all__ = ["ALERT_ID_PATTERN", "router"]

#: Alert ids are the alert documents' ``doc_id``: hex digests.
ALERT_ID_PATTERN: Final = r"^[A-Za-z0-9._:-]{1,128}$"

router = APIRouter()

AlertId = Annotated[str, Path(pattern=ALERT_ID_PATTERN, description="the alert episode's doc_id")]
Token = Annotated[str, Path(max_length=2048, description="the signed link's token")]


def _now_ms() -> int:
    return int(time.time() * 1000)


def _store(ctx: ApiContext) -> AckStore:
    if ctx.acks is None:
        raise HTTPException(503, detail="this dashboard keeps no acknowledgements")
    return ctx.acks


def _alert_in_scope(ctx: ApiContext, who: Any, alert_id: str) -> dict[str, Any] | None:
    """The alert if it exists and its subject is in ``who``'s groups (None otherwise: 404 alike)."""
    alert = ctx.live.alert(alert_id)
    if alert is None or not visible(ctx, who, str(alert["subject_id"])):
        return None
    return alert


def _body(ack: Ack, alert: dict[str, Any]) -> dict[str, Any]:
    return {"alert_id": ack.alert_id, "subject_id": alert["subject_id"], **ack.to_json()}


@router.post(
    "/api/alerts/{alert_id}/ack",
    response_model=Acknowledged,
    summary="Acknowledge an alert (stops its escalation); the first acknowledgement wins",
)
async def acknowledge(alert_id: AlertId, request: Request, ctx: Ctx, who: Who) -> JSONResponse:
    store = _store(ctx)
    alert = await run_in_threadpool(_alert_in_scope, ctx, who, alert_id)
    if alert is None:
        raise HTTPException(404, detail="no such alert in your groups")
    request.state.audit_subjects = [alert["subject_id"]]
    via = "api" if request.headers.get("authorization") else "dashboard"
    ack = await run_in_threadpool(lambda: store.acknowledge(alert_id, by=who.name, via=via, at_ms=_now_ms()))
    return JSONResponse(_body(ack, alert), headers={"cache-control": "no-store"})


def _claim(ctx: ApiContext, token: str) -> LinkClaim:
    if ctx.ack_key is None:
        raise LinkError("this dashboard has no key for acknowledgement links")
    return verify_link(token, ctx.ack_key, _now_ms())


def _link_page(ctx: ApiContext, status: int, *, token: str, heading: str, message: str, **kw: Any) -> HTMLResponse:
    data = {"token": token} if token else {}
    resp = page(ctx, "ack.html.j2", title="Acknowledge", page="ack", data=data, heading=heading, message=message, **kw)
    resp.status_code = status
    return resp


def _bad_link(ctx: ApiContext, exc: LinkError) -> HTMLResponse:
    if isinstance(exc, LinkExpired):
        msg = "This acknowledgement link has expired. Open the alert on the dashboard to acknowledge it."
        return _link_page(ctx, 410, token="", heading="Link expired", message=msg)
    msg = f"This acknowledgement link is not valid ({exc.reason}). Open the alert on the dashboard instead."
    return _link_page(ctx, 400, token="", heading="Link not valid", message=msg)


def _ack_line(ctx: ApiContext, ack: Ack) -> str:
    return f"acknowledged by {ack.by} at {local_time(ack.at_ms, ctx.tz)} ({ack.via})"


def _no_alert(ctx: ApiContext) -> HTMLResponse:
    msg = "The alert is not one you may see (or no longer exists)."
    return _link_page(ctx, 404, token="", heading="No such alert in your groups", message=msg)


@router.get("/ack/{token}", include_in_schema=False, response_class=HTMLResponse, response_model=None)
async def link_page(token: Token, request: Request, ctx: Ctx, who: Who) -> HTMLResponse | RedirectResponse:
    if not who.may(Permission.ACKNOWLEDGE):  # sign in as someone who may, then come back
        return RedirectResponse(f"/login?next=/ack/{token}", 303, headers={"cache-control": "no-store"})
    store = _store(ctx)
    try:
        claim = _claim(ctx, token)
    except LinkError as exc:
        return _bad_link(ctx, exc)
    alert = await run_in_threadpool(_alert_in_scope, ctx, who, claim.alert_id)
    if alert is None:
        return _no_alert(ctx)
    request.state.audit_subjects = [alert["subject_id"]]
    ack, used = await run_in_threadpool(lambda: (store.get(claim.alert_id), store.link_used(claim.nonce)))
    shown = {
        "alert": alert,
        "category": category(str(alert["kind"])),
        "start": local_time(alert["start_ms"], ctx.tz),
        "ack_line": _ack_line(ctx, ack) if ack else "",
    }
    if used:
        msg = "This acknowledgement link was used already; a link acknowledges once."
        return _link_page(ctx, 410, token="", heading="Link already used", message=msg, **shown)
    if ack is not None:
        return _link_page(ctx, 200, token="", heading="Already acknowledged", message="", **shown)
    return _link_page(ctx, 200, token=token, heading="Acknowledge this alert?", message="", confirm=True, **shown)


@router.post("/ack/{token}", include_in_schema=False, response_model=None)
async def link_acknowledge(token: Token, request: Request, ctx: Ctx, who: Who) -> JSONResponse:
    store = _store(ctx)
    try:
        claim = _claim(ctx, token)
    except LinkExpired as exc:
        raise HTTPException(410, detail=str(exc.reason)) from None
    except LinkError as exc:
        raise HTTPException(400, detail=str(exc.reason)) from None
    alert = await run_in_threadpool(_alert_in_scope, ctx, who, claim.alert_id)
    if alert is None:
        raise HTTPException(404, detail="no such alert in your groups")
    request.state.audit_subjects = [alert["subject_id"]]
    now = _now_ms()
    if not await run_in_threadpool(store.consume_link, claim.nonce, now):
        raise HTTPException(410, detail="this link was used already; a link acknowledges once")
    ack = await run_in_threadpool(lambda: store.acknowledge(claim.alert_id, by=who.name, via="link", at_ms=now))
    body = {**_body(ack, alert), "line": _ack_line(ctx, ack)}
    return JSONResponse(body, headers={"cache-control": "no-store"})
