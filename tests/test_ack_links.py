"""One-click acknowledgement links and the acknowledgement store (issue 28 item 4)."""

from __future__ import annotations

import base64
import json
import threading
from pathlib import Path

import pytest

from access.ack_links import LinkClaim, LinkError, LinkExpired, sign_link, verify_link
from access.acks import Ack
from access.roles import AccessError
from core.errors import InputError
from local.alert_acks import AlertAcks

KEY = bytes(range(32))
OTHER = bytes(range(1, 33))
T0 = 1_780_000_000_000


def test_a_signed_link_verifies_to_its_claim() -> None:
    token = sign_link("a1b2", "dr.ward", T0 + 60_000, KEY, nonce="n-1")
    assert verify_link(token, KEY, T0) == LinkClaim("a1b2", "dr.ward", T0 + 60_000, "n-1")
    assert all(c.isalnum() or c in "-_." for c in token)  # URL-safe as it is


def test_every_link_has_its_own_random_nonce() -> None:
    nonces = {verify_link(sign_link("a", "r", T0 + 1, KEY), KEY, T0).nonce for _ in range(50)}
    assert len(nonces) == 50
    assert all(len(base64.urlsafe_b64decode(n + "==")) == 16 for n in nonces)


def test_a_link_expires_at_its_expiry() -> None:
    token = sign_link("a", "r", T0 + 1000, KEY)
    verify_link(token, KEY, T0 + 999)
    with pytest.raises(LinkExpired, match="expired"):
        verify_link(token, KEY, T0 + 1000)


def _forge(token: str, **change: object) -> str:
    body, sig = token.split(".")
    claim = json.loads(base64.urlsafe_b64decode(body + "=="))
    claim.update(change)
    raw = json.dumps(claim, sort_keys=True, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode() + "." + sig


def test_forged_links_are_refused() -> None:
    token = sign_link("a1", "dr.ward", T0 + 1000, KEY)
    for forged in (
        _forge(token, a="another-alert"),
        _forge(token, e=T0 + 10**9),  # extending the expiry breaks the signature
        sign_link("a1", "dr.ward", T0 + 1000, OTHER),  # signed with another key
        token[:-2] + ("AA" if not token.endswith("AA") else "BB"),
    ):
        with pytest.raises(LinkError, match="signature"):
            verify_link(forged, KEY, T0)


@pytest.mark.parametrize("bad", ["", "abc", "a.b.c", "!!!.???", "." * 1, "x" * 5000])
def test_malformed_links_are_refused_with_a_typed_error(bad: str) -> None:
    with pytest.raises(LinkError) as err:
        verify_link(bad, KEY, T0)
    assert isinstance(err.value, AccessError) and isinstance(err.value, InputError)
    assert err.value.bad_input


def test_a_short_key_is_refused() -> None:
    with pytest.raises(AccessError, match="32 bytes"):
        sign_link("a", "r", T0, b"short")


def test_the_first_acknowledgement_wins(tmp_path: Path) -> None:
    acks = AlertAcks(tmp_path / "d" / "acks.sqlite")
    first = acks.acknowledge("a1", by="dr.ward", via="dashboard", at_ms=T0)
    assert first == Ack("a1", "dr.ward", "dashboard", T0)
    assert acks.acknowledge("a1", by="nurse.b", via="link", at_ms=T0 + 5) == first
    assert acks.get("a1") == first and acks.get("a2") is None
    acks.acknowledge("a3", by="nurse.b", via="api", at_ms=T0 + 9)
    assert acks.acknowledged(["a1", "a2", "a3", "a1"]) == {"a1": first, "a3": Ack("a3", "nurse.b", "api", T0 + 9)}
    with pytest.raises(AccessError, match="via"):
        acks.acknowledge("a4", by="x", via="fax", at_ms=T0)
    acks.close()
    reopened = AlertAcks(tmp_path / "d" / "acks.sqlite")
    assert reopened.get("a1") == first  # durable
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o700
    assert (tmp_path / "d" / "acks.sqlite").stat().st_mode & 0o777 == 0o600


def test_concurrent_acknowledgements_leave_one(tmp_path: Path) -> None:
    acks = AlertAcks(tmp_path / "acks.sqlite")
    got: list[Ack] = []
    threads = [
        threading.Thread(target=lambda i=i: got.append(acks.acknowledge("a", by=f"u{i}", via="api", at_ms=T0 + i)))
        for i in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(got)) == 1 and got[0] == acks.get("a")


def test_a_link_nonce_is_consumed_once(tmp_path: Path) -> None:
    acks = AlertAcks(tmp_path / "acks.sqlite")
    assert not acks.link_used("n1")
    assert acks.consume_link("n1", T0) is True
    assert acks.link_used("n1")
    assert acks.consume_link("n1", T0 + 1) is False
    assert acks.consume_link("n2", T0 + 1) is True


def test_many_ids_are_looked_up_in_chunks(tmp_path: Path) -> None:
    acks = AlertAcks(tmp_path / "acks.sqlite")
    for i in range(0, 1200, 3):
        acks.acknowledge(f"a{i}", by="u", via="api", at_ms=T0)
    assert len(acks.acknowledged(f"a{i}" for i in range(1200))) == 400


def test_the_homes_link_key_is_made_once_owner_only(tmp_path: Path) -> None:
    from sleepstack.dashboard import ack_key
    from sleepstack.settings import Settings

    settings = Settings.from_env({"SLEEPSTACK_HOME": str(tmp_path / "home")})
    key = ack_key(settings)
    assert len(key) == 32 and ack_key(settings) == key  # kept: links sent before a restart verify
    assert settings.paths.ack_key.stat().st_mode & 0o777 == 0o600
    assert settings.paths.ack_key.parent.stat().st_mode & 0o777 == 0o700
    assert verify_link(sign_link("a", "r", T0 + 1, key), ack_key(settings), T0).alert_id == "a"
