"""Accounts, roles and the access audit: every route for every role, CSRF, throttling, the chain."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from access.accounts import FAILURE_WINDOW_MS, MAX_FAILURES, SESSION_IDLE_MS, SESSION_MAX_MS
from access.ack_links import sign_link
from access.audit import AuditLog
from access.roles import GRANTS, Permission, Role
from core.registry import Subject
from local.accounts import LocalAccounts
from serving.web.access import POLICY, rule_of
from serving.web.auth import CSRF_COOKIE, SESSION_COOKIE, Gate, RateLimit
from sleepstack.cli import main
from sleepstack.dashboard import ack_key, build_app, token
from sleepstack.settings import Settings
from tests.dashboard_helpers import fill_home, register

T0 = 1_767_651_000_000
WARD = "ward-a"
#: s001 and s002 are in ward-a, s003 in ward-b: a ward-a user must never see s003
HIDDEN = "s003"


def _app_routes(app: Any) -> list[tuple[str, str]]:
    """(method, template) of every route the app serves, through its included routers."""
    while not hasattr(app, "routes"):
        app = app.app
    out = []
    todo = list(app.routes)
    while todo:
        r = todo.pop()
        included = getattr(r, "original_router", None)  # FastAPI keeps an included router whole
        if included is not None:
            todo += included.routes
            continue
        out += [(m, r.path) for m in sorted(getattr(r, "methods", None) or ()) if m != "HEAD"]
    return out


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, str, dict[str, str]]:
    """A home with three subjects' nights, the registry with groups, and a user of each role."""
    settings, night = fill_home(tmp_path_factory.mktemp("access"))
    register(settings, night)
    from local.registry import LocalRegistry

    reg = LocalRegistry(settings.paths.registry_db)
    for sid in ("s001", "s002", "s003", "s004"):
        s = reg.get_subject(sid)
        assert s is not None
        groups = (WARD,) if sid in ("s001", "s002") else ("ward-b",)
        reg.update_subject(Subject.from_dict({**s.to_dict(), "groups": groups}), at_ms=T0)
    reg.close()
    accounts = LocalAccounts(settings.paths.accounts_db)
    tokens = {}
    for role in Role:
        accounts.add_user(role.value, role.value, ["*"] if role is Role.ADMIN else [WARD], now_ms=T0)
        tokens[role.value] = accounts.issue_token(role.value, days=30, label="test", now_ms=_now())
    accounts.close()
    return settings, night, tokens


def _now() -> int:
    import time

    return int(time.time() * 1000)


@pytest.fixture(scope="module")
def client(home: tuple[Settings, str, dict[str, str]]) -> Iterator[TestClient]:
    with TestClient(build_app(home[0]), base_url="http://127.0.0.1", follow_redirects=False) as c:
        yield c


def test_every_route_is_declared_in_the_policy_and_the_policy_names_no_other(
    client: TestClient,
) -> None:
    routes = set(_app_routes(client.app))
    assert routes == set(POLICY), (sorted(routes - set(POLICY)), sorted(set(POLICY) - routes))
    assert rule_of("HEAD", "/") == rule_of("GET", "/")


def _ack_urls(settings: Settings, alert_id: str) -> list[tuple[str, str, dict[str, Any] | None]]:
    """The acknowledgement routes for an alert: the API's, and a fresh one-click link's page and button."""
    link = sign_link(alert_id, "dr.ward@example.org", _now() + 3_600_000, ack_key(settings))
    return [
        ("POST", f"/api/alerts/{alert_id}/ack", None),
        ("GET", f"/ack/{link}", None),
        ("POST", f"/ack/{link}", None),
    ]


