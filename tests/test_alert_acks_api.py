"""Acknowledging alerts over HTTP: the API, the dashboard's session, the one-click link, the audit."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from access.ack_links import sign_link
from access.audit import AuditLog
from core.live.alerts import Run, alert_doc
from core.registry import Subject
from local.accounts import LocalAccounts
from local.alert_acks import AlertAcks
from local.live_store import LocalLiveStore
from local.registry import LocalRegistry
from serving.web.auth import CSRF_COOKIE
from sleepstack.dashboard import ack_key, build_app
from sleepstack.settings import Settings

T0 = 1_780_000_000_000
WARD = "ward-a"


def _now() -> int:
    return int(time.time() * 1000)


def _alert(subject: str, kind: str, *, closed: bool = False) -> dict[str, Any]:
    return alert_doc(
        subject_id=subject,
        device_id=f"bed-{subject}",
        source="bed",
        kind=kind,
        run=Run(T0, T0 + 30_000, 12.0),
        min_s=10,
        threshold=10.0,
        closed=closed,
    )


#: s001 in ward-a (an open breathing pause, a closed one); s003 in ward-b
ALERTS = {
    "open": _alert("s001", "breathing_pause"),
    "closed": _alert("s001", "hr_high", closed=True),
    "hidden": _alert("s003", "breathing_pause"),
}


@pytest.fixture
def home(tmp_path: Path) -> Iterator[tuple[Settings, dict[str, str], dict[str, str]]]:
    """A home with three alerts in the live store, two subjects in two wards, a user of each role."""
    settings = Settings.from_env({"SLEEPSTACK_HOME": str(tmp_path / "home"), "SLEEPSTACK_ENV": "test"})
    live = LocalLiveStore(settings.paths.live_db)
    live.index([("alerts", a) for a in ALERTS.values()])
    reg = LocalRegistry(settings.paths.registry_db)
    for sid, group in (("s001", WARD), ("s003", "ward-b")):
        reg.add_subject(Subject(sid, enrolled_ms=T0 - 86_400_000, groups=(group,)))
    reg.close()
    accounts = LocalAccounts(settings.paths.accounts_db)
    tokens, passwords = {}, {}
    for role in ("admin", "clinician", "researcher", "viewer"):
        _, passwords[role] = accounts.add_user(role, role, ["*"] if role == "admin" else [WARD], now_ms=_now())
        tokens[role] = accounts.issue_token(role, days=1, label="test", now_ms=_now())
    accounts.close()
    yield settings, tokens, passwords


def _client(settings: Settings) -> TestClient:
    return TestClient(build_app(settings), base_url="http://127.0.0.1", follow_redirects=False)


def _bearer(tokens: dict[str, str], role: str) -> dict[str, str]:
    return {"authorization": f"Bearer {tokens[role]}"}


def _sign_in(c: TestClient, name: str, password: str) -> str:
    """Sign in (as the login page does: with the current session's CSRF token, if there is one)."""
    headers = {"x-csrf-token": c.cookies[CSRF_COOKIE]} if CSRF_COOKIE in c.cookies else {}
    assert c.post("/api/session", json={"name": name, "password": password}, headers=headers).status_code == 200
    return str(c.cookies[CSRF_COOKIE])


def test_the_api_acknowledges_once_and_alerts_carry_the_ack(home: Any) -> None:
    settings, tokens, _ = home
    open_id, hidden_id = ALERTS["open"]["doc_id"], ALERTS["hidden"]["doc_id"]
    with _client(settings) as c:
        before = c.get("/api/alerts", headers=_bearer(tokens, "clinician")).json()["alerts"]
        assert {a["doc_id"]: a["ack"] for a in before} == {open_id: None, ALERTS["closed"]["doc_id"]: None}
        t_before = _now()
        resp = c.post(f"/api/alerts/{open_id}/ack", headers=_bearer(tokens, "clinician"))
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert (body["alert_id"], body["subject_id"], body["by"], body["via"]) == (open_id, "s001", "clinician", "api")
        assert t_before <= body["at"] <= _now()
        again = c.post(f"/api/alerts/{open_id}/ack", headers=_bearer(tokens, "admin")).json()
        assert again == body  # the first acknowledgement wins
        seen = c.get("/api/alerts", headers=_bearer(tokens, "viewer")).json()["alerts"]
        after = {a["doc_id"]: a["ack"] for a in seen}
        assert after[open_id] == {"by": "clinician", "via": "api", "at": body["at"]}
        # out of the clinician's groups, or no such alert: 404 alike; a viewer may not: 403
        for alert_id in (hidden_id, "0" * 32):
            miss = c.post(f"/api/alerts/{alert_id}/ack", headers=_bearer(tokens, "clinician"))
            assert miss.status_code == 404 and "in your groups" in miss.text
        assert c.post(f"/api/alerts/{hidden_id}/ack", headers=_bearer(tokens, "viewer")).status_code == 403
        assert c.post(f"/api/alerts/{hidden_id}/ack", headers=_bearer(tokens, "researcher")).status_code == 403
        assert c.post(f"/api/alerts/{hidden_id}/ack").status_code == 401
        assert c.post("/api/alerts/bad%20id/ack", headers=_bearer(tokens, "admin")).status_code == 422
    assert AlertAcks(settings.paths.alert_acks_db).get(hidden_id) is None
    entries = [e for e in AuditLog(settings.paths.audit_log).find() if e["route"] == "/api/alerts/{alert_id}/ack"]
    assert [(e["user"], e["subjects"], e["outcome"]) for e in entries[:2]] == [
        ("clinician", ["s001"], 200),
        ("admin", ["s001"], 200),
    ]
    assert AuditLog(settings.paths.audit_log).verify().ok


def test_the_dashboards_session_acknowledges_with_csrf_via_dashboard(home: Any) -> None:
    settings, _, passwords = home
    open_id = ALERTS["open"]["doc_id"]
    with _client(settings) as c:
        csrf = _sign_in(c, "clinician", passwords["clinician"])
        assert c.post(f"/api/alerts/{open_id}/ack").status_code == 403  # no CSRF header: refused
        assert AlertAcks(settings.paths.alert_acks_db).get(open_id) is None
        resp = c.post(f"/api/alerts/{open_id}/ack", headers={"x-csrf-token": csrf})
        assert resp.status_code == 200 and resp.json()["via"] == "dashboard"


def _link(settings: Settings, alert: str = "open", *, expires_ms: int | None = None) -> str:
    exp = expires_ms if expires_ms is not None else _now() + 3_600_000
    return sign_link(ALERTS[alert]["doc_id"], "dr.ward@example.org", exp, ack_key(settings))


def test_a_link_asks_for_a_sign_in_and_its_get_changes_nothing(home: Any) -> None:
    settings, _, passwords = home
    token = _link(settings)
    with _client(settings) as c:
        resp = c.get(f"/ack/{token}")  # not signed in: to the sign-in page and back
        assert resp.status_code == 303 and resp.headers["location"] == f"/login?next=/ack/{token}"
        assert c.post(f"/ack/{token}").status_code == 303  # nor may a POST acknowledge without one
        _sign_in(c, "viewer", passwords["viewer"])  # a role that may not acknowledge: sign in as one who may
        resp = c.get(f"/ack/{token}")
        assert resp.status_code == 303 and resp.headers["location"] == f"/login?next=/ack/{token}"
        csrf = _sign_in(c, "clinician", passwords["clinician"])
        for _ in range(3):  # a scanner fetching the link, twice, then the person: nothing acknowledged
            page = c.get(f"/ack/{token}")
            assert page.status_code == 200 and "Acknowledge this alert?" in page.text and "breathing_pause" in page.text
        assert AlertAcks(settings.paths.alert_acks_db).get(ALERTS["open"]["doc_id"]) is None
        assert c.post(f"/ack/{token}").status_code == 403  # a POST without the CSRF header
        done = c.post(f"/ack/{token}", headers={"x-csrf-token": csrf})
        assert done.status_code == 200, done.text
        body = done.json()
        assert (body["by"], body["via"], body["subject_id"]) == ("clinician", "link", "s001")
        assert body["line"].startswith("acknowledged by clinician at ") and body["line"].endswith("(link)")
        # used: the second POST and any later GET say so
        used = c.post(f"/ack/{token}", headers={"x-csrf-token": csrf})
        assert used.status_code == 410 and "used" in used.json()["detail"]
        page = c.get(f"/ack/{token}")
        assert page.status_code == 410 and "Link already used" in page.text and "acknowledged by clinician" in page.text
        # another link to the same alert: shown as acknowledged already, with who and when
        again = c.get(f"/ack/{_link(settings)}")
        assert again.status_code == 200 and "Already acknowledged" in again.text and "(link)" in again.text
    routes = [(e["method"], e["route"], e["subjects"], e["outcome"]) for e in AuditLog(settings.paths.audit_log).find()]
    assert ("POST", "/ack/{token}", ["s001"], 200) in routes
    assert ("GET", "/ack/{token}", ["s001"], 200) in routes


def test_expired_forged_and_out_of_scope_links_get_a_page_and_a_4xx(home: Any) -> None:
    settings, _, passwords = home
    good = _link(settings)
    body, sig = good.split(".")
    forged = _link(settings, "hidden").split(".")[0] + "." + sig
    other_key = sign_link(ALERTS["open"]["doc_id"], "dr.ward", _now() + 60_000, b"k" * 32)
    with _client(settings) as c:
        csrf = _sign_in(c, "clinician", passwords["clinician"])
        expired = _link(settings, expires_ms=_now() - 1)
        page = c.get(f"/ack/{expired}")
        assert page.status_code == 410 and "Link expired" in page.text
        assert c.post(f"/ack/{expired}", headers={"x-csrf-token": csrf}).status_code == 410
        for bad in (forged, other_key, "garbage", body + "." + sig[:-4]):
            page = c.get(f"/ack/{bad}")
            assert page.status_code == 400 and "Link not valid" in page.text, bad
            assert c.post(f"/ack/{bad}", headers={"x-csrf-token": csrf}).status_code == 400
        hidden = _link(settings, "hidden")  # genuine, but the subject is not in the clinician's ward
        page = c.get(f"/ack/{hidden}")
        assert page.status_code == 404 and "in your groups" in page.text and "s003" not in page.text
        assert c.post(f"/ack/{hidden}", headers={"x-csrf-token": csrf}).status_code == 404
    acks = AlertAcks(settings.paths.alert_acks_db)
    assert acks.acknowledged(a["doc_id"] for a in ALERTS.values()) == {}
    # the out-of-scope attempt did not use the link up: the admin (every group) still can
    with _client(settings) as c:
        csrf = _sign_in(c, "admin", passwords["admin"])
        assert c.post(f"/ack/{hidden}", headers={"x-csrf-token": csrf}).status_code == 200
