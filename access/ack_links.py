"""One-click acknowledgement links: signed, expiring tokens naming an alert and its recipient.

A token is ``base64url(payload) "." base64url(HMAC-SHA256(key, payload))`` (the layout of
a JWS compact serialization without its header, RFC 7515 §7.1; HMAC per RFC 2104), where
the payload is the canonical JSON ``{"a": alert_id, "r": recipient, "e": expires_ms,
"n": nonce}``. The 128-bit random nonce makes every link distinct and is what the store
consumes to make a link single use (:meth:`local.alert_acks.AlertAcks.consume_link`);
this module only signs and verifies (pure: no clock, no I/O). Signatures are compared in
constant time (:func:`hmac.compare_digest`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from typing import Final

from access.roles import AccessError

__all__ = ["MIN_KEY_BYTES", "LinkClaim", "LinkError", "LinkExpired", "sign_link", "verify_link"]

#: the shortest key accepted (RFC 2104 §3: at least the hash's output length, 32 bytes)
MIN_KEY_BYTES: Final = 32
_MAX_TOKEN: Final = 2048


class LinkError(AccessError):
    """An acknowledgement link is malformed or its signature is wrong (forged or another key)."""

    def __init__(self, reason: str) -> None:
        super().__init__("link", reason)


class LinkExpired(LinkError):
    """An acknowledgement link is genuine but past its expiry."""


@dataclass(frozen=True)
class LinkClaim:
    """What a verified link says: the alert, who it was sent to, until when (epoch ms), its nonce."""

    alert_id: str
    recipient: str
    expires_ms: int
    nonce: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise LinkError("the link is not well formed") from None


def _mac(payload: bytes, key: bytes) -> bytes:
    if len(key) < MIN_KEY_BYTES:
        raise AccessError("key", f"an acknowledgement key needs at least {MIN_KEY_BYTES} bytes, got {len(key)}")
    return hmac.new(key, payload, hashlib.sha256).digest()


def sign_link(alert_id: str, recipient: str, expires_ms: int, key: bytes, *, nonce: str | None = None) -> str:
    """A URL-safe token acknowledging ``alert_id`` for ``recipient`` until ``expires_ms``.

    ``nonce``: 128 random bits (URL-safe base64) unless given (tests, a notifier deriving it)."""
    if not alert_id or not recipient:
        raise AccessError("link", "an acknowledgement link needs an alert id and a recipient")
    claim = {"a": alert_id, "r": recipient, "e": int(expires_ms), "n": nonce or secrets.token_urlsafe(16)}
    payload = json.dumps(claim, sort_keys=True, separators=(",", ":")).encode()
    return f"{_b64(payload)}.{_b64(_mac(payload, key))}"


def verify_link(token: str, key: bytes, now_ms: int) -> LinkClaim:
    """The claim of a genuine, unexpired ``token``; :class:`LinkError` (forged, malformed) or
    :class:`LinkExpired` otherwise. The signature is checked before anything in the payload is read."""
    if len(token) > _MAX_TOKEN or token.count(".") != 1:
        raise LinkError("the link is not well formed")
    body, sig = token.split(".")
    payload, given = _unb64(body), _unb64(sig)
    if not hmac.compare_digest(given, _mac(payload, key)):
        raise LinkError("the link's signature is not valid")
    try:
        raw = json.loads(payload)
        claim = LinkClaim(str(raw["a"]), str(raw["r"]), int(raw["e"]), str(raw["n"]))
    except (ValueError, KeyError, TypeError):
        raise LinkError("the link is not well formed") from None
    if now_ms >= claim.expires_ms:
        raise LinkExpired("the link has expired")
    return claim
