"""The dashboard in a real browser: headless Chromium (Debian's) driven by Playwright.

The server runs on a free loopback port over a home filled by replayed nights; every page
is opened as a person would, and a screenshot of each is saved under build/screenshots/
(the README shows them).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.live.alerts import alert_id
from core.signals.vitals import doc_id
from sleepstack.dashboard import Listen, serving, token
from sleepstack.report import CHROMIUM_FLAGS
from sleepstack.settings import Settings
from tests.conftest import REPO_ROOT
from tests.dashboard_helpers import (
    HOURS,
    LOW_STRAP,
    SILENT_BED,
    SUBJECTS,
    UNWORN_STRAP,
    battery_at,
    fill_home,
    register,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = REPO_ROOT / "build" / "screenshots"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, str]:
    return fill_home(tmp_path_factory.mktemp("browser"))


@pytest.fixture(scope="module")
def address(home: tuple[Settings, str]) -> Iterator[str]:
    with serving(home[0], Listen(port=0)) as where:
        yield where


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.is_file():
        pytest.fail("Debian's chromium is not installed (apt-get install chromium; .ci/run installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=list(CHROMIUM_FLAGS))
        yield b
        b.close()


@pytest.fixture
def page(browser: Any, home: tuple[Settings, str], address: str) -> Iterator[Any]:
    """A page signed in the way a person is: the address with the token, once."""
    # bypass_csp: Playwright evaluates its wait predicates as strings, which the pages' CSP forbids
    context = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    p = context.new_page()
    errors: list[str] = []
    p.on("pageerror", lambda e: errors.append(str(e)))
    p.goto(f"{address}/?token={token(home[0])}")
    yield p
    context.close()
    assert not errors, f"script errors on the page: {errors}"


def _newest_epoch(settings: Settings, subject: str) -> tuple[Any, dict[str, Any]]:
    """The home's embedded store (to index into) and the subject's newest epoch document."""
    from local.live_store import LocalLiveStore

    store = LocalLiveStore(settings.home / "serving" / "live.sqlite")
    (newest,) = store.latest("vitals", subject)
    return store, newest


def _shot(page: Any, name: str, *, full_page: bool = True) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=full_page)


def _open_ack_link(p: Any, address: str, link: str, name: str, password: str) -> None:
    """Open a message's link (it asks for a sign-in first), sign in, and check the alert is shown
    and not yet acknowledged."""
    p.goto(f"{address}/ack/{link}")  # the link alone does not acknowledge: sign in first
    p.wait_for_url("**/login?next=/ack/**")
    p.fill("input[name=name]", name)
    p.fill("input[name=password]", password)
    p.click("button[type=submit]")
    p.wait_for_url(f"**/ack/{link}")
    assert p.locator("#ack-heading").inner_text() == "Acknowledge this alert?"


def test_a_request_without_the_token_is_refused(browser: Any, address: str) -> None:
    context = browser.new_context()
    p = context.new_page()
    resp = p.goto(f"{address}/")
    assert resp.status == 200 and p.url.endswith("/login?next=/")  # a page: to the sign-in page
    assert "Sign in" in p.content() and "s001" not in p.content()
    assert p.goto(f"{address}/api/subjects").status == 401
    context.close()


def test_the_cohort_page_lists_the_subjects(page: Any) -> None:
    assert page.url.endswith("/")  # the token left the address for a cookie
    page.wait_for_selector("#cohort tbody tr")
    rows = page.locator("#cohort tbody tr")
    assert [rows.nth(i).get_attribute("data-subject") for i in range(rows.count())] == list(SUBJECTS)
    assert "in bed" in rows.first.inner_text() or "not reporting" in rows.first.inner_text()
    _shot(page, "cohort")


def test_a_subject_page_draws_hr_and_gains_a_point_after_a_new_document(
    page: Any, home: tuple[Settings, str], address: str
) -> None:
    settings, _ = home
    page.goto(f"{address}/subjects/s001")
    page.wait_for_function("document.body.dataset.ready === '1'")
    hr = page.locator("#hr")
    assert hr.locator("canvas").count() == 1
    before = int(hr.get_attribute("data-points"))
    assert before > 200
    store, newest = _newest_epoch(settings, "s001")
    t = newest["epoch_start_ms"] + 30_000
    doc = {**newest, "doc_id": doc_id("bed", newest["device_id"], t), "epoch_start_ms": t, "hr_bpm": 71.0}
    store.index([("vitals", doc)])
    indexed = time.monotonic()
    page.wait_for_function(f"Number(document.getElementById('hr').dataset.points) > {before}", timeout=2_000)
    assert time.monotonic() - indexed <= 2.0
    for panel in ("strap-hr", "hrv", "br", "movement", "presence"):
        assert page.locator(f"#{panel} canvas").count() == 1
    page.wait_for_function("Number(document.getElementById('strap-hr').dataset.points) > 1000")
    _shot(page, "subject")
    store.close()


def test_an_alert_episode_appears(page: Any, home: tuple[Settings, str], address: str) -> None:
    settings, _ = home
    page.goto(f"{address}/alerts")
    page.wait_for_selector("#alerts tbody tr")
    store, newest = _newest_epoch(settings, "s002")
    start = newest["epoch_start_ms"] + 60_000
    alert = {
        "doc_id": alert_id("bed-s002", "hr_high", start),
        "subject_id": "s002",
        "device_id": "bed-s002",
        "source": "bed",
        "kind": "hr_high",
        "status": "open",
        "start_ms": start,
        "end_ms": None,
        "raised_ms": start + 60_000,
        "duration_s": 60.0,
        "value": 131.0,
        "threshold": 120.0,
    }
    store.index([("alerts", alert)])
    page.wait_for_selector("#alerts tbody tr.open >> text=hr_high", timeout=5_000)
    assert "hr_high" in page.locator("#alerts-by-kind").inner_text()
    row = page.locator("#alerts tbody tr.open", has_text="hr_high").first
    assert "s002" in row.inner_text() and "131.0" in row.inner_text()
    _shot(page, "alerts")
    store.close()


def test_a_night_page_draws_the_hypnogram(page: Any, home: tuple[Settings, str], address: str) -> None:
    _, night = home
    page.goto(f"{address}/nights")
    page.wait_for_selector("#nights tbody tr")
    assert page.locator("#nights tbody tr").count() == len(SUBJECTS)
    _shot(page, "nights")
    page.click(f"text=s001 · {night}")
    page.wait_for_function("document.body.dataset.ready === '1'")
    hypnogram = page.locator("#hypnogram")
    assert hypnogram.locator("canvas").count() == 1
    assert int(hypnogram.get_attribute("data-stages")) > 100
    assert "hr-mlp-v1" in page.locator("#model").inner_text()
    assert "κ" in page.locator("#model").inner_text()
    _shot(page, "night")


_PIXEL_AT = """([t, level]) => {
  const el = document.getElementById("hypnogram");
  const u = el.uplot;
  const x = Math.round(u.valToPos(t / 1000, "x", true));
  const y = Math.round(u.valToPos(level, "y", true));
  return Array.from(u.ctx.getImageData(x, y, 1, 1).data);
}"""


def test_the_hypnogram_shades_the_uncertain_epochs_and_only_those(
    page: Any, home: tuple[Settings, str], address: str
) -> None:
    """Epochs whose stage's calibrated probability is under LOW_CONFIDENCE are grey; the others are not."""
    from core.nights.staging import LOW_CONFIDENCE

    _, night = home
    data = page.request.get(f"{address}/api/nights/s001/{night}/epochs").json()
    assert data["low_confidence"] == LOW_CONFIDENCE
    epochs = [e for e in data["epochs"] if e["stage_confidence"] is not None]
    low = [e["epoch_start_ms"] for e in epochs if e["stage_confidence"] < LOW_CONFIDENCE]
    sure = [e["epoch_start_ms"] for e in epochs if e["stage_confidence"] >= LOW_CONFIDENCE]
    assert low and sure  # a night with both
    page.goto(f"{address}/nights/s001/{night}")
    page.wait_for_function("document.body.dataset.ready === '1'")
    hypnogram = page.locator("#hypnogram")
    spans = [tuple(s) for s in json.loads(hypnogram.get_attribute("data-uncertain-spans"))]
    shaded = {t for s, e in spans for t in range(s, e, 30_000)}
    assert shaded == set(low)  # exactly the uncertain epochs, run together into spans
    assert int(hypnogram.get_attribute("data-uncertain")) == len(low)
    assert "uncertain" in hypnogram.inner_text()  # the chart's title says what grey means
    note = page.locator("#uncertain-note").inner_text()
    assert f"{100 * len(low) / len(epochs):.1f} % of the epochs" in note and "under 50 %" in note
    # the canvas itself, above the wake line (stage level 3.4 of -0.5..3.5): grey on the uncertain epochs'
    # middles, untouched on the others (a few may sit under a grid line)
    grey = [page.evaluate(_PIXEL_AT, [t + 15_000, 3.4]) for t in low[::7][:40]]
    clear = [page.evaluate(_PIXEL_AT, [t + 15_000, 3.4]) for t in sure[::7][:40]]
    assert sum(p[3] > 0 and abs(p[0] - p[2]) < 8 for p in grey) >= 0.9 * len(grey)
    assert sum(p[3] == 0 for p in clear) >= 0.9 * len(clear)
    _shot(page, "night-uncertain-epochs")


