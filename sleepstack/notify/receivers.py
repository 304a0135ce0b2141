"""Loopback receivers for the notifier's tests and the demo: a real SMTP server (aiosmtpd, with
STARTTLS and AUTH) and a webhook endpoint that verifies signatures. Both count messages by
idempotency key, so a resend after a crash shows as a duplicate, not a second alert.

aiosmtpd is a development dependency: imported only when a server is made.
"""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import threading
import time
from collections import Counter
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson

from sleepstack.notify.channels import SIGNATURE_HEADER, verify_signature

__all__ = ["SmtpReceiver", "WebhookReceiver", "self_signed_cert"]


def self_signed_cert(folder: Path, host: str = "127.0.0.1") -> tuple[Path, Path]:
    """A throwaway self-signed certificate for ``host`` (cert.pem, key.pem, owner-only)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.touch(mode=0o600)
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SmtpReceiver:
    """aiosmtpd on 127.0.0.1 requiring STARTTLS and AUTH (``user``/``password``) when a
    certificate is given. ``messages``: (idempotency key, recipient, subject, text)."""

    def __init__(self, cert: tuple[Path, Path] | None, user: str, password: str) -> None:
        import logging

        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult, LoginPassword

        logging.getLogger("mail.log").setLevel(logging.ERROR)  # aiosmtpd's own deprecation notes

        self.messages: list[tuple[str, str, str, str]] = []
        #: when each key first arrived (unix seconds)
        self.arrived: dict[str, float] = {}
        self.logins: list[str] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                msg = message_from_bytes(envelope.content)
                key = str(msg.get("X-Sleepstack-Idempotency-Key", ""))
                body = msg.get_payload(decode=True)
                text = body.decode().replace("\r\n", "\n") if isinstance(body, bytes) else ""
                with receiver._lock:
                    receiver.arrived.setdefault(key, time.time())
                    for rcpt in envelope.rcpt_tos:
                        receiver.messages.append((key, rcpt, str(msg["Subject"]), text))
                return "250 Message accepted"

        def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> Any:
            ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
                user.encode(),
                password.encode(),
            )
            if ok:
                receiver.logins.append(user)
            return AuthResult(success=ok)

        params: dict[str, Any] = {}
        if cert is not None:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(str(cert[0]), str(cert[1]))
            params = {
                "tls_context": ctx,
                "require_starttls": True,
                "authenticator": authenticator,
                "auth_required": True,
            }
        self.port = _free_port()
        self.user, self.password = user, password
        self._controller = Controller(Handler(), hostname="127.0.0.1", port=self.port, **params)

    def start(self) -> SmtpReceiver:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def keys(self) -> Counter[str]:
        with self._lock:
            return Counter(k for k, *_ in self.messages)


class WebhookReceiver:
    """An HTTP endpoint on 127.0.0.1 that verifies each POST's signature with ``secret``.
    ``received``: (idempotency key, signature verified, JSON payload). ``fail_with`` makes
    it answer that status (a failing endpoint)."""

    def __init__(self, secret: bytes, fail_with: int | None = None) -> None:
        self.secret, self.fail_with = secret, fail_with
        self.received: list[tuple[str, bool, dict[str, Any]]] = []
        #: when each verified key first arrived (unix seconds)
        self.arrived: dict[str, float] = {}
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if receiver.fail_with is not None:
                    self.send_response(receiver.fail_with)
                    self.end_headers()
                    return
                ok = verify_signature(receiver.secret, body, self.headers.get(SIGNATURE_HEADER, ""))
                key = self.headers.get("Idempotency-Key", "")
                with receiver._lock:
                    if ok:
                        receiver.arrived.setdefault(key, time.time())
                    receiver.received.append((key, ok, orjson.loads(body)))
                self.send_response(200 if ok else 401)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def keys(self) -> Counter[str]:
        with self._lock:
            return Counter(k for k, ok, _ in self.received if ok)
