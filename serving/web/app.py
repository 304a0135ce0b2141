"""The dashboard's web application (FastAPI): pages, the JSON API, the front-end files.

| path | what |
|---|---|
| ``/`` | cohort: every subject's bed state, latest vitals, last seen, open alerts |
| ``/subjects/{id}`` | a subject's live night: HR (strap, bed), HRV, breathing, movement, presence, alerts shaded |
| ``/alerts`` | open and closed alert episodes |
| ``/nights`` | staged nights (curated tables) |
| ``/nights/{id}/{night}`` | a night's report: hypnogram, traces, metrics, the staging model and its accuracy |
| ``/reports/{id}/{night}.html`` | the same report as a self-contained file to keep or send |
| ``/api/...`` | the JSON API (:mod:`serving.web.api`); schema at ``/api/openapi.json`` |

Every path is behind :class:`serving.web.auth.TokenGate`. The interactive API docs
(Swagger UI, ReDoc) are off: they load their scripts from a CDN.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, HTTPException
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

from serving.web.api import ApiContext, Night, SubjectId, night_detail, not_staged, router
from serving.web.auth import AccessLog, TokenGate
from serving.web.pages import load_assets, render_page, render_report, vendor_dir

__all__ = ["create_app"]

_HEADERS = {
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    # scripts and styles from this server only (the report's are inline)
    "content-security-policy": "default-src 'self'; script-src 'self' 'unsafe-inline';"
    " style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'",
}


def _html(text: str) -> HTMLResponse:
    return HTMLResponse(text, headers=_HEADERS)


def create_app(ctx: ApiContext, token: str, *, secure_cookie: bool = False) -> Any:
    """The ASGI application: the FastAPI app behind the token gate and the access log."""
    load_assets()  # fail at start, naming `make setup`, not at the first page
    app = FastAPI(
        title="sleepstack dashboard API",
        version="1",
        description="Live vitals and alerts (the speed layer's documents) and staged nights (the curated tables)."
        " Times are ms UTC. Authenticate with the dashboard token: `Authorization: Bearer <token>` or the cookie"
        " the dashboard's address sets.",
        docs_url=None,
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    app.include_router(router(ctx))

    def page(template: str, **kw: Any) -> str:
        return render_page(template, tz=ctx.tz, **kw)

    app.mount("/static", StaticFiles(packages=[("serving.web", "static")]), name="static")
    app.mount("/vendor", StaticFiles(directory=str(vendor_dir())), name="vendor")

    @app.get("/", include_in_schema=False)
    async def cohort() -> HTMLResponse:
        return _html(page("cohort.html.j2", title="Cohort", page="cohort"))

    @app.get("/subjects/{subject_id}", include_in_schema=False)
    async def subject(subject_id: SubjectId, night: str | None = None) -> HTMLResponse:
        if not ctx.live.has_subject(subject_id):
            raise HTTPException(404, detail=f"no live documents name subject {subject_id}")
        data = {"subject": subject_id, **({"night": night} if night else {})}
        return _html(page("subject.html.j2", title=subject_id, page="subject", data=data, subject_id=subject_id))

    @app.get("/alerts", include_in_schema=False)
    async def alerts() -> HTMLResponse:
        return _html(page("alerts.html.j2", title="Alerts", page="alerts"))

    @app.get("/nights", include_in_schema=False)
    async def nights(subject_id: str | None = None) -> HTMLResponse:
        data = {"subject": subject_id} if subject_id else {}
        return _html(page("nights.html.j2", title="Nights", page="nights", data=data))

    def _detail(subject_id: str, night: str) -> dict[str, Any]:
        detail = night_detail(ctx.sql(), subject_id, night, ctx.model_cards)
        if detail is None:
            raise not_staged(subject_id, night)
        return detail

    @app.get("/nights/{subject_id}/{night}", include_in_schema=False)
    async def night_page(subject_id: SubjectId, night: Night) -> HTMLResponse:
        return _html(render_report(_detail(subject_id, night), tz=ctx.tz, nav=True))

    @app.get("/reports/{subject_id}/{night}.html", include_in_schema=False)
    async def report_file(subject_id: SubjectId, night: Night) -> Response:
        html = render_report(_detail(subject_id, night), tz=ctx.tz)
        name = f"sleepstack-night-{subject_id}-{night}.html"
        return Response(
            html, media_type="text/html", headers={**_HEADERS, "content-disposition": f'attachment; filename="{name}"'}
        )

    return AccessLog(TokenGate(app, token, secure_cookie=secure_cookie))
