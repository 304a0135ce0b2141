"""The dashboard's JSON API (``/api``), documented by the OpenAPI schema it serves.

Live data come from :class:`serving.live_queries.LiveQueries` (the speed layer's
documents), nights from the curated tables through :class:`serving.sql_engine.SqlEngine`
(the parameterised queries of ``serving/sql/night_*.sql``) — the same engine analysts use.

Ids and dates are validated by pattern (422 naming the field, FastAPI's error shape);
an id no document names is 404. Times are epoch milliseconds, UTC.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any, Final, Literal

import orjson
import pandas as pd
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from access.accounts import AccountStore
from access.acks import AckStore
from access.audit import AuditLog
from core.contract.epochs import night_bounds_ms, night_of
from core.errors import EmptyTableError
from core.nights.staging import LOW_CONFIDENCE
from registry.store import RegistryStore
from serving.live_queries import MAX_DOCS, LiveQueries
from serving.sql_engine import SqlEngine, load_query
from serving.web.access import Who, keep, visible_subjects
from serving.web.models import AlertCounts, Alerts, NightEpochs, NightOut, Nights, Samples, SubjectNow, Subjects, Vitals

__all__ = [
    "MAX_RANGE_MS",
    "SUBJECT_PATTERN",
    "ApiContext",
    "Ctx",
    "LiveSubject",
    "context",
    "night_detail",
    "not_staged",
    "router",
    "unprocessable",
    "with_acks",
]

#: Subject ids are pseudonyms: letters, digits and ``._:-``.
SUBJECT_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"
NIGHT_PATTERN: Final = r"^\d{4}-\d{2}-\d{2}$"
#: The widest vitals range one request may ask for (two nights).
MAX_RANGE_MS: Final = 48 * 3_600_000
#: The widest range of per-second strap samples (2 h: 7,200 documents).
MAX_SAMPLE_RANGE_MS: Final = 2 * 3_600_000


class _Json(JSONResponse):
    """JSON rendered by orjson (a night of vitals is thousands of documents)."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


@dataclass
class ApiContext:
    """What the API reads: the live queries, a (fresh) SQL engine, the time zone, the models'
    cards by name, the registry (None: the registry routes answer 503), the accounts and
    the access audit."""

    live: LiveQueries
    sql: Callable[[], SqlEngine]
    tz: str
    model_cards: dict[str, dict[str, Any]]
    registry: Callable[[], RegistryStore] | None = None
    #: users, sessions and API tokens (None: only the break-glass token signs in)
    accounts: AccountStore | None = None
    #: the access audit (None: not kept; the app then refuses to start, see serving.web.app)
    audit: AuditLog | None = None
    #: alert acknowledgements (None: alerts cannot be acknowledged here: 503)
    acks: AckStore | None = None
    #: the key signing one-click acknowledgement links (None: links are refused)
    ack_key: bytes | None = None


SubjectId = Annotated[str, Path(pattern=SUBJECT_PATTERN, description="pseudonymous subject id")]
Night = Annotated[str, Path(pattern=NIGHT_PATTERN, description="night, YYYY-MM-DD of its evening")]


def unprocessable(field: str, where: str, msg: str) -> HTTPException:
    return HTTPException(422, detail=[{"loc": [where, field], "msg": msg, "type": "value_error"}])


def not_staged(subject_id: str, night: str) -> HTTPException:
    return HTTPException(404, detail=f"no staged night {night} for subject {subject_id}")


def _check_range(start_ms: int, end_ms: int, most_ms: int) -> None:
    if end_ms <= start_ms:
        raise unprocessable("end_ms", "query", "must be after start_ms")
    if end_ms - start_ms > most_ms:
        raise unprocessable("end_ms", "query", f"the range may span at most {most_ms // 60_000} min")


def check_night(night: str) -> None:
    try:
        date.fromisoformat(night)
    except ValueError:
        raise unprocessable("night", "path", f"{night} is not a calendar date") from None


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON-ready dicts: NaN and NA become null, numpy scalars plain numbers."""
    out = []
    for row in df.astype(object).to_dict(orient="records"):
        clean: dict[str, Any] = {}
        for k, v in row.items():
            if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
                clean[str(k)] = None
            elif hasattr(v, "item"):
                clean[str(k)] = v.item()
            else:
                clean[str(k)] = v
        out.append(clean)
    return out


def query_rows(engine: SqlEngine, name: str, params: dict[str, str | int]) -> list[dict[str, Any]]:
    try:
        return _records(engine.query(load_query(name), params))
    except EmptyTableError:  # nothing staged yet
        return []


def card_of(summary: dict[str, Any], cards: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """The card of the model that staged a night (its ``method``); None for a model without one."""
    return cards.get(str(summary.get("method")))


def apnoea_card_of(summary: dict[str, Any], cards: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """The card of the apnoea detector that estimated a night's AHI (its ``apnoea_model``); None without one."""
    name = summary.get("apnoea_model")
    return cards.get(str(name)) if name else None


