"""The notifier's decisions: routes file, quiet hours, transitions, outbox idempotency, escalation on a fake clock."""

from __future__ import annotations

import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from access.ack_links import verify_link
from core.live.alerts import alert_id
from core.notify import QuietHours, Recipient, RouteError, idempotency_key, transitions
from local.alert_acks import AlertAcks
from local.live_store import LocalLiveStore
from local.outbox import Outbox
from sleepstack.notify.channels import ChannelError
from sleepstack.notify.engine import Notifier
from sleepstack.notify.routes_file import load_routes
from tests.conftest import REPO_ROOT

EXAMPLE = REPO_ROOT / "docs" / "examples" / "alert-routes.yaml"
T0 = int(datetime(2026, 3, 2, 2, 0, tzinfo=UTC).timestamp() * 1000)  # 02:00 London (GMT)


def episode(
    kind: str = "breathing_pause", *, start: int = T0, end: int | None = None, device: str = "AA:01"
) -> dict[str, Any]:
    cat = "technical" if kind in ("device_silent", "battery_low", "not_worn", "contact_lost") else "clinical"
    return {
        "doc_id": alert_id(device, kind, start),
        "subject_id": "S001",
        "device_id": device,
        "source": "bed",
        "kind": kind,
        "category": cat,
        "status": "open" if end is None else "closed",
        "start_ms": start,
        "end_ms": end,
        "raised_ms": start + 10_000,
        "duration_s": 0.0 if end is None else (end - start) / 1000,
        "value": 42.0,
        "threshold": 10.0,
    }


class Recording:
    """A channel that keeps what it is given (the SMTP/webhook tests use real servers)."""

    def __init__(self, fail: bool = False) -> None:
        self.got: list[tuple[str, str, dict[str, Any]]] = []
        self.fail = fail

    def send(self, address: str, key: str, message: dict[str, Any]) -> None:
        if self.fail:
            raise ChannelError("webhook: HTTP 503")
        self.got.append((address, key, message))


class Clock:
    def __init__(self, t_ms: int) -> None:
        self.t = t_ms / 1000

    def __call__(self) -> float:
        return self.t

    def advance_min(self, minutes: float) -> None:
        self.t += minutes * 60


@pytest.fixture
def parts(tmp_path: Path) -> dict[str, Any]:
    store = LocalLiveStore(tmp_path / "live.sqlite")
    acks = AlertAcks(tmp_path / "acks.sqlite")
    clock = Clock(T0 + 30_000)
    email, hook = Recording(), Recording()
    notifier = Notifier(
        load_routes(EXAMPLE),
        store,
        Outbox(tmp_path / "notify" / "outbox.sqlite"),
        {"email": email, "webhook": hook},
        acks=acks,
        subject_info=lambda d: (("ward-7",), "bed 12", "Europe/London"),
        dashboard_base="http://127.0.0.1:8787",
        link_key=b"k" * 32,
        alerts_store=store,
        clock=clock,
        backoff_s=(1.0, 2.0),
    )
    return {"store": store, "acks": acks, "clock": clock, "email": email, "hook": hook, "n": notifier, "tmp": tmp_path}