def _urls(night: str, subject: str) -> list[tuple[str, str, dict[str, Any] | None]]:
    """(method, url, body) for every route, naming ``subject`` where a route takes one."""
    s, n = subject, night
    start = 0
    return [
        ("GET", "/", None),
        ("GET", f"/subjects/{s}", None),
        ("GET", "/alerts", None),
        ("GET", "/nights", None),
        ("GET", f"/nights/{s}/{n}", None),
        ("GET", f"/reports/{s}/{n}.html", None),
        ("GET", "/compliance", None),
        ("GET", "/registry", None),
        ("GET", "/audit", None),
        ("GET", "/api/me", None),
        ("GET", "/api/openapi.json", None),
        ("GET", "/api/subjects", None),
        ("GET", f"/api/subjects/{s}", None),
        ("GET", f"/api/subjects/{s}/vitals?start_ms={start}&end_ms={start + 1}", None),
        ("GET", f"/api/subjects/{s}/samples?start_ms={start}&end_ms={start + 1}", None),
        ("GET", "/api/alerts", None),
        ("GET", f"/api/alerts?subject_id={s}", None),
        ("GET", "/api/alerts/counts", None),
        ("GET", "/api/nights", None),
        ("GET", f"/api/nights?subject_id={s}", None),
        ("GET", f"/api/nights/{s}/{n}", None),
        ("GET", f"/api/nights/{s}/{n}/epochs", None),
        ("GET", f"/api/compliance?until={n}", None),
        ("GET", "/api/registry/subjects", None),
        ("GET", f"/api/registry/subjects/{s}", None),
        ("GET", "/api/registry/devices", None),
        ("GET", "/api/registry/assignments", None),
        ("GET", "/api/audit", None),
        ("GET", f"/api/export/{s}?format=fhir&from={n}&to={n}", None),
        ("PATCH", f"/api/registry/subjects/{s}", {"why": "matrix"}),
    ]


_NEEDS = {
    "/": Permission.LIVE,
    "/subjects": Permission.LIVE,
    "/alerts": Permission.LIVE,
    "/api/subjects": Permission.LIVE,
    "/api/alerts": Permission.LIVE,
    "/nights": Permission.NIGHTS,
    "/reports": Permission.NIGHTS,
    "/api/nights": Permission.NIGHTS,
    "/compliance": Permission.COMPLIANCE,
    "/api/compliance": Permission.COMPLIANCE,
    "/registry": Permission.REGISTRY_READ,
    "/api/registry": Permission.REGISTRY_READ,
    "/audit": Permission.AUDIT,
    "/api/audit": Permission.AUDIT,
    "/api/me": Permission.SIGNED_IN,
    "/api/export": Permission.EXPORT,
    "/api/openapi.json": Permission.SIGNED_IN,
}


def _need(method: str, url: str) -> Permission:
    if url.startswith("/ack/") or url.endswith("/ack"):
        return Permission.ACKNOWLEDGE  # the link's GET: a role without it is sent to sign in (303)
    if method != "GET":
        return Permission.REGISTRY_EDIT
    path = url.split("?", maxsplit=1)[0]
    key = max(
        (k for k in _NEEDS if path == k or path.startswith(k.rstrip("/") + "/") or (k == "/" and path == "/")), key=len
    )
    return _NEEDS[key]


def _gate(client: TestClient) -> Gate:
    app: Any = client.app
    while not isinstance(app, Gate):
        app = app.app
    return app


@pytest.mark.parametrize("role", [*(r.value for r in Role), None])
def test_the_role_matrix(client: TestClient, home: tuple[Settings, str, dict[str, str]], role: str | None) -> None:
    """Every route for every role and for no sign-in: the status, and no out-of-scope subject in any body."""
    settings, night, tokens = home
    headers = {"authorization": f"Bearer {tokens[role]}"} if role else {}
    admin = {"authorization": f"Bearer {tokens['admin']}"}
    for subject in ("s001", HIDDEN):
        _gate(client).limits = RateLimit()  # every route twice is more than a burst: the limit has its own test
        alerts = client.get(f"/api/alerts?subject_id={subject}", headers=admin).json()["alerts"]
        assert alerts, f"the matrix needs an alert of {subject}"
        ack_urls = _ack_urls(settings, alerts[0]["doc_id"])
        for method, url, body in _urls(night, subject) + ack_urls:
            resp = client.request(method, url, headers=headers, json=body)
            need = _need(method, url)
            where = f"{role} {method} {url}"
            if role is None:
                assert resp.status_code == (401 if url.startswith("/api/") else 303), where
                continue
            granted = need in GRANTS[Role(role)]
            scoped_out = (role != "admin" and subject == HIDDEN and f"/{HIDDEN}" in url) or f"={HIDDEN}" in url
            scoped_out |= subject == HIDDEN and (method, url, body) in ack_urls
            if not granted and method == "GET" and url.startswith("/ack/"):
                assert resp.status_code == 303 and resp.headers["location"].startswith("/login?next=/ack/"), where
            elif not granted:
                assert resp.status_code == 403, where
            elif scoped_out and role != "admin":
                assert resp.status_code == 404 and "in your groups" in resp.text, where
            else:
                assert resp.status_code in (200, 404), (where, resp.status_code, resp.text[:200])
            if role != "admin":
                assert HIDDEN not in resp.text.replace(f"/{HIDDEN}", "").replace(f"={HIDDEN}", ""), where


