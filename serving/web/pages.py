"""The dashboard's HTML: page shells, the night report, and the front-end files they use.

Pages are Jinja2 templates (autoescaped); their data come from the JSON API in the
browser. The night report is rendered here in full and is self-contained — the chart
library, the scripts, the styles and the night's data are inlined — so the same HTML is
the dashboard's night page, the file ``sleepstack report`` writes, and the source of its
PDF, and it opens without this server or a network.

Front-end libraries come from the npm registry with a lockfile (``serving/web/package.json``,
installed by ``make setup`` into ``serving/web/node_modules``); nothing is fetched from a
CDN at run time.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any, Final
from zoneinfo import ZoneInfo

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from core.errors import ConfigError
from core.nights.apnoea_screens import apnoea_screens
from core.nights.intervals import night_intervals
from core.nights.stage_norms import stage_share_flags
from core.nights.stages import SleepStage
from core.nights.staging import LOW_CONFIDENCE

__all__ = ["Assets", "load_assets", "local_time", "render_page", "render_report", "vendor_dir"]

_STAGES: Final = tuple(s.label for s in SleepStage)
_VENDOR_FILES: Final = ("uPlot.iife.min.js", "uPlot.min.css")


def vendor_dir() -> Traversable:
    """Where the installed front-end library lives (``node_modules/uplot/dist``)."""
    return resources.files("serving.web").joinpath("node_modules", "uplot", "dist")


def _static(name: str) -> str:
    return resources.files("serving.web").joinpath("static", name).read_text()


@dataclass(frozen=True)
class Assets:
    """The files the report inlines (text)."""

    uplot_js: Markup
    uplot_css: Markup
    app_css: Markup
    charts_js: Markup
    report_js: Markup


def _script_safe(text: str, what: str) -> Markup:
    if "</script" in text.lower() or "</style" in text.lower():
        raise ConfigError(what, "holds a closing script/style tag and cannot be inlined")
    return Markup(text)  # noqa: S704 - our own and the lockfile's files, checked above


@cache
def load_assets() -> Assets:
    """Read the front-end files; a missing library is a :class:`ConfigError` naming the fix."""
    vendor = vendor_dir()
    missing = [n for n in _VENDOR_FILES if not vendor.joinpath(n).is_file()]
    if missing:
        raise ConfigError(
            "the dashboard's front-end library",
            f"is not installed ({', '.join(missing)} missing under serving/web/node_modules): run `make setup`",
        )
    return Assets(
        uplot_js=_script_safe(vendor.joinpath("uPlot.iife.min.js").read_text(), "uPlot.iife.min.js"),
        uplot_css=_script_safe(vendor.joinpath("uPlot.min.css").read_text(), "uPlot.min.css"),
        app_css=_script_safe(_static("app.css"), "app.css"),
        charts_js=_script_safe(_static("charts.js"), "charts.js"),
        report_js=_script_safe(_static("report.js"), "report.js"),
    )


@cache
def _env() -> Environment:
    env = Environment(
        loader=PackageLoader("serving.web", "templates"), autoescape=select_autoescape(["j2", "html"]), cache_size=50
    )
    env.globals.update(f=_fmt, hm=_hours_minutes, pct=_pct)
    return env


#: What a missing figure shows (an en dash).
MISSING: Final = "\u2013"


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _fmt(v: Any, digits: int = 1) -> str:
    if _missing(v):
        return MISSING
    return f"{float(v):.{digits}f}"


def _pct(v: Any) -> str:
    return _fmt(None if v is None else 100 * float(v), 1)


def _hours_minutes(minutes: Any) -> str:
    if _missing(minutes):
        return MISSING
    m = round(float(minutes))
    return f"{m // 60} h {m % 60:02d} min"


def _local(ms: Any, tz: str = "UTC") -> str:
    if ms is None:
        return MISSING
    return datetime.fromtimestamp(int(ms) / 1000, tz=ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M %Z")


def local_time(ms: int | None, tz: str) -> str:
    """``ms`` (UTC) as ``YYYY-MM-DD HH:MM ZONE`` in ``tz``; an en dash for None."""
    return _local(ms, tz)


def render_page(
    template: str, *, title: str, page: str, tz: str, data: dict[str, str] | None = None, **ctx: Any
) -> str:
    """One dashboard page shell (``templates/<template>``); times shown in ``tz``."""
    return _env().get_template(template).render(title=title, page=page, tz=tz, data=data or {}, **ctx)


def uncertain_share(epochs: list[dict[str, Any]]) -> float | None:
    """Share 0-1 of the staged epochs whose stage's probability is under
    :data:`core.nights.staging.LOW_CONFIDENCE` (the hypnogram's shading); None without probabilities."""
    known = [e["stage_confidence"] for e in epochs if e.get("stage_confidence") is not None]
    return sum(c < LOW_CONFIDENCE for c in known) / len(known) if known else None


def render_report(detail: dict[str, Any], *, tz: str = "UTC", nav: bool = False, now: datetime | None = None) -> str:
    """The self-contained night report of ``detail`` (:func:`serving.web.api.night_detail`).

    Times in ``tz`` (the subjects' zone); ``nav``: with the dashboard's navigation bar
    (the dashboard's night page).
    """
    data = {"summary": detail["summary"], "epochs": detail["epochs"], "tz": tz, "low_confidence": LOW_CONFIDENCE}
    # inside <script>: "<" escaped so no value can close the element
    data_json = Markup(json.dumps(data, allow_nan=False, default=str).replace("<", "\\u003c"))  # noqa: S704
    generated = (now or datetime.now(tz=UTC)).strftime("%Y-%m-%d %H:%M UTC")
    return (
        _env()
        .get_template("report.html.j2")
        .render(
            s=detail["summary"],
            screens=apnoea_screens(detail["summary"]),
            stage_flags=stage_share_flags(detail["summary"]),
            model=detail["model"],
            apnoea=detail.get("apnoea_model"),
            intervals=night_intervals(detail["summary"], (detail["model"] or {}).get("intervals_90", {})),
            uncertain=uncertain_share(detail["epochs"]),
            low_confidence=LOW_CONFIDENCE,
            stages=_STAGES,
            assets=load_assets(),
            data_json=data_json,
            nav=nav,
            generated=generated,
            t=lambda ms: _local(ms, tz),
        )
    )