def test_the_documented_example_loads() -> None:
    routes = load_routes(EXAMPLE)
    assert [r.name for r in routes] == ["ward-7-clinical", "study-technical"]
    ward = routes[0]
    assert [t.escalate_after_min for t in ward.tiers] == [0, 5, 15]
    assert ward.tiers[0].recipients[1] == Recipient("webhook", "http://127.0.0.1:9931/ward7")
    assert not ward.include_values and ward.notify_close
    assert ward.matches(episode(), ["ward-7"]) and not ward.matches(episode(), ["ward-3"])
    assert not ward.matches(episode("battery_low"), ["ward-7"])  # technical apart from clinical
    assert routes[1].matches(episode("battery_low"), []) and not routes[1].matches(episode(), [])


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("routes:\n  - name: a\n    tiers: []\n", "route 'a' (line 2), field tiers"),
        ("routes:\n  - name: a\n    kinds: [apnea]\n    tiers: [{recipients: [{email: a@b}]}]\n", "field kinds"),
        ("routes:\n  - name: a\n    tiers:\n      - recipients: [{sms: '+44'}]\n", "field tiers[0].recipients[0]"),
        (
            "routes:\n  - name: a\n    tiers:\n      - recipients: [{email: a@b}]\n"
            "      - recipients: [{email: c@d}]\n",
            "field tiers[1].escalate_after_min",
        ),
        (
            "routes:\n  - name: a\n    quiet_hours: {start: '25:00', end: '07:00'}\n"
            "    tiers: [{recipients: [{email: a@b}]}]\n",
            "quiet_hours.start",
        ),
        ("routes:\n  - {name: a, tz: Mars/Olympus, tiers: [{recipients: [{email: a@b}]}]}\n", "field tz"),
        ("routes:\n  - {name: a, colour: red, tiers: [{recipients: [{email: a@b}]}]}\n", "field colour"),
        ("routes: [\n", "line"),
    ],
)
def test_a_bad_routes_file_names_the_file_route_line_and_field(tmp_path: Path, text: str, where: str) -> None:
    f = tmp_path / "routes.yaml"
    f.write_text(text)
    with pytest.raises(RouteError) as err:
        load_routes(f)
    assert str(f) in str(err.value) and where in str(err.value)


def test_quiet_hours_hold_a_message_until_they_end_in_the_routes_zone() -> None:
    q = QuietHours(23 * 60, 7 * 60)
    at_2am_london = T0  # GMT in March before the change: 02:00 local
    assert q.release_ms(at_2am_london, "Europe/London") == T0 + 5 * 3600_000
    assert q.release_ms(T0 + 6 * 3600_000, "Europe/London") is None  # 08:00
    at_2330 = int(datetime(2026, 3, 1, 23, 30, tzinfo=UTC).timestamp() * 1000)
    assert q.release_ms(at_2330, "Europe/London") == T0 + 5 * 3600_000  # next morning 07:00
    # New York is 5 h behind: 02:00 UTC is 21:00 there, outside
    assert q.release_ms(T0, "America/New_York") is None


def test_transitions_come_from_the_document() -> None:
    opened = episode()
    assert [(t.transition, t.at_ms) for t in transitions(opened)] == [("open", T0 + 10_000)]
    closed = episode(end=T0 + 60_000)
    assert [t.transition for t in transitions(closed)] == ["open", "close"]
    r = Recipient("email", "a@b")
    keys = {idempotency_key(opened["doc_id"], tr, "x", r, k) for tr in ("open", "close") for k in (0, 1)}
    assert len(keys) == 4


def test_each_transition_is_queued_once_however_often_it_is_replayed(parts: dict[str, Any]) -> None:
    n, store = parts["n"], parts["store"]
    doc = episode()
    store.index([("alerts", doc)])
    assert n.plan() == 2  # tier 0: nurse e-mail + webhook
    store.index([("alerts", doc)])  # a speed-layer retry rewrites the same document
    assert n.plan() == 0
    assert n.send() == 2
    store.index([("alerts", episode(end=T0 + 90_000))])  # it closes; the route notifies closes
    assert n.plan() == 2 and n.send() == 2
    assert n.plan() == 0 and n.send() == 0
    assert n.outbox.counts(n.now_ms()) == {"queued": 0, "sent": 4, "failed": 0, "oldest_unsent_s": 0}
    keys = [k for _, k, _ in parts["email"].got + parts["hook"].got]
    assert len(keys) == len(set(keys)) == 4
    assert stat.S_IMODE((parts["tmp"] / "notify" / "outbox.sqlite").stat().st_mode) == 0o600
    assert stat.S_IMODE((parts["tmp"] / "notify").stat().st_mode) == 0o700