def test_a_scoped_clinician_sees_exactly_their_ward(
    client: TestClient, home: tuple[Settings, str, dict[str, str]]
) -> None:
    _, night, tokens = home
    h = {"authorization": f"Bearer {tokens['clinician']}"}
    assert [s["subject_id"] for s in client.get("/api/subjects", headers=h).json()["subjects"]] == ["s001", "s002"]
    assert {n["subject_id"] for n in client.get("/api/nights", headers=h).json()["nights"]} == {"s001", "s002"}
    grid = client.get("/api/compliance", params={"until": night}, headers=h).json()
    assert [r["subject_id"] for r in grid["subjects"]] == ["s001", "s002"]
    devices = {d["address"] for d in client.get("/api/registry/devices", headers=h).json()}
    assert devices == {"strap-s001", "bed-s001", "strap-s002", "bed-s002"}
    admin = {"authorization": f"Bearer {tokens['admin']}"}
    assert len(client.get("/api/subjects", headers=admin).json()["subjects"]) == 3


def test_sign_in_sessions_and_csrf(home: tuple[Settings, str, dict[str, str]]) -> None:
    settings, _, _ = home
    accounts = LocalAccounts(settings.paths.accounts_db)
    _, password = accounts.add_user("carol", "admin", ["*"], now_ms=_now())
    accounts.close()
    with TestClient(build_app(settings), base_url="http://127.0.0.1", follow_redirects=False) as c:
        assert c.post("/api/session", data={"name": "carol", "password": password}).status_code in (415, 422)
        assert (
            c.post(
                "/api/session", json={"name": "carol", "password": password}, headers={"origin": "https://evil.example"}
            ).status_code
            == 403
        )
        assert c.post("/api/session", json={"name": "carol", "password": "wrong"}).status_code == 401
        signed = c.post("/api/session", json={"name": "carol", "password": password})
        assert signed.status_code == 200 and signed.json()["role"] == "admin"
        cookies = signed.headers.get_list("set-cookie")
        session = next(x for x in cookies if x.startswith(SESSION_COOKIE))
        assert "HttpOnly" in session and "SameSite=Strict" in session and "Max-Age" in session
        csrf = c.cookies[CSRF_COOKIE]
        assert c.get("/api/me").json()["name"] == "carol"
        new = {"subject_id": "s900", "groups": [WARD]}
        assert c.post("/api/registry/subjects", json=new).status_code == 403  # no CSRF header
        assert c.post("/api/registry/subjects", json=new, headers={"x-csrf-token": "guess"}).status_code == 403
        assert c.post("/api/registry/subjects", json=new, headers={"x-csrf-token": csrf}).status_code == 201
        assert c.delete("/api/session", headers={"x-csrf-token": csrf}).status_code == 204
        assert c.get("/api/me").status_code == 401  # signed out: the session is gone


