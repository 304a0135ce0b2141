"""The dashboard's JSON API and pages over a store filled by replayed nights (FastAPI's TestClient)."""

from __future__ import annotations

import json
import logging
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from core.errors import ConfigError
from serving.web.auth import COOKIE
from sleepstack.dashboard import Listen, build_app, check_listen, read_token, token
from sleepstack.settings import Settings
from tests.dashboard_helpers import (
    HOURS,
    LOW_STRAP,
    SILENT_BED,
    SILENT_MIN,
    SUBJECTS,
    UNWORN_STRAP,
    battery_at,
    fill_home,
    night_records,
    register,
)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, str]:
    return fill_home(tmp_path_factory.mktemp("dashboard"))


@pytest.fixture(scope="module")
def client(home: tuple[Settings, str]) -> Iterator[TestClient]:
    settings, _ = home
    with TestClient(build_app(settings), base_url="http://127.0.0.1") as c:
        c.headers["authorization"] = f"Bearer {token(settings)}"
        yield c


@pytest.fixture(scope="module")
def anonymous(home: tuple[Settings, str]) -> Iterator[TestClient]:
    with TestClient(build_app(home[0]), base_url="http://127.0.0.1", follow_redirects=False) as c:
        yield c


def _night_bounds(client: TestClient, subject: str) -> tuple[int, int]:
    s = client.get(f"/api/subjects/{subject}").json()
    return s["night_start_ms"], s["night_end_ms"]


# --- access control ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/", 303),  # a page: to the sign-in page
        ("/nights/s001/2026-01-05", 303),
        ("/api/subjects", 401),
        ("/api/subjects/s001/vitals?start_ms=0&end_ms=1", 401),
        ("/api/openapi.json", 401),
    ],
)
def test_every_request_without_a_sign_in_is_refused(anonymous: TestClient, path: str, status: int) -> None:
    resp = anonymous.get(path)
    assert resp.status_code == status
    if status == 303:
        assert resp.headers["location"].startswith("/login?next=")
    assert "subject" not in resp.text.lower().replace("subjects", "")  # no data in the refusal
    assert anonymous.get(path, headers={"authorization": "Bearer " + "x" * 43}).status_code == status
    assert anonymous.get(path, headers={"authorization": "Bearer sst_" + "x" * 43}).status_code == status
    assert anonymous.get(path, headers={"cookie": f"{COOKIE}=wrong"}).status_code == status


def test_the_sign_in_page_and_its_assets_are_open_and_hold_no_data(anonymous: TestClient) -> None:
    for path in ("/login", "/static/app.js", "/static/app.css"):
        resp = anonymous.get(path)
        assert resp.status_code == 200 and "s001" not in resp.text


def test_the_token_in_the_address_becomes_a_cookie(home: tuple[Settings, str], anonymous: TestClient) -> None:
    tok = token(home[0])
    assert anonymous.get("/nights?token=wrong").status_code == 401
    resp = anonymous.get(f"/nights?subject_id=s001&token={tok}")
    assert resp.status_code == 303
    assert resp.headers["location"] == "/nights?subject_id=s001"  # the token leaves the address
    cookie = resp.headers["set-cookie"]
    assert f"{COOKIE}={tok}" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert anonymous.get("/api/subjects", headers={"cookie": f"{COOKIE}={tok}"}).status_code == 200


def test_the_token_is_random_per_home_owner_only_and_kept(tmp_path: Path) -> None:
    a = Settings.from_env({"SLEEPSTACK_HOME": str(tmp_path / "a")})
    b = Settings.from_env({"SLEEPSTACK_HOME": str(tmp_path / "b")})
    assert read_token(a) is None
    first = token(a)
    assert len(first) >= 43 and token(a) == first and token(b) != first
    mode = (tmp_path / "a" / "dashboard" / "token").stat().st_mode
    assert stat.S_IMODE(mode) == 0o600


