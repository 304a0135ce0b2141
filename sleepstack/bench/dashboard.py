"""``sleepstack bench dashboard``: how fast the dashboard answers over a full night of 3 subjects.

* **API**: ``GET /api/subjects/{id}/vitals`` for one subject's whole night (noon to noon:
  every 30-s epoch of strap and bed, ~1,900 documents) over real HTTP on loopback to
  ``sleepstack dashboard`` in its own process, with the bearer token, ``requests`` times
  after a warm-up; p50/p95/max in ms (goal p95 ≤ 50 ms).
  The cohort (``/api/subjects``) and a night's epochs from the curated tables likewise.
* **Concurrent**: 10 clients poll the live view as the subject page does (the last two
  minutes of vitals, again and again) while one client reads a night's staged epochs from
  the curated tables (a DuckDB query over Parquet) in a loop; the live polls' p50/p95 with
  and without that reader, side by side (goal: live p95 under load ≤ 100 ms). A route that
  blocked the server's event loop would make every poll wait for the slow query.
* **Load and abuse**: ``clients`` users (default 200), each signed in with its own session,
  poll the live view once a second for ``load_seconds``: p50/p95, every status counted,
  server errors (goal: none); then the same beside one more user flooding the API as fast
  as it answers, which its rate limit answers with 429 and ``Retry-After``: the others'
  p95 side by side with the calm run's (``p95_ratio``).
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
import threading
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


def _poll(address: str, token: str, path: str, stop: threading.Event, out: list[float]) -> None:
    while not stop.is_set():
        t = time.perf_counter()
        _get(address + path, token)
        out.append((time.perf_counter() - t) * 1000)


def _concurrent(address: str, token: str, live: str, slow: str, seconds: float, clients: int = 10) -> dict[str, Any]:
    """Live polls' latency from ``clients`` threads, alone and while one more thread reads ``slow``."""
    figures: dict[str, Any] = {}
    for case, extra in (("live_alone", None), ("live_with_slow_reader", slow)):
        stop = threading.Event()
        lat: list[list[float]] = [[] for _ in range(clients)]
        slow_lat: list[float] = []
        threads = [threading.Thread(target=_poll, args=(address, token, live, stop, lat[k])) for k in range(clients)]
        if extra:
            threads.append(threading.Thread(target=_poll, args=(address, token, extra, stop, slow_lat)))
        for th in threads:
            th.start()
        time.sleep(seconds)
        stop.set()
        for th in threads:
            th.join()
        polls = [v for per in lat for v in per]
        figures[case] = {**_timings(polls), "polls": len(polls)}
        if extra:
            figures[case]["slow_reader"] = {**_timings(slow_lat), "requests": len(slow_lat)}
    figures["p95_ratio"] = round(figures["live_with_slow_reader"]["p95_ms"] / figures["live_alone"]["p95_ms"], 2)
    return figures


def _sessions(settings: Settings, n: int) -> list[str]:
    """``n`` users (clinicians of every subject), each signed in: their ``Cookie`` headers."""
    from access.accounts import SESSION_IDLE_MS
    from local.accounts import LocalAccounts
    from serving.web.auth import CSRF_COOKIE, SESSION_COOKIE

    store = LocalAccounts(settings.paths.accounts_db)
    now = int(time.time() * 1000)
    out = []
    for k in range(n):
        _, password = store.add_user(f"load{k:04d}", "clinician", ["*"], now_ms=now)
        s = store.sign_in(f"load{k:04d}", password, address=f"bench-{k}", now_ms=now)
        out.append(f"{SESSION_COOKIE}={s.secret}; {CSRF_COOKIE}={s.csrf}")
    store.close()
    assert SESSION_IDLE_MS > 60_000  # noqa: S101 - a session outlives the run
    return out


def _client(url: str, cookie: str, stop: threading.Event, every_s: float, out: list[tuple[float, int, bool]]) -> None:
    """Poll ``url`` every ``every_s`` (0: as fast as answered): (ms, status, Retry-After given) per request."""
    import urllib.error

    while not stop.is_set():
        t = time.perf_counter()
        req = urllib.request.Request(url, headers={"Cookie": cookie})  # noqa: S310 - loopback
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310
                resp.read()
                status, retry = resp.status, False
        except urllib.error.HTTPError as exc:
            status, retry = exc.code, exc.headers.get("retry-after") is not None
        except OSError:
            status, retry = 599, False  # refused or timed out: counted as a server failure
        ms = (time.perf_counter() - t) * 1000
        out.append((ms, status, retry))
        if every_s:
            stop.wait(max(0.0, every_s - ms / 1000))


def _load(address: str, settings: Settings, live: str, clients: int, seconds: float) -> dict[str, Any]:
    """``clients`` signed-in users polling the live view once a second each, calm and beside one
    user flooding the API as fast as it answers (over its rate limit)."""
    cookies = _sessions(settings, clients + 1)
    figures: dict[str, Any] = {"clients": clients, "seconds": seconds}
    for case in ("calm", "with_flooder"):
        stop = threading.Event()
        per: list[list[tuple[float, int, bool]]] = [[] for _ in range(clients)]
        flood: list[tuple[float, int, bool]] = []
        threads = [
            threading.Thread(target=_client, args=(address + live, cookies[k], stop, 1.0, per[k]))
            for k in range(clients)
        ]
        if case == "with_flooder":
            threads.append(threading.Thread(target=_client, args=(address + live, cookies[-1], stop, 0.0, flood)))
        for th in threads:
            th.start()
        time.sleep(seconds)
        stop.set()
        for th in threads:
            th.join()
        calls = [c for one in per for c in one]
        statuses: dict[str, int] = {}
        for _, status, _ in calls:
            statuses[str(status)] = statuses.get(str(status), 0) + 1
        figures[case] = {
            **_timings([ms for ms, _, _ in calls]),
            "requests": len(calls),
            "statuses": statuses,
            "server_errors": sum(1 for _, st, _ in calls if st >= 500),
        }
        if flood:
            figures[case]["flooder"] = {
                "requests": len(flood),
                "refused_429": sum(1 for _, st, _ in flood if st == 429),
                "429_with_retry_after": all(r for _, st, r in flood if st == 429),
            }
    figures["p95_ratio"] = round(figures["with_flooder"]["p95_ms"] / figures["calm"]["p95_ms"], 2)
    return figures


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


def bench_dashboard(
    requests: int = 50,
    loads: int = 5,
    subjects: int = 3,
    concurrent_seconds: float = 10.0,
    clients: int = 200,
    load_seconds: float = 10.0,
) -> dict[str, Any]:
    from core.contract.epochs import night_bounds_ms
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
            midnight = end - 12 * 3_600_000  # a live poll: two minutes of vitals, as the subject page asks each second
            last = f"/api/subjects/d002/vitals?start_ms={midnight}&end_ms={midnight + 120_000}"
            concurrent = _concurrent(address, tok, last, f"/api/nights/d001/{night}/epochs", concurrent_seconds)
            pages = _pages(
                address, tok, {"subject": "/subjects/d001", "night": f"/nights/d001/{night}"}, loads, settings.chromium
            )
            load = _load(address, settings, last, clients, load_seconds) if clients else {"skipped": "--clients 0"}
    return {
        "subjects": subjects,
        "night": night,
        "fill_seconds": round(fill_s, 1),
        "requests": requests,
        "api": api,
        "goal_api_p95_ms": 50,
        "concurrent": concurrent,
        "goal_concurrent_live_p95_ms": 100,
        "page_loads": loads,
        "pages": pages,
        "goal_page_ready_ms": 1000,
        "load": load,
        "goal_load_server_errors": 0,
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
