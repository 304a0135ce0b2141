"""``GET /api/export/{subject_id}``: a subject's data as a file, for the roles that may export.

The same export as ``sleepstack export`` (:func:`serving.export.export_subject`): ``fhir`` is
the JSON Bundle itself; ``parquet``, ``csv`` and ``edf`` come as one zip of the folder the
export writes. It is written under a private temporary folder, sent, and removed; the
request is in the access audit like any other read of the subject's data.
"""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from core.errors import InputError
from serving.export import export_subject
from serving.web.api import NIGHT_PATTERN, ApiContext, Ctx, SubjectId, unprocessable

__all__ = ["router"]

router = APIRouter(prefix="/api", tags=["export"])


def _build(ctx: ApiContext, subject_id: str, fmt: str, first: str | None, last: str | None) -> tuple[Path, Path, str]:
    """(file to send, folder to remove afterwards, media type)."""
    work = Path(tempfile.mkdtemp(prefix="sleepstack-export-"))  # 0700
    try:
        out = work / f"{subject_id}-{fmt}"
        export_subject(
            ctx.sql(),
            subject_id,
            fmt,
            out.with_suffix(".json") if fmt == "fhir" else out,
            first=first,
            last=last,
            tz=ctx.tz,
        )
        if fmt == "fhir":
            return out.with_suffix(".json"), work, "application/fhir+json"
        archive = work / f"{subject_id}-{fmt}.zip"
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
            for f in sorted(out.rglob("*")):
                if f.is_file():
                    z.write(f, f.relative_to(work))
        return archive, work, "application/zip"
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


@router.get(
    "/export/{subject_id}",
    summary="A subject's data as a file: Parquet, CSV or EDF+ (a zip), or an HL7 FHIR R4 Bundle",
    response_class=FileResponse,
    responses={200: {"description": "the file", "content": {"application/zip": {}, "application/fhir+json": {}}}},
)
async def export(
    subject_id: SubjectId,
    ctx: Ctx,
    fmt: Annotated[Literal["parquet", "csv", "fhir", "edf"], Query(alias="format", description="what to export as")],
    first: Annotated[str | None, Query(alias="from", pattern=NIGHT_PATTERN, description="first night")] = None,
    last: Annotated[str | None, Query(alias="to", pattern=NIGHT_PATTERN, description="last night")] = None,
) -> FileResponse:
    try:
        path, work, media = await run_in_threadpool(_build, ctx, subject_id, fmt, first, last)
    except InputError as exc:
        if "no data" in exc.reason or "does not hold" in exc.reason or "no staged" in exc.reason:
            raise HTTPException(404, detail=exc.reason) from None
        raise unprocessable(exc.what.lstrip("-"), "query", exc.reason) from None
    return FileResponse(
        path,
        media_type=media,
        filename=path.name,
        headers={"cache-control": "no-store"},
        background=BackgroundTask(shutil.rmtree, work, True),
    )