def test_listening_off_loopback_needs_tls(tmp_path: Path) -> None:
    check_listen(Listen(host="127.0.0.1"))
    check_listen(Listen(host="::1"))
    with pytest.raises(ConfigError, match=r"--host 0\.0\.0\.0 is reachable from other machines.*--tls-cert"):
        check_listen(Listen(host="0.0.0.0"))  # noqa: S104 - the refusal under test
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    with pytest.raises(ConfigError, match="together"):
        check_listen(Listen(host="10.0.0.5", tls_cert=cert))
    with pytest.raises(ConfigError, match="is not a file"):
        check_listen(Listen(host="10.0.0.5", tls_cert=cert, tls_key=key))
    cert.write_text("x")
    key.write_text("x")
    check_listen(Listen(host="10.0.0.5", tls_cert=cert, tls_key=key))


def test_the_access_log_names_routes_not_subjects_or_tokens(
    home: tuple[Settings, str], client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    settings, night = home
    with caplog.at_level(logging.INFO, logger="sleepstack.dashboard"):
        client.get("/api/subjects/s002")
        client.get(f"/api/nights/s002/{night}/epochs")
        client.get(f"/subjects/s002?token={token(settings)}")
    lines = [r.getMessage() for r in caplog.records if r.name == "sleepstack.dashboard"]
    assert "GET /api/subjects/{subject_id} 200" in lines[0]
    assert any("/api/nights/{subject_id}/{night}/epochs" in line for line in lines)
    assert not [line for line in lines if "s002" in line or token(settings) in line or night in line]


# --- the API ----------------------------------------------------------------------------


def test_subjects_list_every_subject_with_its_latest_state(client: TestClient) -> None:
    subjects = client.get("/api/subjects").json()["subjects"]
    assert [s["subject_id"] for s in subjects] == list(SUBJECTS)
    for s in subjects:
        assert set(s["latest"]) == {"bed", "strap"}
        assert s["latest"]["bed"]["presence"] in (True, False)
        assert s["last_seen_ms"] == max(d["epoch_start_ms"] for d in s["latest"].values())
        assert isinstance(s["open_alerts"], int)


def test_a_subjects_vitals_between_two_times(client: TestClient) -> None:
    start, end = _night_bounds(client, "s001")
    body = client.get("/api/subjects/s001/vitals", params={"start_ms": start, "end_ms": end}).json()
    docs = body["vitals"]
    assert body["truncated"] is False and len(docs) > 400  # 2 h of 30-s epochs from two devices
    times = [d["epoch_start_ms"] for d in docs]
    assert times == sorted(times) and start <= times[0] and times[-1] < end
    assert {d["source"] for d in docs} == {"bed", "strap"} and {d["subject_id"] for d in docs} == {"s001"}
    half = client.get("/api/subjects/s001/vitals", params={"start_ms": times[100], "end_ms": times[200]}).json()
    assert [d["epoch_start_ms"] for d in half["vitals"]] == [t for t in times if times[100] <= t < times[200]]
    strap = client.get("/api/subjects/s001/vitals", params={"start_ms": start, "end_ms": end, "source": "strap"})
    assert {d["source"] for d in strap.json()["vitals"]} == {"strap"}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"start_ms": 10, "end_ms": 5}, "end_ms"),
        ({"start_ms": 0, "end_ms": 3 * 86_400_000}, "end_ms"),
        ({"end_ms": 5}, "start_ms"),
        ({"start_ms": "noon", "end_ms": 5}, "start_ms"),
        ({"start_ms": 0, "end_ms": 5, "source": "watch"}, "source"),
    ],
)
def test_bad_vitals_parameters_are_422_naming_the_field(client: TestClient, params: dict[str, Any], field: str) -> None:
    resp = client.get("/api/subjects/s001/vitals", params=params)
    assert resp.status_code == 422
    assert resp.json()["detail"][0]["loc"][-1] == field


