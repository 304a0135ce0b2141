"""The registry's JSON API: create, read, update; 422 naming the field, 409 naming the overlap, 404, 401."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from sleepstack.dashboard import build_app, token
from sleepstack.settings import Settings

T0 = 1_767_650_400_000  # 2026-01-05T22:00:00Z
H = 3_600_000


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings.from_env({"SLEEPSTACK_HOME": str(tmp_path)})
    with TestClient(build_app(settings), base_url="http://127.0.0.1") as c:
        c.headers["authorization"] = f"Bearer {token(settings)}"
        yield c


def test_enrol_register_assign_and_read_back(client: TestClient) -> None:
    made = client.post(
        "/api/registry/subjects",
        json={"subject_id": "s001", "tz": "Europe/London", "sex": "female", "enrolled_ms": T0 - H},
    )
    assert made.status_code == 201 and made.json()["status"] == "enrolled" and made.json()["tz"] == "Europe/London"
    client.post("/api/registry/subjects", json={"subject_id": "s002", "enrolled_ms": T0 - H})
    bed = client.post("/api/registry/devices", json={"address": "bed-12", "kind": "bed", "label": "bed 12"})
    assert bed.status_code == 201
    early = client.post(
        "/api/registry/assignments", json={"device": "bed-12", "subject_id": "s001", "from_ms": T0 - 2 * H}
    )
    assert early.status_code == 422 and "enrolment" in early.text  # nobody wore it for them before they enrolled
    first = client.post("/api/registry/assignments", json={"device": "bed-12", "subject_id": "s001", "from_ms": T0})
    assert first.status_code == 201 and first.json() == [
        {"device": "bed-12", "subject_id": "s001", "from_ms": T0, "to_ms": None}
    ]
    moved = client.post(
        "/api/registry/assignments", json={"device": "bed-12", "subject_id": "s002", "from_ms": T0 + 24 * H}
    )
    assert [a["to_ms"] for a in moved.json()] == [T0 + 24 * H, None]  # the bed moved to the next patient
    assert [a["subject_id"] for a in client.get("/api/registry/assignments").json()] == ["s001", "s002"]
    (device,) = client.get("/api/registry/devices").json()
    assert device["label"] == "bed 12" and device["assigned_to"] == "s002"
    changed = client.patch("/api/registry/subjects/s001", json={"alert_overrides": {"hr_high_bpm": 130}})
    assert changed.status_code == 200 and changed.json()["alert_overrides"] == {"hr_high_bpm": 130.0}
    assert client.get("/api/registry/subjects/s001").json()["sex"] == "female"  # untouched by the update
    gone = client.post("/api/registry/subjects/s002/withdrawal", json={"at_ms": T0 + 30 * H, "why": "consent"})
    assert gone.json()["status"] == "withdrawn"
    assert client.get("/api/registry/assignments", params={"device": "bed-12"}).json()[-1]["to_ms"] == T0 + 30 * H


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/registry/subjects", {"subject_id": "John Doe"}, "subject_id"),
        ("/api/registry/subjects", {"subject_id": "s009", "tz": "Mars/Olympus"}, "tz"),
        ("/api/registry/subjects", {"subject_id": "s009", "alert_overrides": {"hr_hi": 1}}, "alert_overrides"),
        ("/api/registry/subjects", {"tz": "UTC"}, "subject_id"),  # missing: pydantic names it
        ("/api/registry/devices", {"address": "x", "kind": "toaster"}, "kind"),
        ("/api/registry/assignments", {"device": "x", "subject_id": "s", "from_ms": 5, "to_ms": 1}, "to"),
    ],
)
def test_a_refused_body_is_422_naming_the_field(client: TestClient, path: str, body: dict, field: str) -> None:
    resp = client.post(path, json=body)
    assert resp.status_code == 422, resp.text
    assert any(field in err["loc"] for err in resp.json()["detail"]), resp.json()


def test_an_overlap_is_409_naming_the_assignment_and_unknown_ids_404(client: TestClient) -> None:
    client.post("/api/registry/subjects", json={"subject_id": "s001", "enrolled_ms": T0})
    client.post("/api/registry/subjects", json={"subject_id": "s002", "enrolled_ms": T0})
    client.post("/api/registry/devices", json={"address": "strap-1", "kind": "strap"})
    client.post(
        "/api/registry/assignments",
        json={"device": "strap-1", "subject_id": "s001", "from_ms": T0, "to_ms": T0 + 8 * H},
    )
    clash = client.post(
        "/api/registry/assignments",
        json={"device": "strap-1", "subject_id": "s002", "from_ms": T0 + H, "to_ms": T0 + 2 * H},
    )
    assert clash.status_code == 409 and "assigned to s001 from 2026-01-05T22:00:00Z" in clash.json()["detail"]
    assert client.get("/api/registry/subjects/s404").status_code == 404
    assert client.post("/api/registry/assignments", json={"device": "nope", "subject_id": "s001"}).status_code == 404
    dup = client.post("/api/registry/subjects", json={"subject_id": "s001"})
    assert dup.status_code == 422 and dup.json()["detail"][0]["msg"] == "s001 is already registered"


def test_the_registry_needs_the_token(tmp_path: Path) -> None:
    settings = Settings.from_env({"SLEEPSTACK_HOME": str(tmp_path)})
    with TestClient(build_app(settings), base_url="http://127.0.0.1") as anonymous:
        assert anonymous.get("/api/registry/subjects").status_code == 401
        assert anonymous.post("/api/registry/subjects", json={"subject_id": "s001"}).status_code == 401