def test_sign_in_is_throttled_per_account_with_retry_after(home: tuple[Settings, str, dict[str, str]]) -> None:
    settings, _, _ = home
    accounts = LocalAccounts(settings.paths.accounts_db)
    _, password = accounts.add_user("dave", "viewer", [WARD], now_ms=_now())
    _, other = accounts.add_user("erin", "viewer", [WARD], now_ms=_now())
    accounts.close()
    with TestClient(build_app(settings), base_url="http://127.0.0.1") as c:
        for _ in range(MAX_FAILURES):
            assert c.post("/api/session", json={"name": "dave", "password": "nope"}).status_code == 401
        held = c.post("/api/session", json={"name": "dave", "password": password})  # right, but held back
        assert held.status_code == 429 and 0 < int(held.headers["retry-after"]) <= FAILURE_WINDOW_MS // 1000
        assert "too many failed sign-ins for this account" in held.json()["detail"]
        assert c.post("/api/session", json={"name": "erin", "password": other}).status_code == 200  # others unaffected


def test_sessions_expire_idle_and_in_all_and_tokens_expire_and_revoke(tmp_path: Path) -> None:
    store = LocalAccounts(tmp_path / "a.sqlite")
    _, pw = store.add_user("fay", "clinician", [WARD], now_ms=T0)
    s = store.sign_in("fay", pw, address="x", now_ms=T0)
    assert store.session(s.secret, now_ms=T0 + SESSION_IDLE_MS - 1) is not None  # used: its idle expiry moves on
    assert store.session(s.secret, now_ms=T0 + 2 * SESSION_IDLE_MS - 2) is not None
    assert store.session(s.secret, now_ms=T0 + SESSION_MAX_MS) is None  # 12 h in all, however used
    s = store.sign_in("fay", pw, address="x", now_ms=T0)
    assert store.session(s.secret, now_ms=T0 + SESSION_IDLE_MS + 1) is None  # idle
    tok = store.issue_token("fay", days=1, label="", now_ms=T0)
    assert store.token_user(tok, now_ms=T0 + 1) is not None and store.token_user(tok, now_ms=T0 + 86_400_000) is None
    tok = store.issue_token("fay", days=5, label="", now_ms=T0)
    (live,) = [t for t in store.tokens("fay") if t["expires_ms"] > T0 + 86_400_000]
    store.revoke_token("fay", live["id"], now_ms=T0 + 5)
    assert store.token_user(tok, now_ms=T0 + 10) is None
    s = store.sign_in("fay", pw, address="x", now_ms=T0)
    store.set_disabled("fay", True)
    assert store.session(s.secret, now_ms=T0 + 1) is None  # disabled: at once
    stored = b"".join(f.read_bytes() for f in tmp_path.glob("a.sqlite*"))
    assert pw.encode() not in stored and tok.encode() not in stored  # secrets are stored hashed only


def test_every_data_request_is_audited_and_the_chain_catches_tampering(
    client: TestClient, home: tuple[Settings, str, dict[str, str]], tmp_path: Path
) -> None:
    settings, night, tokens = home
    h = {"authorization": f"Bearer {tokens['clinician']}"}
    client.get(f"/api/nights/s002/{night}", headers=h)
    client.get("/api/subjects", headers=h)
    client.get(f"/api/subjects/{HIDDEN}", headers=h)  # refused: audited too, with its outcome
    client.get("/api/alerts/counts", headers=h)  # counts name no subject: not audited
    log = AuditLog(settings.paths.audit_log)
    mine = [e for e in log.entries() if e["user"] == "clinician"]
    night_entry = next(
        e for e in mine if e["route"] == "/api/nights/{subject_id}/{night}" and e["subjects"] == ["s002"]
    )
    assert night_entry["role"] == "clinician" and night_entry["via"] == "token" and night_entry["outcome"] == 200
    listing = next(e for e in mine if e["route"] == "/api/subjects")
    assert listing["subjects"] == ["s001", "s002"]  # what the body returned
    assert any(e["route"] == "/api/subjects/{subject_id}" and e["outcome"] == 404 for e in mine)
    assert not [e for e in mine if e["route"] == "/api/alerts/counts"]
    assert set(night_entry) == {
        "seq",
        "at_ms",
        "user",
        "role",
        "via",
        "method",
        "route",
        "subjects",
        "outcome",
        "prev",
        "hash",
    }
    copy = tmp_path / "audit" / "access.jsonl"  # tampered with on a copy
    copy.parent.mkdir()
    copy.write_text(settings.paths.audit_log.read_text())
    copy.with_name("access.jsonl.head").write_text(settings.paths.audit_log.with_name("access.jsonl.head").read_text())
    assert AuditLog(copy).verify().ok
    lines = copy.read_text().splitlines()
    edited = lines.copy()
    edited[1] = edited[1].replace('"user":"', '"user":"x', 1)  # who it was, changed
    copy.write_text("\n".join(edited) + "\n")
    check = AuditLog(copy).verify()
    assert not check.ok and any(p.startswith("line 2:") for p in check.problems)
    copy.write_text("\n".join(lines[:1] + lines[2:]) + "\n")  # an entry removed
    assert not AuditLog(copy).verify().ok
    copy.write_text("\n".join([lines[1], lines[0], *lines[2:]]) + "\n")  # two swapped
    assert not AuditLog(copy).verify().ok
    copy.write_text("\n".join(lines[:-1]) + "\n")  # the newest cut off: the head says so
    check = AuditLog(copy).verify()
    assert not check.ok and "cut off" in check.problems[-1]