@pytest.mark.parametrize(
    "path",
    [
        "/api/subjects/s001%27%20OR%20%271%27=%271/vitals?start_ms=0&end_ms=5",
        "/api/nights/s001/2026-1-5",
        "/api/nights/s001/2026-02-30",
        "/api/alerts?status=everything",
        "/api/alerts?subject_id=a%20b",
    ],
)
def test_malformed_ids_dates_and_filters_are_422(client: TestClient, path: str) -> None:
    assert client.get(path).status_code == 422


def test_unknown_ids_are_404(client: TestClient, home: tuple[Settings, str]) -> None:
    _, night = home
    assert client.get("/api/subjects/nobody").status_code == 404
    assert client.get("/api/subjects/nobody/vitals?start_ms=0&end_ms=5").status_code == 404
    assert client.get("/api/alerts?subject_id=nobody").status_code == 404
    assert client.get(f"/api/nights/nobody/{night}").status_code == 404
    assert client.get("/api/nights/s001/2020-01-01/epochs").status_code == 404
    assert client.get("/subjects/nobody").status_code == 404


def test_alert_episodes_open_and_closed_with_their_values(client: TestClient) -> None:
    alerts = client.get("/api/alerts").json()["alerts"]
    assert alerts, "the replayed nights with apnoea raise breathing-pause alerts"
    starts = [a["start_ms"] for a in alerts]
    assert starts == sorted(starts, reverse=True)
    closed = client.get("/api/alerts", params={"status": "closed", "subject_id": "s001"}).json()["alerts"]
    assert closed and all(a["status"] == "closed" and a["subject_id"] == "s001" for a in closed)
    assert all(a["end_ms"] >= a["start_ms"] for a in closed)
    # heart-rate and pause alerts carry their value (bpm, s); a bed exit or a lost contact has none
    assert all(a["value"] is not None for a in closed if a["kind"] in ("hr_high", "hr_low", "breathing_pause"))


def test_per_second_strap_samples_and_alert_counts(client: TestClient) -> None:
    start, _ = _night_bounds(client, "s002")
    first = client.get("/api/subjects/s002/vitals", params={"start_ms": start, "end_ms": start + 86_400_000})
    t0 = min(d["epoch_start_ms"] for d in first.json()["vitals"])
    body = client.get("/api/subjects/s002/samples", params={"start_ms": t0, "end_ms": t0 + 600_000}).json()
    times = [d["event_time_ms"] for d in body["samples"]]
    assert 500 <= len(times) <= 600 and times == sorted(times)  # 1 Hz for 10 minutes, less link drops
    assert all(30 <= d["hr_bpm"] <= 200 and d["device_id"] == "strap-s002" for d in body["samples"])
    too_long = client.get("/api/subjects/s002/samples", params={"start_ms": t0, "end_ms": t0 + 3 * 3_600_000})
    assert too_long.status_code == 422 and too_long.json()["detail"][0]["loc"][-1] == "end_ms"
    counts = client.get("/api/alerts/counts").json()["counts"]
    everything = client.get("/api/alerts", params={"limit": 10_000}).json()["alerts"]
    assert sum(c["count"] for c in counts) == len(everything)
    assert {(c["kind"], c["status"]) for c in counts} == {(a["kind"], a["status"]) for a in everything}


def test_every_opensearch_dashboards_panel_has_its_twin_here(client: TestClient) -> None:
    """The saved objects (speed_layer/dashboards.py) and these pages show the same fields."""
    from speed_layer.dashboards import saved_objects

    twins = {  # saved object -> (page, panel element, field the page plots)
        "sleepstack-hr": ("/subjects/s001", "hr", "hr_bpm"),
        "sleepstack-br": ("/subjects/s001", "br", "br_per_min"),
        "sleepstack-movement": ("/subjects/s001", "movement", "movement"),
        "sleepstack-rmssd": ("/subjects/s001", "hrv", "rmssd_ms"),
        "sleepstack-strap-hr": ("/subjects/s001", "strap-hr", "hr_bpm"),
        "sleepstack-presence": ("/subjects/s001", "presence", "presence"),
        "sleepstack-alerts-by-kind": ("/alerts", "alerts-by-kind", "kind"),
        "sleepstack-open-alerts": ("/alerts", "alerts", "status"),
        "sleepstack-all-alerts": ("/alerts", "alerts", "end_ms"),
    }
    panels = {o["id"] for o in saved_objects("sleepstack") if o["type"] in ("visualization", "search")}
    assert panels == set(twins)
    script = client.get("/static/app.js").text
    for page, element, field in twins.values():
        assert f'id="{element}"' in client.get(page).text
        assert f".{field}" in script


