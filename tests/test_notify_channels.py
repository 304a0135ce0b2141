"""The channels against real loopback servers: aiosmtpd with STARTTLS and AUTH, a signed-webhook receiver."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from sleepstack.notify.channels import ChannelError, EmailChannel, WebhookChannel, sign, verify_signature
from sleepstack.notify.receivers import SmtpReceiver, WebhookReceiver, self_signed_cert

MSG = {
    "subject": "[sleepstack] breathing_pause opened: bed 12 at 02:00",
    "text": "breathing_pause opened\n",
    "payload": {"kind": "breathing_pause"},
}
SECRET = b"w" * 32
PW = secrets.token_urlsafe(12)


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed_cert(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def smtp(cert: tuple[Path, Path]) -> Iterator[SmtpReceiver]:
    server = SmtpReceiver(cert, "notifier", PW).start()
    yield server
    server.stop()


def test_email_goes_over_starttls_with_auth_and_carries_its_key(smtp: SmtpReceiver, cert: tuple[Path, Path]) -> None:
    ch = EmailChannel("127.0.0.1", smtp.port, "sleepstack@localhost", user="notifier", password=PW, cafile=str(cert[0]))
    ch.send("nurse@ward7.example.org", "abc123", MSG)
    assert smtp.messages == [("abc123", "nurse@ward7.example.org", MSG["subject"], MSG["text"])]
    assert smtp.logins == ["notifier"]


def test_email_refused_without_tls_or_with_a_wrong_password_or_an_untrusted_cert(
    smtp: SmtpReceiver, cert: tuple[Path, Path]
) -> None:
    plain = EmailChannel("127.0.0.1", smtp.port, "s@localhost", user="notifier", password=PW, starttls=False)
    with pytest.raises(ChannelError, match="email: SMTP"):
        plain.send("a@b.org", "k1", MSG)
    wrong = EmailChannel("127.0.0.1", smtp.port, "s@localhost", user="notifier", password=PW + "x", cafile=str(cert[0]))
    with pytest.raises(ChannelError, match=r"email: SMTP(AuthenticationError|ServerDisconnected)"):
        wrong.send("a@b.org", "k2", MSG)
    untrusted = EmailChannel("127.0.0.1", smtp.port, "s@localhost", user="notifier", password=PW)
    with pytest.raises(ChannelError, match="SSLCertVerificationError"):
        untrusted.send("a@b.org", "k3", MSG)
    assert smtp.messages == []


def test_a_webhook_is_signed_and_the_receiver_verifies_it() -> None:
    hook = WebhookReceiver(SECRET).start()
    try:
        WebhookChannel(SECRET).send(hook.url, "key-1", MSG)
        assert hook.received == [("key-1", True, {"kind": "breathing_pause"})]
        with pytest.raises(ChannelError, match="HTTP 401"):  # signed with another key: refused
            WebhookChannel(b"x" * 32).send(hook.url, "key-2", MSG)
        assert hook.keys() == {"key-1": 1}
    finally:
        hook.stop()


def test_the_signature_refuses_a_replay_outside_the_tolerance_and_a_changed_body() -> None:
    body = orjson.dumps({"kind": "hr_high"})
    now = time.time()
    header = sign(SECRET, body, int(now))
    assert verify_signature(SECRET, body, header, now=now)
    assert not verify_signature(SECRET, body, header, now=now + 301)  # replayed 5 min later
    assert not verify_signature(SECRET, body + b" ", header, now=now)
    assert not verify_signature(SECRET, body, "v1=00", now=now)
    # the documented scheme: HMAC-SHA256 over "t.body"
    import hashlib
    import hmac

    t = int(now)
    assert header == f"t={t},v1={hmac.new(SECRET, f'{t}.'.encode() + body, hashlib.sha256).hexdigest()}"


def test_a_failing_endpoint_and_a_dead_port_raise_channel_errors() -> None:
    hook = WebhookReceiver(SECRET, fail_with=503).start()
    try:
        with pytest.raises(ChannelError, match="HTTP 503"):
            WebhookChannel(SECRET).send(hook.url, "k", MSG)
    finally:
        hook.stop()
    with pytest.raises(ChannelError, match="webhook: "):
        WebhookChannel(SECRET, timeout_s=2).send(hook.url, "k", MSG)