def night_detail(
    engine: SqlEngine, subject_id: str, night: str, cards: dict[str, dict[str, Any]]
) -> dict[str, Any] | None:
    """A night's summary row, its staged epochs and the card of the model that staged it (None: not staged)."""
    rows = query_rows(engine, "night_detail", {"subject": subject_id, "night": night})
    if not rows:
        return None
    epochs = query_rows(engine, "night_epochs", {"subject": subject_id, "night": night})
    return {
        "summary": rows[0],
        "epochs": epochs,
        "model": card_of(rows[0], cards),
        "apnoea_model": apnoea_card_of(rows[0], cards),
    }


async def context(request: Request) -> ApiContext:
    """The app's :class:`ApiContext` (``app.state.ctx``, set by :func:`serving.web.app.create_app`).

    The dependencies are ``async def``: FastAPI runs a plain ``def`` one in its thread
    pool, a hop that costs more than the lookup on a 2-core machine (``bench dashboard``)."""
    ctx: ApiContext = request.app.state.ctx
    return ctx


Ctx = Annotated[ApiContext, Depends(context)]


def _require_live(ctx: ApiContext, subject_id: str) -> str:
    if not ctx.live.has_subject(subject_id):
        raise HTTPException(404, detail=f"no live documents name subject {subject_id}")
    return subject_id


async def live_subject(subject_id: SubjectId, ctx: Ctx) -> str:
    """The path's subject, if any live document names it (else 404)."""
    return _require_live(ctx, subject_id)


LiveSubject = Annotated[str, Depends(live_subject)]
OptionalSubject = Annotated[str | None, Query(pattern=SUBJECT_PATTERN, description="one subject only")]


async def sql_rows(ctx: ApiContext, name: str, params: dict[str, str | int]) -> list[dict[str, Any]]:
    """A named query's rows, run in the thread pool: a slow query never stalls the live polls
    (nor does reopening the engine after a batch run, ~90 ms: ``ctx.sql()`` is called there too)."""
    return await run_in_threadpool(lambda: query_rows(ctx.sql(), name, params))


async def night_rows(ctx: ApiContext, query: str, subject_id: str, night: str) -> list[dict[str, Any]]:
    check_night(night)
    rows = await sql_rows(ctx, query, {"subject": subject_id, "night": night})
    if not rows:
        raise not_staged(subject_id, night)
    return rows


#: The JSON API. Its routes return their bodies rendered (orjson); ``response_model`` documents them.
router = APIRouter(prefix="/api", default_response_class=_Json)


@router.get(
    "/subjects",
    response_model=Subjects,
    summary="Every subject: in-bed state, latest vitals, last seen, open alerts",
)
async def subjects(ctx: Ctx, who: Who) -> _Json:
    allowed = await run_in_threadpool(visible_subjects, ctx, who)
    return _Json({"subjects": keep(ctx.live.subjects(), allowed)})


@router.get(
    "/subjects/{subject_id}",
    response_model=SubjectNow,
    summary="One subject's latest state and its current night's bounds",
)
async def subject(subject_id: SubjectId, ctx: Ctx) -> _Json:
    found = [s for s in ctx.live.subjects() if s["subject_id"] == subject_id]
    if not found:
        raise HTTPException(404, detail=f"no live documents name subject {subject_id}")
    s = dict(found[0])
    s["night"] = night_of(s["last_seen_ms"], ctx.tz)
    s["night_start_ms"], s["night_end_ms"] = night_bounds_ms(s["night"], ctx.tz)
    return _Json(s)


@router.get(
    "/subjects/{subject_id}/vitals",
    response_model=Vitals,
    summary="A subject's 30-s epoch vitals in [start_ms, end_ms)",
)
async def vitals(
    subject_id: LiveSubject,
    ctx: Ctx,
    start_ms: Annotated[int, Query(ge=0, description="from, ms UTC (inclusive)")],
    end_ms: Annotated[int, Query(ge=0, description="to, ms UTC (exclusive)")],
    source: Annotated[Literal["bed", "strap"] | None, Query(description="one device kind only")] = None,
) -> _Json:
    _check_range(start_ms, end_ms, MAX_RANGE_MS)
    docs = ctx.live.between("vitals", subject_id, start_ms, end_ms)
    if source is not None:
        docs = [d for d in docs if d.get("source") == source]
    body = {"subject_id": subject_id, "start_ms": start_ms, "end_ms": end_ms, "vitals": docs}
    return _Json({**body, "truncated": len(docs) >= MAX_DOCS})


