"""``sleepstack report``: a night's self-contained HTML report, and its PDF printed by Chromium.

The HTML is the dashboard's night page without the navigation (:func:`serving.web.pages.render_report`),
read from the curated tables through the settings' SQL engine. The PDF is that file as
headless Chromium prints it (Playwright driving the system's Chromium, ``SLEEPSTACK_CHROMIUM``),
after the charts are drawn, so the two never differ.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from batch_layer.stage_models import model_cards
from core.contract.epochs import resolve_nights
from core.errors import ConfigError, InputError, NoDataError
from serving.web.api import SUBJECT_PATTERN, night_detail
from serving.web.pages import render_report
from sleepstack import wiring
from sleepstack.settings import Settings

__all__ = ["CHROMIUM_FLAGS", "print_pdf", "write_report"]

#: How Chromium runs here: headless, no sandbox (root), nothing fetched from outside.
CHROMIUM_FLAGS: Final = (
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
)


def write_report(settings: Settings, subject_id: str, night: str, out: Path, *, pdf: bool = False) -> list[Path]:
    """Write ``out`` (HTML) and, with ``pdf``, ``out`` with a ``.pdf`` suffix; the paths written."""
    import re
    from datetime import UTC, datetime

    if not re.match(SUBJECT_PATTERN, subject_id):
        raise InputError("--subject", f"{subject_id!r} is not a subject id (letters, digits, ._:-)")
    nights = resolve_nights(night, settings.tz, datetime.now(tz=UTC), arg="--night")
    if len(nights) != 1:
        raise InputError("--night", f"name one night, not {len(nights)}")
    night = nights[0]
    detail = night_detail(wiring.sql_engine(settings), subject_id, night, model_cards())
    if detail is None:
        raise NoDataError(f"no staged night {night} for subject {subject_id}: stage it first (`sleepstack batch run`)")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_report(detail, tz=settings.tz))
    written = [out]
    if pdf:
        written.append(print_pdf(out, out.with_suffix(".pdf"), settings.chromium))
    return written


#: A4's width less two 12-mm margins, in CSS pixels (96 per inch).
_PRINT_WIDTH_PX: Final = int((210 - 24) / 25.4 * 96)


def print_pdf(html: Path, pdf: Path, chromium: str, *, timeout_s: float = 30.0) -> Path:
    """Print ``html`` to ``pdf`` (A4) with headless Chromium once its charts are drawn."""
    if not Path(chromium).is_file():
        raise ConfigError(
            "SLEEPSTACK_CHROMIUM", f"{chromium} does not exist: install Chromium (apt-get install chromium)"
        )
    try:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - a dependency of the package
        raise ConfigError("playwright", "is not installed: pip install playwright") from None
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, headless=True, args=list(CHROMIUM_FLAGS))
            try:
                # laid out at the printed width (A4 less the 12-mm margins, at 96 px per inch), so the
                # charts are drawn for the page and nothing is cut at its right edge
                page = browser.new_page(viewport={"width": _PRINT_WIDTH_PX, "height": 1000})
                page.emulate_media(media="print")
                page.goto(html.resolve().as_uri())
                page.wait_for_function("document.body.dataset.ready === '1'", timeout=timeout_s * 1000)
                page.pdf(
                    path=str(pdf),
                    format="A4",
                    print_background=True,
                    margin={"top": "12mm", "bottom": "12mm", "left": "12mm", "right": "12mm"},
                )
            finally:
                browser.close()
    except PlaywrightError as exc:
        raise ConfigError("SLEEPSTACK_CHROMIUM", f"{chromium} could not print the report: {exc.message}") from None
    return pdf