def test_the_compliance_view_flags_missing_nights_and_silent_devices(
    page: Any, home: tuple[Settings, str], address: str
) -> None:
    from datetime import date, timedelta

    settings, night = home
    register(settings, night)
    until = (date.fromisoformat(night) + timedelta(days=2)).isoformat()
    page.goto(f"{address}/compliance?until={until}")
    page.wait_for_function("document.body.dataset.ready === '1'")
    rows = page.locator("#compliance tbody tr")
    assert rows.count() == 4
    first = rows.first.locator("td")
    cells = [first.nth(i).get_attribute("class") for i in range(first.count())]
    staged = cells[3 + 13 - 2]  # the night staged, two before the last column
    assert staged in ("c complete", "c partial", "c insufficient")
    assert cells[-1] == cells[-2] == "c missing"  # two enrolled nights with nothing recorded
    assert "silent since" in first.nth(2).inner_text()  # assigned now, nothing live for months
    never = rows.nth(3).locator("td")
    assert never.first.inner_text() == "s004" and never.nth(3 + 13 - 2).get_attribute("class") == "c missing"
    assert "missing" in page.locator("#count").inner_text()
    # device health: s001's strap reads a low battery, s002's bed lost its link
    chips = {r: rows.nth(i).locator(".chip") for i, r in enumerate(("s001", "s002", "s003"))}
    low = chips["s001"].filter(has_text="strap of s001")
    assert "low-battery" in (low.get_attribute("class") or "") and "battery low" in low.inner_text()
    assert f"{battery_at(LOW_STRAP, HOURS - 1 / 60)}%" in low.inner_text()
    assert "low-battery" not in (chips["s003"].first.get_attribute("class") or "")
    unworn = chips["s003"].filter(has_text="strap of s003")
    assert "not-worn" in (unworn.get_attribute("class") or "") and "not worn" in unworn.inner_text()
    _shot(page, "compliance")