@router.get(
    "/subjects/{subject_id}/samples",
    response_model=Samples,
    summary="A subject's per-second strap heart rate in [start_ms, end_ms)",
)
async def samples(
    subject_id: LiveSubject,
    ctx: Ctx,
    start_ms: Annotated[int, Query(ge=0, description="from, ms UTC (inclusive)")],
    end_ms: Annotated[int, Query(ge=0, description="to, ms UTC (exclusive)")],
) -> _Json:
    if end_ms <= start_ms:
        raise unprocessable("end_ms", "query", "must be after start_ms")
    if end_ms - start_ms > MAX_SAMPLE_RANGE_MS:
        raise unprocessable("end_ms", "query", f"per-second samples span at most {MAX_SAMPLE_RANGE_MS // 60_000} min")
    docs = ctx.live.between("samples", subject_id, start_ms, end_ms)
    keep = ("event_time_ms", "hr_bpm", "sensor_contact", "device_id")
    body = {"subject_id": subject_id, "start_ms": start_ms, "end_ms": end_ms}
    return _Json({**body, "samples": [{k: d.get(k) for k in keep} for d in docs], "truncated": len(docs) >= MAX_DOCS})


@router.get("/alerts", response_model=Alerts, summary="Alert episodes, open and closed, newest first")
async def alerts(
    ctx: Ctx,
    who: Who,
    subject_id: OptionalSubject = None,
    status: Annotated[Literal["open", "closed"] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_DOCS)] = 500,
) -> _Json:
    if subject_id is not None:
        _require_live(ctx, subject_id)
    allowed = await run_in_threadpool(visible_subjects, ctx, who)
    rows = keep(ctx.live.alerts(subject_id, status, limit), allowed)
    return _Json({"alerts": await run_in_threadpool(with_acks, ctx, rows)})


def with_acks(ctx: ApiContext, alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The alerts, each with its ``ack`` (``{"by", "via", "at"}``, or None when not acknowledged)."""
    found = ctx.acks.acknowledged(a["doc_id"] for a in alerts) if ctx.acks is not None else {}
    return [{**a, "ack": found[a["doc_id"]].to_json() if a["doc_id"] in found else None} for a in alerts]


@router.get(
    "/alerts/counts", response_model=AlertCounts, summary="How many alert episodes of each kind are open and closed"
)
async def alert_counts(ctx: Ctx, who: Who) -> _Json:
    allowed = await run_in_threadpool(visible_subjects, ctx, who)
    if allowed is None:
        return _Json({"counts": ctx.live.alert_counts()})
    tally = Counter((a["kind"], a["status"]) for a in keep(ctx.live.alerts(limit=MAX_DOCS), allowed))
    return _Json({"counts": [{"kind": k, "status": st, "count": n} for (k, st), n in sorted(tally.items())]})


@router.get("/nights", response_model=Nights, summary="Staged nights from the curated tables, newest first")
async def nights(
    ctx: Ctx,
    who: Who,
    subject_id: OptionalSubject = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> _Json:
    allowed = await run_in_threadpool(visible_subjects, ctx, who)
    rows = await sql_rows(ctx, "night_list", {"subject": subject_id or "", "limit": limit if allowed is None else 5000})
    return _Json({"nights": keep(rows, allowed)[:limit]})


@router.get(
    "/nights/{subject_id}/{night}",
    response_model=NightOut,
    summary="One night: metrics, staging model and its accuracy",
)
async def night(subject_id: SubjectId, night: Night, ctx: Ctx) -> _Json:
    summary = (await night_rows(ctx, "night_detail", subject_id, night))[0]
    return _Json(
        {
            "summary": summary,
            "model": card_of(summary, ctx.model_cards),
            "apnoea_model": apnoea_card_of(summary, ctx.model_cards),
        }
    )


@router.get(
    "/nights/{subject_id}/{night}/epochs",
    response_model=NightEpochs,
    summary="One night's staged 30-s epochs (the hypnogram)",
)
async def night_epochs(subject_id: SubjectId, night: Night, ctx: Ctx) -> _Json:
    epochs = await night_rows(ctx, "night_epochs", subject_id, night)
    return _Json({"subject_id": subject_id, "night": night, "epochs": epochs, "low_confidence": LOW_CONFIDENCE})