def test_the_break_glass_token_is_audited_on_every_route(
    client: TestClient, home: tuple[Settings, str, dict[str, str]]
) -> None:
    settings, _, _ = home
    before = sum(1 for _ in AuditLog(settings.paths.audit_log).entries())
    client.get("/api/alerts/counts", headers={"authorization": f"Bearer {token(settings)}"})
    entries = list(AuditLog(settings.paths.audit_log).entries())
    assert len(entries) == before + 1
    assert entries[-1]["via"] == "break-glass" and entries[-1]["route"] == "/api/alerts/counts"


def test_the_cli_answers_who_looked_and_verify_fails_on_an_edit(
    home: tuple[Settings, str, dict[str, str]], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    settings, _, _ = home
    monkeypatch.setenv("SLEEPSTACK_HOME", str(settings.home))
    assert main(["audit", "verify"]) == 0
    assert "verifies" in capsys.readouterr().out
    assert main(["audit", "--subject", "s002", "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert found and all("s002" in e["subjects"] for e in found)
    path = settings.paths.audit_log
    text = path.read_text()
    path.write_text(text.replace('"subjects":["s002"]', '"subjects":["s001"]', 1))
    try:
        assert main(["audit", "verify"]) == 1
        assert "BROKEN" in capsys.readouterr().out
    finally:
        path.write_text(text)


def test_a_user_over_the_rate_limit_gets_429_and_others_do_not(
    home: tuple[Settings, str, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from serving.web import auth
    from serving.web.auth import BURST

    monkeypatch.setattr(auth, "_monotonic", lambda: 1000.0)  # no refill mid-burst, however slow the machine
    settings, _, tokens = home
    with TestClient(build_app(settings), base_url="http://127.0.0.1") as c:
        flood = {"authorization": f"Bearer {tokens['viewer']}"}
        codes = [c.get("/api/me", headers=flood).status_code for _ in range(int(BURST) + 20)]
        assert codes[: int(BURST) - 1] == [200] * (int(BURST) - 1) and codes[-1] == 429
        held = c.get("/api/me", headers=flood)
        assert held.status_code == 429 and int(held.headers["retry-after"]) >= 1 and "too many" in held.json()["detail"]
        assert c.get("/api/me", headers={"authorization": f"Bearer {tokens['clinician']}"}).status_code == 200


@pytest.mark.parametrize(
    ("method", "url", "kw", "status"),
    [
        (
            "POST",
            "/api/registry/subjects",
            {"content": b"{" * 70_000, "headers": {"content-type": "application/json"}},
            413,
        ),
        (
            "POST",
            "/api/registry/subjects",
            {"content": b"{not json", "headers": {"content-type": "application/json"}},
            422,
        ),
        ("GET", "/api/subjects/..%2F..%2Fetc", {}, 404),  # no such route
        ("GET", "/api/nights/s001/2026-13-45", {}, 422),
        ("GET", "/api/subjects/s001/vitals?start_ms=x&end_ms=1", {}, 422),
    ],
)
def test_malformed_input_is_a_4xx_naming_the_problem(
    home: tuple[Settings, str, dict[str, str]], method: str, url: str, kw: dict[str, Any], status: int
) -> None:
    settings, _, tokens = home
    with TestClient(build_app(settings), base_url="http://127.0.0.1") as c:
        resp = c.request(
            method, url, headers={"authorization": f"Bearer {tokens['admin']}", **kw.pop("headers", {})}, **kw
        )
        assert resp.status_code == status and resp.json()["detail"]


def test_the_audit_ships_write_once_to_an_object_locked_bucket(tmp_path: Path) -> None:
    import boto3
    from moto import mock_aws

    log = AuditLog(tmp_path / "audit" / "access.jsonl")
    for k in range(3):
        log.append(
            at_ms=T0 + k,
            user="u",
            role="clinician",
            via="session",
            method="GET",
            route="/r",
            subjects=["s001"],
            outcome=200,
        )
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="audit", ObjectLockEnabledForBucket=True)
        s3.put_object_lock_configuration(
            Bucket="audit",
            ObjectLockConfiguration={
                "ObjectLockEnabled": "Enabled",
                "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 1}},
            },
        )

        def put(key: str, body: bytes) -> None:
            s3.put_object(Bucket="audit", Key=key, Body=body)

        assert log.ship(put) == (1, 3)
        assert log.ship(put) == (0, 0)  # nothing new
        log.append(
            at_ms=T0 + 9, user="u", role="clinician", via="session", method="GET", route="/r", subjects=[], outcome=200
        )
        assert log.ship(put) == (4, 4)
        keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="audit")["Contents"])
        assert keys == [
            "audit/000000000001-000000000003.jsonl",
            "audit/000000000004-000000000004.jsonl",
            "audit/head-000000000003.json",
            "audit/head-000000000004.json",
        ]
        shipped = [
            json.loads(line)
            for k in keys
            if k.endswith(".jsonl")
            for line in s3.get_object(Bucket="audit", Key=k)["Body"].read().splitlines()
        ]
        assert shipped == list(log.entries())  # the chain, whole, in the bucket
        version = s3.list_object_versions(Bucket="audit")["Versions"][0]
        with pytest.raises(Exception, match=r"AccessDenied|locked|retention|Retention"):
            s3.delete_object(Bucket="audit", Key=version["Key"], VersionId=version["VersionId"])


def test_an_export_from_the_dashboard_is_the_commands_file_and_is_audited(
    client: TestClient, home: tuple[Settings, str, dict[str, str]]
) -> None:
    import io
    import zipfile

    settings, night, tokens = home
    h = {"authorization": f"Bearer {tokens['researcher']}"}
    bundle = client.get(f"/api/export/s001?format=fhir&from={night}&to={night}", headers=h)
    assert bundle.status_code == 200 and bundle.headers["content-type"].startswith("application/fhir+json")
    body = bundle.json()
    assert body["resourceType"] == "Bundle" and body["entry"] and "s002" not in bundle.text
    tables = client.get("/api/export/s001?format=csv", headers=h)
    names = zipfile.ZipFile(io.BytesIO(tables.content)).namelist()
    assert tables.status_code == 200 and {n.split("/")[-1] for n in names} >= {"raw.csv", "epochs.csv", "nights.csv"}
    assert client.get("/api/export/s001?format=xls", headers=h).status_code == 422
    assert client.get("/api/export/s003?format=csv", headers=h).status_code == 404  # not in the researcher's ward
    viewer = {"authorization": f"Bearer {tokens['viewer']}"}
    assert client.get("/api/export/s001?format=csv", headers=viewer).status_code == 403
    last = [e for e in AuditLog(settings.paths.audit_log).entries() if e["route"] == "/api/export/{subject_id}"]
    assert [e["subjects"] for e in last[-4:-2]] == [["s001"], ["s001"]] and last[-1]["user"] == "viewer"
