"""Exactly once through kill -9: the notifier service in a child process, SIGKILLed at several
points (before it sends, and right after the SMTP server or webhook accepted a message but
before the outbox committed it), restarted each time; at the end every expected idempotency
key reached its receiver, and none was lost. A resend after a kill carries the same key, so
the receivers (which dedupe by key) hold exactly one message per (episode transition, recipient).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.live.alerts import alert_id
from core.notify import Recipient, idempotency_key
from local.live_store import LocalLiveStore
from local.outbox import Outbox
from sleepstack.notify.receivers import SmtpReceiver, WebhookReceiver, self_signed_cert
from sleepstack.settings import Settings
from tests.conftest import REPO_ROOT

SECRET = "k" * 32
T0 = 1_772_416_800_000  # 2026-03-02 02:00 UTC


def _episodes(n: int) -> list[dict[str, object]]:
    docs = []
    for i in range(n):
        start = T0 + i * 120_000
        closed = i % 2 == 0
        docs.append(
            {
                "doc_id": alert_id(f"AA:{i:02d}", "breathing_pause", start),
                "subject_id": f"S{i:03d}",
                "device_id": f"AA:{i:02d}",
                "source": "bed",
                "kind": "breathing_pause",
                "category": "clinical",
                "status": "closed" if closed else "open",
                "start_ms": start,
                "end_ms": start + 40_000 if closed else None,
                "raised_ms": start + 10_000,
                "duration_s": 40.0 if closed else 0.0,
                "value": 31.0,
                "threshold": 10.0,
            }
        )
    return docs


@pytest.mark.slow
def test_kill_9_at_any_point_loses_no_message_and_receivers_see_each_key(tmp_path: Path) -> None:
    cert = self_signed_cert(tmp_path / "tls")
    smtp = SmtpReceiver(cert, "notifier", SECRET).start()
    hook = WebhookReceiver(SECRET.encode()).start()
    home = tmp_path / "home"
    routes = tmp_path / "routes.yaml"
    routes.write_text(
        "routes:\n  - name: night\n    notify_close: true\n    tiers:\n"
        f"      - recipients:\n          - email: nurse@ward.example.org\n          - webhook: {hook.url}\n"
    )
    docs = _episodes(8)
    store = LocalLiveStore(home / "serving" / "live.sqlite")
    store.index([("alerts", d) for d in docs])
    store.close()
    recipients = [Recipient("email", "nurse@ward.example.org"), Recipient("webhook", hook.url)]
    expected = {
        idempotency_key(str(d["doc_id"]), tr, "night", r, 0)
        for d in docs
        for tr in (["open", "close"] if d["status"] == "closed" else ["open"])
        for r in recipients
    }
    assert len(expected) == 24
    settings = Settings.from_env(
        {
            "SLEEPSTACK_HOME": str(home),
            "SLEEPSTACK_ALERT_ROUTES": str(routes),
            "SLEEPSTACK_SMTP_HOST": "127.0.0.1",
            "SLEEPSTACK_SMTP_PORT": str(smtp.port),
            "SLEEPSTACK_SMTP_USER": "notifier",
            "SLEEPSTACK_SMTP_PASSWORD": SECRET,
            "SLEEPSTACK_SMTP_CAFILE": str(cert[0]),
            "SLEEPSTACK_WEBHOOK_SECRET": SECRET,
        }
    )
    env = settings.child_env()
    env["PYTHONPATH"] = str(REPO_ROOT)
    env["SLEEPSTACK_NOTIFY_CRASH_WINDOW_S"] = "0.4"  # a wide window between acceptance and commit

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "sleepstack.services", "notifier"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def received() -> int:
        return sum(smtp.keys().values()) + sum(hook.keys().values())

    kills = 0
    try:
        child = start()  # 1: killed while it starts and plans
        time.sleep(0.5)
        child.send_signal(signal.SIGKILL)
        child.wait()
        kills += 1
        for threshold in (3, 9, 15):  # 2-4: killed right after a message was accepted, before its commit
            child = start()
            deadline = time.monotonic() + 60
            while received() < threshold and time.monotonic() < deadline:
                time.sleep(0.01)
            child.send_signal(signal.SIGKILL)
            child.wait()
            kills += 1
        child = start()  # the last run finishes the outbox
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if set(smtp.keys()) | set(hook.keys()) >= expected:
                break
            time.sleep(0.1)
        time.sleep(0.6)  # the last commit
        child.send_signal(signal.SIGTERM)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
        smtp.stop()
        hook.stop()
    got = smtp.keys() + hook.keys()
    assert set(got) == expected, f"missing {len(expected - set(got))}, unexpected {len(set(got) - expected)}"
    resent = {k: n for k, n in got.items() if n > 1}
    # only a message in flight at a kill may be resent (same key: the receiver drops it)
    assert len(resent) <= kills - 1 and all(n == 2 for n in resent.values())
    outbox = Outbox(home / "notify" / "outbox.sqlite")
    counts = outbox.counts(int(time.time() * 1000))
    assert counts["sent"] == 24 and counts["queued"] == 0 and counts["failed"] == 0
    print(f"kill -9 x{kills}: {len(expected)} keys expected, {len(set(got))} received, {len(resent)} resent (deduped)")