def test_nights_come_from_the_curated_tables(client: TestClient, home: tuple[Settings, str]) -> None:
    _, night = home
    nights = client.get("/api/nights").json()["nights"]
    assert {(n["subject_id"], n["night"]) for n in nights} == {(s, night) for s in SUBJECTS}
    assert client.get("/api/nights", params={"subject_id": "s002"}).json()["nights"][0]["subject_id"] == "s002"
    one = client.get(f"/api/nights/s001/{night}").json()
    assert one["summary"]["status"] == "staged" and one["summary"]["total_sleep_time_min"] > 0
    assert one["model"]["model"] == one["summary"]["method"] == "hr-mlp-v1"
    assert 0 < one["model"]["kappa_4"] < 1
    epochs = client.get(f"/api/nights/s001/{night}/epochs").json()["epochs"]
    assert len(epochs) >= one["summary"]["epochs"]  # the summary counts the in-bed span
    assert {e["stage_label"] for e in epochs} >= {"wake", "light"}


def test_the_openapi_schema_documents_every_api_path(client: TestClient) -> None:
    schema = client.get("/api/openapi.json").json()
    assert set(schema["paths"]) == {
        "/api/subjects",
        "/api/subjects/{subject_id}",
        "/api/subjects/{subject_id}/vitals",
        "/api/subjects/{subject_id}/samples",
        "/api/alerts",
        "/api/alerts/counts",
        "/api/alerts/{alert_id}/ack",
        "/api/nights",
        "/api/nights/{subject_id}/{night}",
        "/api/nights/{subject_id}/{night}/epochs",
        "/api/registry/subjects",
        "/api/registry/subjects/{subject_id}",
        "/api/registry/subjects/{subject_id}/withdrawal",
        "/api/registry/devices",
        "/api/registry/assignments",
        "/api/compliance",
        "/api/session",
        "/api/me",
        "/api/audit",
        "/api/export/{subject_id}",
    }
    params = {p["name"]: p for p in schema["paths"]["/api/subjects/{subject_id}/vitals"]["get"]["parameters"]}
    assert params["start_ms"]["required"] and params["subject_id"]["schema"]["pattern"]
    assert client.get("/docs").status_code == 404  # Swagger UI loads from a CDN: off


def test_every_api_body_is_documented_and_every_answer_matches_its_model(
    client: TestClient, home: tuple[Settings, str]
) -> None:
    from serving.web import models

    schema = client.get("/api/openapi.json").json()
    components = schema["components"]["schemas"]
    for path, methods in schema["paths"].items():
        for method, op in methods.items():
            if "204" in op["responses"] or "application/json" not in op["responses"].get("200", {}).get(
                "content", {"application/json": {}}
            ):
                continue  # sign out: no body; an export: a file
            answer = op["responses"].get("200") or op["responses"]["201"]
            ok = answer["content"]["application/json"]["schema"]
            name = (ok.get("items") or ok)["$ref"].rsplit("/", 1)[-1]
            assert components[name]["properties"], (method, path)  # a documented body, not "any"
    _, night = home
    start, end = _night_bounds(client, "s001")
    answers = {
        "/api/subjects": models.Subjects,
        "/api/subjects/s001": models.SubjectNow,
        f"/api/subjects/s001/vitals?start_ms={start}&end_ms={end}": models.Vitals,
        f"/api/subjects/s002/samples?start_ms={start}&end_ms={start + 3_600_000}": models.Samples,
        "/api/alerts": models.Alerts,
        "/api/alerts/counts": models.AlertCounts,
        "/api/nights": models.Nights,
        f"/api/nights/s001/{night}": models.NightOut,
        f"/api/nights/s001/{night}/epochs": models.NightEpochs,
    }
    bodies = {}
    for url, model in answers.items():
        bodies[model] = body = client.get(url).json()
        assert model.model_validate(body).model_dump(exclude_unset=True) or body, url  # validates, or raises
    # the rows of the night queries are exactly the documented fields (serving/sql/night_*.sql)
    assert set(bodies[models.Nights]["nights"][0]) == set(models.NightListRow.model_fields)
    assert set(bodies[models.NightEpochs]["epochs"][0]) == set(models.EpochRow.model_fields)
    assert set(bodies[models.NightOut]["model"]) == set(models.ModelCard.model_fields)