def test_the_registry_page_lists_who_wears_what(page: Any, home: tuple[Settings, str], address: str) -> None:
    settings, night = home
    register(settings, night)
    page.goto(f"{address}/registry")
    page.wait_for_function("document.body.dataset.ready === '1'")
    assert page.locator("#subjects tbody tr").count() == 4
    devices = page.locator("#devices tbody tr")
    assert devices.count() == 8
    bed = next(devices.nth(i).inner_text() for i in range(devices.count()) if "bed-s001" in devices.nth(i).inner_text())
    assert "bed of s001" in bed and "s001" in bed and "ago" in bed  # last seen from the live store
    row = {devices.nth(i).locator("td").first.inner_text(): devices.nth(i) for i in range(devices.count())}
    strap = row[LOW_STRAP].locator("td")
    assert strap.nth(4).inner_text() == f"{battery_at(LOW_STRAP, HOURS - 1 / 60)}%"
    assert "alerting" in (strap.nth(4).get_attribute("class") or "") and "battery_low" in strap.nth(8).inner_text()
    silent = row[SILENT_BED].locator("td")
    assert silent.nth(5).inner_text() == "lost" and "device_silent" in silent.nth(8).inner_text()
    assert row["bed-s003"].locator("td").nth(8).inner_text() == "\N{EN DASH}"  # no technical alert
    unworn = row[UNWORN_STRAP].locator("td")
    assert unworn.nth(6).inner_text() == "no" and "not_worn" in unworn.nth(8).inner_text()
    assert page.locator("#assignments tbody tr").count() == 8
    _shot(page, "registry")


