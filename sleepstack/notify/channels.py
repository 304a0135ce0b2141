"""Delivery channels: e-mail over SMTP (STARTTLS, AUTH), JSON webhooks signed with
HMAC-SHA256, and on AWS an SNS topic (:class:`SnsChannel`) that e-mail and SMS subscriptions
hang off.

Every message carries its idempotency key: the e-mail's ``Message-ID`` is
``<KEY@sleepstack>`` and the webhook sends an ``Idempotency-Key`` header, so a receiver
drops the resend the outbox makes after a crash between acceptance and commit.

The webhook signature follows Stripe's scheme: ``X-Sleepstack-Signature: t=<unix>,v1=<hex>``
with ``hex = HMAC-SHA256(secret, f"{t}.{body}")`` (RFC 2104); :func:`verify_signature`
checks it in constant time and refuses a timestamp outside the tolerance (a replay).
"""

from __future__ import annotations

import hashlib
import hmac
import smtplib
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any, Final, Protocol

import orjson

from core.notify import SEVERITY

__all__ = [
    "SIGNATURE_HEADER",
    "TOLERANCE_S",
    "Channel",
    "ChannelError",
    "EmailChannel",
    "SnsChannel",
    "WebhookChannel",
    "sign",
    "verify_signature",
]

SIGNATURE_HEADER: Final = "X-Sleepstack-Signature"
#: How old (or how far ahead) a signed webhook may be before the receiver refuses it.
TOLERANCE_S: Final = 300


class ChannelError(Exception):
    """A channel could not deliver one message (its text names no person or value)."""


class Channel(Protocol):
    def send(self, address: str, key: str, message: dict[str, Any]) -> None: ...


def sign(secret: bytes, body: bytes, t: int) -> str:
    """The signature header's value for ``body`` sent at unix time ``t``."""
    mac = hmac.new(secret, f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify_signature(
    secret: bytes, body: bytes, header: str, *, now: float | None = None, tolerance_s: int = TOLERANCE_S
) -> bool:
    """Whether ``header`` signs ``body`` with ``secret`` within ``tolerance_s`` of ``now``."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        t = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - t) > tolerance_s:
        return False
    expected = sign(secret, body, t).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


@dataclass
class EmailChannel:
    """Sends through an SMTP relay: STARTTLS when ``starttls`` (verified against ``cafile`` or
    the system's CAs), AUTH when a user is set."""

    host: str
    port: int
    sender: str
    user: str | None = None
    password: str | None = None
    starttls: bool = True
    cafile: str | None = None
    timeout_s: float = 10.0

    def send(self, address: str, key: str, message: dict[str, Any]) -> None:
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = self.sender, address, message["subject"]
        msg["Message-ID"] = f"<{key}@sleepstack>"
        msg["X-Sleepstack-Idempotency-Key"] = key
        msg.set_content(message["text"])
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout_s) as smtp:
                if self.starttls:
                    smtp.starttls(context=ssl.create_default_context(cafile=self.cafile))
                if self.user:
                    smtp.login(self.user, self.password or "")
                smtp.send_message(msg)
        except (OSError, smtplib.SMTPException) as exc:
            raise ChannelError(f"email: {type(exc).__name__}") from exc


@dataclass
class WebhookChannel:
    """POSTs the message's JSON, signed (:func:`sign`) with ``secret``."""

    secret: bytes
    timeout_s: float = 10.0

    def send(self, address: str, key: str, message: dict[str, Any]) -> None:
        body = orjson.dumps(message["payload"])
        req = urllib.request.Request(address, data=body, method="POST")  # noqa: S310 - http(s) checked by the routes
        req.add_header("Content-Type", "application/json")
        req.add_header("Idempotency-Key", key)
        req.add_header(SIGNATURE_HEADER, sign(self.secret, body, int(time.time())))
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:  # noqa: S310 - http(s) checked by the routes file
                if not 200 <= resp.status < 300:
                    raise ChannelError(f"webhook: HTTP {resp.status}")
        except urllib.error.HTTPError as exc:
            raise ChannelError(f"webhook: HTTP {exc.code}") from exc
        except OSError as exc:
            raise ChannelError(f"webhook: {type(exc).__name__}") from exc


#: SNS's limits: a ``Subject`` is ASCII, one line, at most 100 characters.
_SNS_SUBJECT_CHARS: Final = 100


@dataclass
class SnsChannel:
    """Publishes to the SNS topic named by the recipient's address (a topic ARN) through an
    injected boto3 ``sns`` client.

    The body is the message's plain text (what SMS and e-mail subscribers read: label, kind,
    time, link; values only when the route opts in); the ``Subject`` (e-mail subscribers) is
    its subject line made ASCII. Message attributes let subscriptions filter (SNS filter
    policies): ``kind``, ``severity`` (:data:`core.notify.SEVERITY`), ``category``,
    ``transition``, ``route``, ``tier`` and ``idempotency_key``.
    """

    client: Any

    def send(self, address: str, key: str, message: dict[str, Any]) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        payload = message.get("payload", {})
        kind = str(payload.get("kind", ""))
        attributes = {
            "kind": kind,
            "severity": SEVERITY.get(kind, "low"),
            "category": str(payload.get("category", "")),
            "transition": str(payload.get("transition", "")),
            "route": str(message.get("route", "")),
            "idempotency_key": key,
        }
        subject = " ".join(str(message["subject"]).encode("ascii", "replace").decode().split())
        try:
            self.client.publish(
                TopicArn=address,
                Message=message["text"],
                Subject=subject[:_SNS_SUBJECT_CHARS],
                MessageAttributes={
                    **{k: {"DataType": "String", "StringValue": v} for k, v in attributes.items() if v},
                    "tier": {"DataType": "Number", "StringValue": str(int(payload.get("tier", 0)))},
                },
            )
        except ClientError as exc:
            raise ChannelError(f"sns: {exc.response.get('Error', {}).get('Code', 'error')}") from exc
        except BotoCoreError as exc:
            raise ChannelError(f"sns: {type(exc).__name__}") from exc