def test_every_field_of_an_api_body_says_what_it_is() -> None:
    from core.nights.nightly import EPOCH_COLUMNS, NIGHT_COLUMNS
    from serving.web import models

    assert {c for c, _ in NIGHT_COLUMNS + EPOCH_COLUMNS} <= set(models.COLUMN_DOCS)  # a new column: say what it is
    undocumented = [
        (model.__name__, name)
        for model in (models.NightRow, models.NightListRow, models.EpochRow, models.ModelCard, models.VitalsDoc)
        for name, field in model.model_fields.items()
        if not field.description
    ]
    assert not undocumented


# --- pages ------------------------------------------------------------------------------


def test_pages_and_their_assets_are_served_from_this_server(client: TestClient, home: tuple[Settings, str]) -> None:
    _, night = home
    for path in ("/", "/alerts", "/nights", "/subjects/s001"):
        resp = client.get(path)
        assert resp.status_code == 200 and '<header class="bar">' in resp.text
        assert "http://" not in resp.text and "https://" not in resp.text  # nothing from outside
        assert "default-src 'self'" in resp.headers["content-security-policy"]
    for asset in ("/vendor/uPlot.iife.min.js", "/vendor/uPlot.min.css", "/static/app.js", "/static/charts.js"):
        assert client.get(asset).status_code == 200
    page = client.get(f"/nights/s001/{night}").text
    assert 'id="hypnogram"' in page and "hr-mlp-v1" in page and 'id="night-data"' in page
    report = client.get(f"/reports/s001/{night}.html")
    assert report.headers["content-disposition"].startswith("attachment")
    assert "<script src=" not in report.text  # self-contained: every script inlined


def test_a_new_night_staged_while_serving_shows_without_a_restart(tmp_path: Path) -> None:
    from sleepstack.bench.fixtures import stage_records
    from tests.dashboard_helpers import night_records

    settings = Settings.from_env({"SLEEPSTACK_HOME": str(tmp_path)})
    with TestClient(build_app(settings), base_url="http://127.0.0.1") as c:
        c.headers["authorization"] = f"Bearer {token(settings)}"
        assert c.get("/api/nights").json() == {"nights": []}
        stage_records(settings.lake, [r for r in night_records() if r.subject_id == "s003"])
        assert [n["subject_id"] for n in c.get("/api/nights").json()["nights"]] == ["s003"]


def test_served_over_tls_with_a_secure_cookie(home: tuple[Settings, str], tmp_path: Path) -> None:
    """With a certificate and key the dashboard speaks HTTPS only, and its cookie is Secure."""
    import datetime
    import ssl
    import urllib.error
    import urllib.request

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from sleepstack.dashboard import serving

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(tz=datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    settings, _ = home
    context = ssl.create_default_context(cafile=str(cert_path))
    context.check_hostname = False
    with serving(settings, Listen(port=0, tls_cert=cert_path, tls_key=key_path)) as address:
        assert address.startswith("https://127.0.0.1:")
        bearer = {"Authorization": f"Bearer {token(settings)}"}
        req = urllib.request.Request(f"{address}/api/subjects", headers=bearer)  # noqa: S310 - https, loopback
        with urllib.request.urlopen(req, context=context, timeout=10) as resp:  # noqa: S310 - our loopback server
            assert len(json.loads(resp.read())["subjects"]) == len(SUBJECTS)

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args: Any, **kwargs: Any) -> None:
                return None

        opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context), NoRedirect)
        with pytest.raises(urllib.error.HTTPError) as redirect:
            opener.open(f"{address}/?token={token(settings)}", timeout=10)
        assert redirect.value.code == 303 and "; Secure" in redirect.value.headers["set-cookie"]
        plain = address.replace("https://", "http://")
        with pytest.raises((urllib.error.URLError, ConnectionError)):
            urllib.request.urlopen(f"{plain}/api/subjects", timeout=5)  # noqa: S310 - no plain HTTP