@pytest.mark.parametrize(
    ("role", "lands", "shown", "hidden"),
    [
        ("admin", "/", {"Cohort", "Nights", "Compliance", "Registry", "Audit"}, set()),
        ("clinician", "/", {"Cohort", "Alerts", "Nights", "Compliance", "Registry"}, {"Audit"}),
        ("researcher", "/nights", {"Nights"}, {"Cohort", "Alerts", "Compliance", "Registry", "Audit"}),
        ("viewer", "/", {"Cohort", "Alerts"}, {"Nights", "Compliance", "Registry", "Audit"}),
    ],
)
def test_each_role_signs_in_through_the_page_and_sees_its_own_menu(
    browser: Any, home: tuple[Settings, str], address: str, role: str, lands: str, shown: set[str], hidden: set[str]
) -> None:
    from local.accounts import LocalAccounts

    settings, night = home
    register(settings, night)
    accounts = LocalAccounts(settings.paths.accounts_db)
    name = f"{role}-b"
    if accounts.get_user(name) is None:
        accounts.add_user(name, role, ["*"], now_ms=0)
    password = accounts.reset_password(name)
    accounts.close()
    context = browser.new_context(viewport={"width": 1280, "height": 700}, bypass_csp=True)
    p = context.new_page()
    p.goto(f"{address}/compliance")  # not signed in: to the sign-in page, which remembers where
    p.wait_for_url("**/login?next=**")
    p.fill("input[name=name]", name)
    p.fill("input[name=password]", "wrong password")
    p.click("button[type=submit]")
    p.wait_for_function("document.getElementById('login-error').textContent.length > 0")
    assert "do not match" in p.locator("#login-error").inner_text()
    if role == "admin":
        _shot(p, "login")
    p.fill("input[name=password]", password)
    p.click("button[type=submit]")
    p.wait_for_function("document.getElementById('who').textContent.length > 0")
    expected = "/compliance" if role in ("admin", "clinician") else lands  # where they were going, if they may
    assert p.url.endswith(expected)
    assert f"{name} ({role})" in p.locator("#who").inner_text()
    nav = {a.inner_text(): a.is_visible() for a in p.locator("header.bar a").all() if a.inner_text() != "sleepstack"}
    assert {k for k in shown if nav.get(k)} == shown and not {k for k in hidden if nav.get(k)}
    if role == "admin":
        p.goto(f"{address}/audit")
        p.wait_for_function("document.body.dataset.ready === '1'")
        assert "The chain verifies" in p.locator("#chain").inner_text()
        assert p.locator("#audit tbody tr").count() > 0
        _shot(p, "audit")
    p.click("#sign-out")
    p.wait_for_url("**/login")
    context.close()


