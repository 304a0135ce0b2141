"""``sleepstack bench notify``: latency from an episode's open to its message accepted, on the local path.

The real notifier service (``python -m sleepstack.services notifier``, its polling as in
the stack) runs in a private home with a routes file sending each clinical episode to one
e-mail address (a loopback aiosmtpd with STARTTLS and AUTH) and one webhook (a loopback
receiver verifying signatures). Episodes are written into the embedded live store one at a
time, as the speed layer writes them, at seeded random gaps of 0.3-3 s; the latency of a
message is the receiver's acceptance minus the write. Goal (issue 28): p95 <= 10 s.
"""

from __future__ import annotations

import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["bench_notify"]


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def bench_notify(episodes: int = 20, seed: int = 0) -> dict[str, Any]:
    from core.live.alerts import alert_id
    from core.notify import Recipient, idempotency_key
    from local.live_store import LocalLiveStore
    from sleepstack.notify.receivers import SmtpReceiver, WebhookReceiver, self_signed_cert
    from sleepstack.settings import Settings

    rng = random.Random(seed)  # noqa: S311 - the gaps between episodes, not a secret
    secret = secrets.token_hex(16)
    with tempfile.TemporaryDirectory(prefix="sleepstack-bench-notify-") as tmp:
        root = Path(tmp)
        cert = self_signed_cert(root / "tls")
        smtp = SmtpReceiver(cert, "notifier", secret).start()
        hook = WebhookReceiver(secret.encode()).start()
        routes = root / "routes.yaml"
        routes.write_text(
            "routes:\n  - name: bench\n    category: clinical\n    tiers:\n      - recipients:\n"
            f"          - email: nurse@ward.example.org\n          - webhook: {hook.url}\n"
        )
        home = root / "home"
        env = Settings.from_env(
            {
                "SLEEPSTACK_HOME": str(home),
                "SLEEPSTACK_ALERT_ROUTES": str(routes),
                "SLEEPSTACK_SMTP_HOST": "127.0.0.1",
                "SLEEPSTACK_SMTP_PORT": str(smtp.port),
                "SLEEPSTACK_SMTP_USER": "notifier",
                "SLEEPSTACK_SMTP_PASSWORD": secret,
                "SLEEPSTACK_SMTP_CAFILE": str(cert[0]),
                "SLEEPSTACK_WEBHOOK_SECRET": secret,
            }
        ).child_env()
        store = LocalLiveStore(home / "serving" / "live.sqlite")
        child = subprocess.Popen(
            [sys.executable, "-m", "sleepstack.services", "notifier"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        written: dict[str, float] = {}
        try:
            time.sleep(3.0)  # the service's start-up is not part of the latency
            for i in range(episodes):
                now_ms = int(time.time() * 1000)
                doc = {
                    "doc_id": alert_id(f"BENCH:{i:03d}", "breathing_pause", now_ms),
                    "subject_id": f"B{i:03d}",
                    "device_id": f"BENCH:{i:03d}",
                    "source": "bed",
                    "kind": "breathing_pause",
                    "category": "clinical",
                    "status": "open",
                    "start_ms": now_ms - 10_000,
                    "end_ms": None,
                    "raised_ms": now_ms,
                    "duration_s": 0.0,
                    "value": None,
                    "threshold": None,
                }
                store.index([("alerts", doc)])
                t = time.time()
                for r in (Recipient("email", "nurse@ward.example.org"), Recipient("webhook", hook.url)):
                    written[idempotency_key(str(doc["doc_id"]), "open", "bench", r, 0)] = t
                time.sleep(rng.uniform(0.3, 3.0))
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and len(smtp.arrived) + len(hook.arrived) < len(written):
                time.sleep(0.1)
        finally:
            child.terminate()
            child.wait(timeout=30)
            smtp.stop()
            hook.stop()
            store.close()
    arrived = {**smtp.arrived, **hook.arrived}
    lat = {"email": [], "webhook": []}  # type: dict[str, list[float]]
    for key, t in written.items():
        if key in arrived:
            lat["email" if key in smtp.arrived else "webhook"].append(arrived[key] - t)
    every = lat["email"] + lat["webhook"]
    figures: dict[str, Any] = {
        "episodes": episodes,
        "messages_expected": len(written),
        "messages_accepted": len(every),
    }
    if every:
        figures.update(
            p50_s=round(statistics.median(every), 3),
            p95_s=round(_pct(every, 0.95), 3),
            max_s=round(max(every), 3),
            email_p95_s=round(_pct(lat["email"], 0.95), 3) if lat["email"] else None,
            webhook_p95_s=round(_pct(lat["webhook"], 0.95), 3) if lat["webhook"] else None,
            goal_p95_s=10.0,
        )
    return figures