# --- device health ----------------------------------------------------------------------


def test_devices_carry_battery_link_and_technical_alerts_as_their_statuses_say(
    client: TestClient, home: tuple[Settings, str]
) -> None:
    settings, night = home
    register(settings, night)
    devices = {d["address"]: d for d in client.get("/api/registry/devices").json()}
    assert len(devices) == 8
    last_h = HOURS - 1 / 60  # the last status, a minute before the end
    for address in (f"{k}-{s}" for s in SUBJECTS for k in ("strap", "bed")):
        d = devices[address]
        assert d["battery_pct"] == battery_at(address, last_h), address
        assert d["low_battery"] == (address == LOW_STRAP)
        assert d["connected"] == (address != SILENT_BED)
        assert d["silent"]  # assigned now, nothing heard since the night (months ago)
        assert d["not_worn"] == (address == UNWORN_STRAP) and d["worn"] == (
            None if "bed" in address else not d["not_worn"]
        )
        expected = {LOW_STRAP: ["battery_low"], SILENT_BED: ["device_silent"], UNWORN_STRAP: ["not_worn"]}.get(
            address, []
        )
        assert d["technical_alerts"] == expected, address
    assert devices["strap-s004"]["battery_pct"] is None and devices["strap-s004"]["last_seen_ms"] is None
    t0 = min(r.event_time_ms for r in night_records())  # the statuses' first minute
    minutes = round(HOURS * 60)
    alerts = client.get("/api/alerts", params={"subject_id": "s002"}).json()["alerts"]
    (silent,) = [a for a in alerts if a["kind"] == "device_silent"]
    assert silent["category"] == "technical" and silent["status"] == "open" and silent["device_id"] == SILENT_BED
    assert silent["start_ms"] == t0 + (minutes - SILENT_MIN) * 60_000  # its last measurement
    assert silent["duration_s"] == 300 and silent["raised_ms"] == silent["start_ms"] + 300_000  # raised at 5 min
    alerts = client.get("/api/alerts", params={"subject_id": "s001"}).json()["alerts"]
    (low,) = [a for a in alerts if a["kind"] == "battery_low"]
    # int(24 - 2 h) <= 20 from the first status after 1.5 h: minute 91
    assert low["start_ms"] == t0 + 91 * 60_000 and low["raised_ms"] == low["start_ms"]
    assert low["value"] == 20 and low["threshold"] == 20  # the level when raised
    alerts = client.get("/api/alerts", params={"subject_id": "s003"}).json()["alerts"]
    (unworn,) = [a for a in alerts if a["kind"] == "not_worn"]
    assert unworn["start_ms"] == t0 + (minutes - SILENT_MIN) * 60_000  # the first status without contact
    assert unworn["raised_ms"] == unworn["start_ms"] + 600_000 and unworn["status"] == "open"
    grid = client.get("/api/compliance", params={"until": night}).json()
    rows = {r["subject_id"]: r for r in grid["subjects"]}
    assert (
        rows["s001"]["low_battery"]
        and not rows["s002"]["low_battery"]
        and not rows["s004"]["devices"][0]["low_battery"]
    )
    assert {d["address"] for d in rows["s001"]["devices"]} == {"strap-s001", "bed-s001"}
