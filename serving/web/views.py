"""The dashboard's HTML pages and the downloadable night report (not in the API schema).

| path | what |
|---|---|
| ``/`` | cohort: every subject's bed state, latest vitals, last seen, open alerts |
| ``/subjects/{id}`` | a subject's live night: HR (strap, bed), HRV, breathing, movement, presence, alerts shaded |
| ``/alerts`` | open and closed alert episodes |
| ``/nights`` | staged nights (curated tables) |
| ``/compliance`` | every subject x the last 14 nights, coloured by completeness; silent devices flagged |
| ``/registry`` | subjects, devices (assigned to, last seen), assignments |
| ``/nights/{id}/{night}`` | a night's report: hypnogram, traces, metrics, the staging model and its accuracy |
| ``/reports/{id}/{night}.html`` | the same report as a self-contained file to keep or send |

The pages are shells their scripts fill from the JSON API; the night report is rendered
here from the curated tables (its query runs in the thread pool).
"""

from __future__ import annotations

from typing import Annotated, Any, Final

from fastapi import APIRouter, HTTPException, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response

from serving.web.api import NIGHT_PATTERN, ApiContext, Ctx, Night, SubjectId, night_detail, not_staged
from serving.web.pages import render_page, render_report

__all__ = ["HEADERS", "page", "router"]

HEADERS: Final = {
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    # scripts and styles from this server only (the report's are inline)
    "content-security-policy": "default-src 'self'; script-src 'self' 'unsafe-inline';"
    " style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'",
}

router = APIRouter(include_in_schema=False, default_response_class=HTMLResponse)


def page(ctx: ApiContext, template: str, **kw: Any) -> HTMLResponse:
    return HTMLResponse(render_page(template, tz=ctx.tz, **kw), headers=HEADERS)


async def _detail(ctx: ApiContext, subject_id: str, night: str) -> dict[str, Any]:
    detail = await run_in_threadpool(lambda: night_detail(ctx.sql(), subject_id, night, ctx.model_cards))
    if detail is None:
        raise not_staged(subject_id, night)
    return detail


@router.get("/")
async def cohort(ctx: Ctx) -> HTMLResponse:
    return page(ctx, "cohort.html.j2", title="Cohort", page="cohort")


@router.get("/subjects/{subject_id}")
async def subject(subject_id: SubjectId, ctx: Ctx, night: str | None = None) -> HTMLResponse:
    if not ctx.live.has_subject(subject_id):
        raise HTTPException(404, detail=f"no live documents name subject {subject_id}")
    data = {"subject": subject_id, **({"night": night} if night else {})}
    return page(ctx, "subject.html.j2", title=subject_id, page="subject", data=data, subject_id=subject_id)


@router.get("/alerts")
async def alerts(ctx: Ctx) -> HTMLResponse:
    return page(ctx, "alerts.html.j2", title="Alerts", page="alerts")


@router.get("/nights")
async def nights(ctx: Ctx, subject_id: str | None = None) -> HTMLResponse:
    data = {"subject": subject_id} if subject_id else {}
    return page(ctx, "nights.html.j2", title="Nights", page="nights", data=data)


@router.get("/compliance")
async def compliance(ctx: Ctx, until: Annotated[str | None, Query(pattern=NIGHT_PATTERN)] = None) -> HTMLResponse:
    data = {"until": until} if until else {}
    return page(ctx, "compliance.html.j2", title="Compliance", page="compliance", data=data)


@router.get("/registry")
async def registry(ctx: Ctx) -> HTMLResponse:
    return page(ctx, "registry.html.j2", title="Registry", page="registry")


@router.get("/nights/{subject_id}/{night}")
async def night_page(subject_id: SubjectId, night: Night, ctx: Ctx) -> HTMLResponse:
    html = render_report(await _detail(ctx, subject_id, night), tz=ctx.tz, nav=True)
    return HTMLResponse(html, headers=HEADERS)


@router.get("/reports/{subject_id}/{night}.html")
async def report_file(subject_id: SubjectId, night: Night, ctx: Ctx) -> Response:
    html = render_report(await _detail(ctx, subject_id, night), tz=ctx.tz)
    name = f"sleepstack-night-{subject_id}-{night}.html"
    return Response(
        html, media_type="text/html", headers={**HEADERS, "content-disposition": f'attachment; filename="{name}"'}
    )