def test_messages_carry_minimal_data_and_a_signed_link(parts: dict[str, Any]) -> None:
    n, store = parts["n"], parts["store"]
    store.index([("alerts", episode())])
    n.plan()
    n.send()
    (addr, key, msg) = parts["email"].got[0]
    assert addr == "night-nurse@ward7.example.org"
    assert "bed 12" in msg["text"] and "breathing_pause" in msg["text"]
    assert "02:00:10 GMT" in msg["text"]  # the subject's zone
    assert "S001" not in msg["text"] and "42" not in msg["text"]  # no id when a label exists, no value
    assert "value" not in msg["payload"] and msg["payload"]["idempotency_key"] == key
    token = msg["payload"]["ack_url"].rsplit("/ack/", 1)[1]
    claim = verify_link(token, b"k" * 32, n.now_ms())
    assert claim.alert_id == episode()["doc_id"] and claim.recipient == "email:night-nurse@ward7.example.org"


def test_an_unacknowledged_episode_escalates_tier_by_tier_on_the_clock(parts: dict[str, Any]) -> None:
    n, store, clock = parts["n"], parts["store"], parts["clock"]
    store.index([("alerts", episode())])
    n.plan()
    n.send()
    clock.advance_min(4.9)
    assert n.plan() == 0
    clock.advance_min(0.2)  # 5.1 min since first seen: the registrar
    assert n.plan() == 1 and n.send() == 1
    assert parts["email"].got[-1][0] == "registrar@ward7.example.org"
    assert "tier 1" in parts["email"].got[-1][2]["text"]
    clock.advance_min(10)  # 15.1 min: the consultant
    assert n.plan() == 1 and n.send() == 1
    assert parts["email"].got[-1][0] == "consultant@ward7.example.org"
    clock.advance_min(60)
    assert n.plan() == 0


def test_acknowledging_stops_escalation(parts: dict[str, Any]) -> None:
    n, store, clock = parts["n"], parts["store"], parts["clock"]
    doc = episode()
    store.index([("alerts", doc)])
    n.plan()
    n.send()
    clock.advance_min(2)
    parts["acks"].acknowledge(doc["doc_id"], by="nurse1", via="link", at_ms=n.now_ms())
    clock.advance_min(30)
    assert n.plan() == 0
    assert [a for a, _, _ in parts["email"].got] == ["night-nurse@ward7.example.org"]


def test_a_closed_episode_does_not_escalate(parts: dict[str, Any]) -> None:
    n, store, clock = parts["n"], parts["store"], parts["clock"]
    store.index([("alerts", episode())])
    n.plan()
    store.index([("alerts", episode(end=T0 + 60_000))])
    clock.advance_min(30)
    n.plan()
    assert {r["tier"] for r in n.outbox.rows()} == {0}


def test_quiet_hours_hold_technical_messages(parts: dict[str, Any]) -> None:
    n, store = parts["n"], parts["store"]
    store.index([("alerts", episode("battery_low"))])
    assert n.plan() == 1
    assert n.send() == 0  # 02:00 London: held until 07:00
    assert n.outbox.counts(n.now_ms())["queued"] == 1
    parts["clock"].advance_min(5 * 60)
    assert n.send() == 1


def test_a_failing_channel_retries_dead_letters_raises_a_technical_alert_and_blocks_nothing(
    parts: dict[str, Any],
) -> None:
    n, store, clock = parts["n"], parts["store"], parts["clock"]
    parts["hook"].fail = True
    store.index([("alerts", episode())])
    n.plan()
    assert n.send() == 1  # the e-mail went
    assert [a for a, _, _ in parts["email"].got] == ["night-nurse@ward7.example.org"]
    failing = store.alerts(status="open")
    tech = [a for a in failing if a["kind"] == "notifier_failing"]
    assert len(tech) == 1 and tech[0]["category"] == "technical" and tech[0]["device_id"] == "notifier-webhook"
    clock.advance_min(1 / 60)  # 1 s: retry 1
    assert n.send() == 0
    clock.advance_min(2 / 60)  # 2 s more: the last try, then the dead letter
    assert n.send() == 0
    rows = {r["channel"]: r for r in n.outbox.rows()}
    assert rows["webhook"]["status"] == "failed" and rows["webhook"]["attempts"] == 3
    assert rows["webhook"]["error"] == "webhook: HTTP 503"
    clock.advance_min(60)
    assert n.send() == 0  # no more tries