def test_a_clinician_acknowledges_alerts_by_link_and_on_the_alerts_page(
    browser: Any, home: tuple[Settings, str], address: str
) -> None:
    """The message's link asks for a sign-in, shows the alert, and its button acknowledges it; the
    alerts page's button acknowledges another; both show who and when (docs/clinician.md)."""
    from access.ack_links import sign_link
    from core.live.alerts import Run, alert_doc
    from local.accounts import LocalAccounts
    from local.alert_acks import AlertAcks
    from sleepstack.dashboard import ack_key

    settings, night = home
    register(settings, night)
    accounts = LocalAccounts(settings.paths.accounts_db)
    if accounts.get_user("dr.ward") is None:
        accounts.add_user("dr.ward", "clinician", ["*"], now_ms=0)
    password = accounts.reset_password("dr.ward")
    accounts.close()
    store, newest = _newest_epoch(settings, "s001")
    start = newest["epoch_start_ms"] + 120_000
    by_link, by_button = (
        alert_doc(
            subject_id="s001",
            device_id=device,
            source=source,
            kind=kind,
            run=Run(start, start + 40_000, value),
            min_s=10,
            threshold=threshold,
            closed=False,
        )
        for device, source, kind, value, threshold in (
            ("bed-s001", "bed", "breathing_pause", 24.0, 10.0),
            ("strap-s001", "strap", "hr_low", 38.0, 40.0),
        )
    )
    store.index([("alerts", by_link), ("alerts", by_button)])
    store.close()
    link = sign_link(by_link["doc_id"], "dr.ward@example.org", int(time.time() * 1000) + 3_600_000, ack_key(settings))

    context = browser.new_context(viewport={"width": 1600, "height": 760}, bypass_csp=True)
    p = context.new_page()
    errors: list[str] = []
    p.on("pageerror", lambda e: errors.append(str(e)))
    _open_ack_link(p, address, link, "dr.ward", password)
    assert "breathing_pause" in p.locator("#ack-alert").inner_text()
    acks = AlertAcks(settings.paths.alert_acks_db)
    assert acks.get(by_link["doc_id"]) is None  # opening the link changed nothing
    p.click("#ack-confirm")
    p.wait_for_function("document.getElementById('ack-done').textContent.length > 0")
    assert p.locator("#ack-heading").inner_text() == "Alert acknowledged"
    assert p.locator("#ack-done").inner_text().startswith("acknowledged by dr.ward at ")
    got = acks.get(by_link["doc_id"])
    assert got is not None and (got.by, got.via) == ("dr.ward", "link")

    p.goto(f"{address}/alerts")
    row = p.locator("#alerts tbody tr.open", has_text="hr_low").first
    row.locator("button.ack-button").wait_for(timeout=5_000)
    row.locator("button.ack-button").click()
    # this row's own cell (the link's row already reads "acknowledged by dr.ward")
    p.locator("#alerts tbody tr.open", has_text="hr_low").locator(
        "td.ack", has_text="acknowledged by dr.ward"
    ).first.wait_for(timeout=5_000)
    done = acks.get(by_button["doc_id"])
    assert done is not None and (done.by, done.via) == ("dr.ward", "dashboard")
    p.wait_for_function(  # both rows, after the page's next refresh, name who and how
        "[...document.querySelectorAll('#alerts td.ack')]"
        ".filter(td => td.textContent.startsWith('acknowledged by dr.ward')).length >= 2"
    )
    text = p.locator("#alerts tbody").inner_text()
    assert "(link)" in text and "(dashboard)" in text
    p.evaluate("window.scrollTo(0, 0)")
    _shot(p, "alert-acknowledged", full_page=False)  # the newest rows: the two acknowledged
    acks.close()
    context.close()
    assert not errors, f"script errors on the page: {errors}"


ROUTES = """\
routes:
  - name: ward-clinical
    category: clinical
    tiers:
      - recipients:
          - email: night-nurse@ward.example.org
      - escalate_after_min: 5
        recipients:
          - email: registrar@ward.example.org
      - escalate_after_min: 15
        recipients:
          - email: consultant@ward.example.org
"""


