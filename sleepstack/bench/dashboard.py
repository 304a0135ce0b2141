"""``sleepstack bench dashboard``: how fast the dashboard answers over a full night of 3 subjects.

* **API**: ``GET /api/subjects/{id}/vitals`` for one subject's whole night (noon to noon:
  every 30-s epoch of strap and bed, ~1,900 documents) over real HTTP on loopback to
  ``sleepstack dashboard`` in its own process, with the bearer token, ``requests`` times
  after a warm-up; p50/p95/max in ms (goal p95 ≤ 50 ms).
  The cohort (``/api/subjects``) and a night's epochs from the curated tables likewise.
* **Pages**: headless Chromium (Debian's, through Playwright) opens the subject page and
  the night page ``loads`` times each; "ready" is when the page has drawn its charts with
  the night's data (``document.body.dataset.ready``), from the navigation's start, median
  and max in ms (goal ≤ 1,000 ms). Skipped, saying so, where Chromium is not installed.

The night is simulated (strap + 100 Hz bed, apnoea), indexed by the real speed-layer
handler into the embedded store and staged by the nightly job's functions.
"""

from __future__ import annotations

import contextlib
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sleepstack.bench.fixtures import bench_settings, index_and_stage, simulated_night_records
from sleepstack.settings import Settings

__all__ = ["bench_dashboard"]


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _timings(values: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(statistics.median(values), 1),
        "p95_ms": round(_quantile(values, 0.95), 1),
        "max_ms": round(max(values), 1),
    }


def _get(url: str, token: str) -> bytes:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})  # noqa: S310 - loopback
    with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310
        body: bytes = resp.read()
    return body


def _api(address: str, token: str, path: str, requests: int) -> dict[str, Any]:
    _get(address + path, token)  # warm-up
    secs = []
    size = 0
    for _ in range(requests):
        t = time.perf_counter()
        size = len(_get(address + path, token))
        secs.append((time.perf_counter() - t) * 1000)
    return {**_timings(secs), "bytes": size}


def _pages(address: str, token: str, paths: dict[str, str], loads: int, chromium: str) -> dict[str, Any]:
    if not Path(chromium).is_file():
        return {"skipped": f"{chromium} is not installed (apt-get install chromium)"}
    from playwright.sync_api import sync_playwright

    from sleepstack.report import CHROMIUM_FLAGS

    out: dict[str, Any] = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=list(CHROMIUM_FLAGS))
        context = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
        page = context.new_page()
        page.goto(f"{address}/?token={token}")
        for name, path in paths.items():
            secs = []
            for k in range(loads + 1):  # load 0 warms the browser's cache of the scripts
                page.goto("about:blank")
                page.goto(address + path, wait_until="commit")
                page.wait_for_function("document.body && document.body.dataset.ready === '1'", timeout=30_000)
                ms = page.evaluate("performance.now()")  # since this document's navigation started
                if k:
                    secs.append(float(ms))
            out[name] = {"median_ms": round(statistics.median(secs), 1), "max_ms": round(max(secs), 1)}
        browser.close()
    return out


def bench_dashboard(requests: int = 50, loads: int = 5, subjects: int = 3) -> dict[str, Any]:
    from core.epochs import night_bounds_ms
    from sleepstack.dashboard import token

    with tempfile.TemporaryDirectory(prefix="sleepstack-bench-dashboard-") as tmp:
        settings = bench_settings(Path(tmp))
        t = time.perf_counter()
        night = _fill(settings, subjects)
        fill_s = time.perf_counter() - t
        start, end = night_bounds_ms(night, settings.tz)
        tok = token(settings)
        with _server(settings) as address:
            vitals = f"/api/subjects/d001/vitals?start_ms={start}&end_ms={end}"
            api = {
                "night_vitals": _api(address, tok, vitals, requests),
                "subjects": _api(address, tok, "/api/subjects", requests),
                "night_epochs": _api(address, tok, f"/api/nights/d001/{night}/epochs", requests),
            }
            pages = _pages(
                address, tok, {"subject": "/subjects/d001", "night": f"/nights/d001/{night}"}, loads, settings.chromium
            )
    return {
        "subjects": subjects,
        "night": night,
        "fill_seconds": round(fill_s, 1),
        "requests": requests,
        "api": api,
        "goal_api_p95_ms": 50,
        "page_loads": loads,
        "pages": pages,
        "goal_page_ready_ms": 1000,
    }


@contextlib.contextmanager
def _server(settings: Settings) -> Iterator[str]:
    """``sleepstack dashboard --port 0`` in its own process (as the stack runs it); its address."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "sleepstack.cli", "dashboard", "--port", "0"],
        env=settings.child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        if not line.startswith("dashboard: "):
            raise RuntimeError(f"the dashboard did not start (exit {proc.poll()}): {line!r}")
        yield line.split()[1].split("/?")[0]
    finally:
        proc.terminate()
        proc.wait(15)


def _fill(settings: Settings, subjects: int) -> str:
    """Index and stage a full simulated night of ``subjects``; the night's name."""
    recs = []
    for k in range(subjects):
        recs += simulated_night_records(f"d{k + 1:03d}", seed=k, apnea_per_hour=6.0)
    recs.sort(key=lambda r: r.event_time_ms)
    return index_and_stage(settings, recs)