def test_the_benchmarks_percentile_is_the_nearest_rank() -> None:
    from sleepstack.bench.notify import _pct

    values = [float(v) for v in range(1, 21)]
    assert _pct(values, 0.95) == 19.0 and _pct(values, 0.5) == 11.0 and _pct([3.0], 0.95) == 3.0


def test_the_service_idles_without_routes_and_stalls_naming_a_bad_file(tmp_path: Path) -> None:
    import os

    from local.control import ControlPlane
    from sleepstack.services.notifier import NotifierService
    from sleepstack.services.stop import Stop
    from sleepstack.settings import Settings

    home = tmp_path / "home"
    stop = Stop(os.getppid())
    stop.event.set()  # one pass, then stop
    NotifierService(Settings.from_env({"SLEEPSTACK_HOME": str(home)}), stop).run()
    beat = ControlPlane(Settings.from_env({"SLEEPSTACK_HOME": str(home)}).paths).heartbeat("notifier")
    assert beat is not None and beat.state == "stopped" and beat.figures["routes"] == "none"
    bad = tmp_path / "routes.yaml"
    bad.write_text("routes:\n  - name: a\n    tiers: []\n")
    settings = Settings.from_env({"SLEEPSTACK_HOME": str(home), "SLEEPSTACK_ALERT_ROUTES": str(bad)})
    NotifierService(settings, stop).run()
    beat = ControlPlane(settings.paths).heartbeat("notifier")
    assert beat is not None and beat.state == "stalled" and "route 'a' (line 2), field tiers" in str(beat.error)


def test_the_embedded_store_answers_alerts_changed_since_by_when_it_wrote_them(tmp_path: Path) -> None:
    """Written at or after the mark (the store's clock), or open; each carries its ``indexed_ms``."""
    now = [T0 / 1000]
    store = LocalLiveStore(tmp_path / "live.sqlite", clock=lambda: now[0])
    old_closed = episode(start=T0 - 3600_000, end=T0 - 3500_000, device="AA:01")
    old_open = episode(start=T0 - 3600_000, device="AA:02")
    store.index([("alerts", d) for d in (old_closed, old_open)])
    now[0] += 60
    late_old = episode(start=T0 - 7200_000, end=T0 - 7100_000, device="AA:03")  # happened first, written last
    store.index([("alerts", late_old)])
    got = {d["doc_id"]: d["indexed_ms"] for d in store.alerts_changed_since(T0 + 1)}
    assert got == {old_open["doc_id"]: T0, late_old["doc_id"]: T0 + 60_000}
    assert len(store.alerts_changed_since(0)) == 3


def test_a_failing_channel_costs_one_try_per_pass_and_the_other_channel_sends_all(parts: dict[str, Any]) -> None:
    n, store = parts["n"], parts["store"]
    parts["hook"].fail = True
    store.index([("alerts", episode(device=f"AA:{i:02d}")) for i in range(5)])
    assert n.plan() == 10
    assert n.send() == 5  # every e-mail
    rows = [r for r in n.outbox.rows() if r["channel"] == "webhook"]
    assert sorted(r["attempts"] for r in rows) == [0, 0, 0, 0, 1]  # one try, the rest wait for the next pass


def test_an_episode_written_late_with_an_older_start_is_still_notified(parts: dict[str, Any]) -> None:
    """The speed layer may write one shard's later episodes before another's earlier ones
    (a backlog, a shard read to its end first): the notifier's cursor follows when the store
    wrote an episode, not when it happened, so the late one is not behind the watermark."""
    n, store = parts["n"], parts["store"]
    later = episode(start=T0 + 3 * 3600_000, end=T0 + 3 * 3600_000 + 60_000, device="AA:02")
    store.index([("alerts", later)])
    assert n.plan() == 4  # open and close, nurse e-mail + webhook
    earlier = episode(start=T0, end=T0 + 60_000)  # hours before the first, written after it
    store.index([("alerts", earlier)])
    assert n.plan() == 4
    assert {r["alert_id"] for r in n.outbox.rows()} == {later["doc_id"], earlier["doc_id"]}