def test_an_unacknowledged_alert_escalates_and_acknowledging_in_the_browser_stops_it(
    browser: Any, home: tuple[Settings, str], address: str, tmp_path: Path
) -> None:
    """Issue 28's "done when": the notifier, on a fake clock, e-mails tier 0 through a loopback
    SMTP server (STARTTLS, AUTH), escalates to tier 1 after 5 unacknowledged minutes; the
    registrar opens the e-mail's link in Chromium, signs in and acknowledges; 30 more minutes
    on the clock send nothing (tier 2 never goes)."""
    import dataclasses
    import re

    from core.live.alerts import Run, alert_doc
    from local.accounts import LocalAccounts
    from sleepstack.notify.receivers import SmtpReceiver, self_signed_cert
    from sleepstack.wiring import notifier

    settings, night = home
    register(settings, night)
    accounts = LocalAccounts(settings.paths.accounts_db)
    if accounts.get_user("dr.reg") is None:
        accounts.add_user("dr.reg", "clinician", ["*"], now_ms=0)
    password = accounts.reset_password("dr.reg")
    accounts.close()
    store, newest = _newest_epoch(settings, "s002")
    start = newest["epoch_start_ms"] + 300_000
    doc = alert_doc(
        subject_id="s002",
        device_id="bed-s002",
        source="bed",
        kind="breathing_pause",
        run=Run(start, start + 30_000, 21.0),
        min_s=10,
        threshold=10.0,
        closed=False,
    )
    store.index([("alerts", doc)])
    store.close()

    cert = self_signed_cert(tmp_path)
    smtp = SmtpReceiver(cert, "relay", "relay-secret").start()
    routes = tmp_path / "routes.yaml"
    routes.write_text(ROUTES)
    wired = dataclasses.replace(
        settings,
        alert_routes=routes,
        smtp_host="127.0.0.1",
        smtp_port=smtp.port,
        smtp_from="sleepstack@ward.example.org",
        smtp_user="relay",
        smtp_password="relay-secret",  # noqa: S106 - the loopback test relay's
        smtp_starttls=True,
        smtp_cafile=str(cert[0]),
        dashboard_base=address,
    )
    clock = [time.time()]
    n = notifier(wired, clock=lambda: clock[0])
    assert n is not None

    def ours() -> list[dict[str, Any]]:  # the home's other open alerts are notified too
        return [r for r in n.outbox.rows(100_000) if r["alert_id"] == doc["doc_id"]]

    def step(minutes: float) -> list[str]:
        clock[0] += minutes * 60
        before = len(smtp.messages)
        n.plan()
        while n.send():
            pass
        keys = {r["key"] for r in ours()}
        return [rcpt for key, rcpt, _, _ in smtp.messages[before:] if key in keys]

    try:
        assert step(0) == ["night-nurse@ward.example.org"]
        assert step(4.9) == []  # not yet five minutes
        assert step(0.2) == ["registrar@ward.example.org"]  # unacknowledged: the next tier
        (text,) = [
            t for key, rcpt, _, t in smtp.messages if rcpt.startswith("registrar") and key in {r["key"] for r in ours()}
        ]
        assert "(escalation, tier 1)" in text and "Who: bed of s002" in text and "Value" not in text
        (link,) = re.findall(r"/ack/(\S+)", text)

        context = browser.new_context(viewport={"width": 1280, "height": 640}, bypass_csp=True)
        p = context.new_page()
        errors: list[str] = []
        p.on("pageerror", lambda e: errors.append(str(e)))
        _open_ack_link(p, address, link, "dr.reg", password)
        p.click("#ack-confirm")
        p.wait_for_function("document.getElementById('ack-done').textContent.length > 0")
        assert p.locator("#ack-done").inner_text().startswith("acknowledged by dr.reg at ")
        _shot(p, "alert-escalation-stopped", full_page=False)
        context.close()
        assert not errors, f"script errors on the page: {errors}"

        assert step(10) == []  # 15.1 min: the consultant's tier would be due; acknowledged, nothing
        assert step(30) == []
        assert sorted(r["tier"] for r in ours()) == [0, 1]
    finally:
        smtp.stop()
