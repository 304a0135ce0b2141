"""Settings, read from the environment once, here and nowhere else.

| variable | meaning | default |
|---|---|---|
| ``SLEEPSTACK_TARGET`` | ``local`` (embedded stack) or ``aws`` | ``local`` |
| ``SLEEPSTACK_HOME`` | local state: lake, stores, checkpoints, dead letters | ``./.sleepstack`` |
| ``SLEEPSTACK_ENV`` | environment name used in resource names (template parameter) | ``dev`` |
| ``SLEEPSTACK_TZ`` | subjects' time zone, for noon-to-noon nights | ``UTC`` |
| ``AWS_REGION`` (or ``AWS_DEFAULT_REGION``) | region of the AWS clients (local: a label only) | ``us-east-1`` |
| ``OPENSEARCH_URL`` | live store: an OpenSearch endpoint instead of the embedded store | unset |
| ``SLEEPSTACK_ATHENA_WORKGROUP`` / ``SLEEPSTACK_ATHENA_S3_STAGING`` | Athena (aws) | ``primary`` / unset |
| ``SLEEPSTACK_DEAD_LETTER_BUCKET`` | on-failure destination of the Lambda (aws) | unset |
| ``SLEEPSTACK_RAW_BUCKET`` / ``SLEEPSTACK_CURATED_BUCKET`` | the raw and curated buckets (aws; ``erase``) | unset |
| ``SLEEPSTACK_STATE_TABLE`` | DynamoDB table of the speed layer's device state (aws) | unset |
| ``SLEEPSTACK_REGISTRY_TABLE`` | DynamoDB table of subjects, devices and assignments (aws) | unset |
| ``OPENSEARCH_DASHBOARDS_URL`` | where ``sleepstack opensearch setup`` imports dashboards | unset |
| ``SLEEPSTACK_BATCH_AT`` | local time (``HH:MM``) the stack's scheduler stages the closed night | ``12:30`` |
| ``SLEEPSTACK_DASHBOARD_PORT`` | the stack's dashboard port on 127.0.0.1 (a free one if taken) | ``8787`` |
| ``SLEEPSTACK_CHROMIUM`` | the Chromium that prints night reports to PDF | ``/usr/bin/chromium`` |
| ``SLEEPSTACK_LIVE_STORE`` | the local stack's live store: ``embedded`` or ``opensearch`` (a node) | ``embedded`` |
| ``SLEEPSTACK_OPENSEARCH_DIST`` | the OpenSearch that ``make opensearch`` unpacked | ``build/opensearch/...`` |
| ``SLEEPSTACK_SEND_LINGER_MS`` | how long the sender may hold records to fill an aggregate (0-60000 ms) | ``10000`` |
| ``SLEEPSTACK_STAGING_RR`` | ``on``: the nightly job stages nights with a strap's RR by the RR model | ``off`` |
| ``SLEEPSTACK_IDLE_POLL_S`` | the local stack's longest pause between polls when idle (0.2-5 s) | ``1.0`` |
| ``SLEEPSTACK_EPOCH_WRITES`` | ``on``: device states written at epoch ends (ADR 7); ``off``: every batch | ``on`` |
| ``SLEEPSTACK_ALERT_RULES`` | JSON object overriding alert thresholds (:class:`core.live.alerts.AlertRules`) | ``{}`` |
| ``SLEEPSTACK_ALERT_ROUTES`` | the notifier's routes file (YAML, docs/alerts.md); unset: the notifier idles | unset |
| ``SLEEPSTACK_SMTP_HOST`` | the notifier's e-mail relay (unset: no e-mail channel) | unset |
| ``SLEEPSTACK_SMTP_PORT`` | the relay's port | ``587`` |
| ``SLEEPSTACK_SMTP_USER`` | SMTP AUTH user (unset: no AUTH) | unset |
| ``SLEEPSTACK_SMTP_PASSWORD`` | SMTP AUTH password | unset |
| ``SLEEPSTACK_SMTP_FROM`` | the messages' sender | ``sleepstack@localhost`` |
| ``SLEEPSTACK_SMTP_STARTTLS`` | ``on``: STARTTLS before AUTH (certificate verified) | ``on`` |
| ``SLEEPSTACK_SMTP_CAFILE`` | a CA bundle that verifies the relay's certificate | system CAs |
| ``SLEEPSTACK_WEBHOOK_SECRET`` | the HMAC-SHA256 key that signs webhooks | unset (no webhooks) |
| ``SLEEPSTACK_DASHBOARD_BASE`` | the dashboard's URL the acknowledgement links point to | ``http://127.0.0.1:8787`` |
| ``SLEEPSTACK_CLINICAL_TOPIC_ARN`` | the SNS topic the notifier publishes alert transitions to (aws) | unset |
| ``SLEEPSTACK_OUTBOX_TABLE`` | DynamoDB table of the notifier's outbox (aws) | unset |
| ``SLEEPSTACK_NOTIFY_POLL_S`` | the AWS notifier's pause between polls inside an invocation (0.5-30 s) | ``2`` |
| ``SLEEPSTACK_NOTIFY_CRASH_WINDOW_S`` | tests only: the notifier pauses between a send and its commit | ``0`` |
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast, get_args

from core.contract.kpl import DEFAULT_LINGER_MS
from core.errors import ConfigError
from core.live.alerts import AlertRules

if TYPE_CHECKING:
    from local.home import Home

__all__ = ["LiveStoreKind", "Settings", "Target", "use_keras_backend"]

#: Where the stack runs: the embedded local stand-ins, or the deployed AWS services.
Target = Literal["local", "aws"]
#: The local stack's live store: the embedded SQLite store, or a local OpenSearch node.
LiveStoreKind = Literal["embedded", "opensearch"]


@dataclass(frozen=True, slots=True)
class Settings:
    target: Target
    home: Path
    environment: str
    tz: str
    region: str
    opensearch_url: str | None
    athena_workgroup: str
    athena_s3_staging: str | None
    dead_letter_bucket: str | None
    state_table: str | None = None
    raw_bucket: str | None = None
    curated_bucket: str | None = None
    registry_table: str | None = None
    opensearch_dashboards_url: str | None = None
    alert_rules: dict[str, Any] = field(default_factory=dict)
    batch_at: str = "12:30"
    dashboard_port: int = 8787
    chromium: str = "/usr/bin/chromium"
    live_store: LiveStoreKind = "embedded"
    opensearch_dist: Path | None = None
    send_linger_ms: int = DEFAULT_LINGER_MS
    staging_rr: bool = False
    idle_poll_s: float = 1.0
    #: The speed layer writes device states at epoch boundaries under a shard lease (ADR 7).
    epoch_writes: bool = True
    #: The notifier's routes file (``SLEEPSTACK_ALERT_ROUTES``); without it the notifier idles.
    alert_routes: Path | None = None
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_user: str | None = None
    smtp_password: str | None = field(default=None, repr=False)
    smtp_from: str = "sleepstack@localhost"
    smtp_starttls: bool = True
    smtp_cafile: str | None = None
    webhook_secret: str | None = field(default=None, repr=False)
    #: Where the one-click acknowledgement links point (``SLEEPSTACK_DASHBOARD_BASE``).
    dashboard_base: str = "http://127.0.0.1:8787"
    #: The SNS topic of clinical alerts (``SLEEPSTACK_CLINICAL_TOPIC_ARN``, aws).
    clinical_topic_arn: str | None = None
    #: The notifier's outbox table (``SLEEPSTACK_OUTBOX_TABLE``, aws).
    outbox_table: str | None = None
    #: The notifier's pause between polls (``SLEEPSTACK_NOTIFY_POLL_S``).
    notify_poll_s: float = 2.0
    #: Fault injection for the kill -9 test only: the notifier stalls for this many seconds
    #: between a message's acceptance and its commit (``SLEEPSTACK_NOTIFY_CRASH_WINDOW_S``).
    notify_crash_window_s: float = 0.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        e = os.environ if env is None else env
        target = e.get("SLEEPSTACK_TARGET", "local")
        if target not in get_args(Target):
            raise ConfigError("SLEEPSTACK_TARGET", f"must be 'local' or 'aws', not {target!r}")
        try:
            rules = json.loads(e.get("SLEEPSTACK_ALERT_RULES") or "{}")
        except json.JSONDecodeError as exc:
            raise ConfigError("SLEEPSTACK_ALERT_RULES", f"is not a JSON object: {exc}") from None
        if not isinstance(rules, dict):
            raise ConfigError("SLEEPSTACK_ALERT_RULES", "must be a JSON object")
        try:
            AlertRules.from_dict(rules)
        except (TypeError, ValueError) as exc:
            raise ConfigError("SLEEPSTACK_ALERT_RULES", f"is not valid: {exc}") from None
        batch_at = e.get("SLEEPSTACK_BATCH_AT", "12:30")
        hh, _, mm = batch_at.partition(":")
        if not (hh.isdigit() and mm.isdigit() and int(hh) < 24 and int(mm) < 60):
            raise ConfigError("SLEEPSTACK_BATCH_AT", f"must be a local time HH:MM, not {batch_at!r}")
        port = e.get("SLEEPSTACK_DASHBOARD_PORT", "8787")
        if not port.isdigit() or int(port) > 65535:
            raise ConfigError("SLEEPSTACK_DASHBOARD_PORT", f"must be a TCP port (0-65535), not {port!r}")
        live = e.get("SLEEPSTACK_LIVE_STORE", "embedded")
        if live not in get_args(LiveStoreKind):
            raise ConfigError("SLEEPSTACK_LIVE_STORE", f"must be 'embedded' or 'opensearch', not {live!r}")
        dist = e.get("SLEEPSTACK_OPENSEARCH_DIST")
        linger = e.get("SLEEPSTACK_SEND_LINGER_MS", str(DEFAULT_LINGER_MS))
        if not linger.isdigit() or int(linger) > 60_000:
            raise ConfigError("SLEEPSTACK_SEND_LINGER_MS", f"must be milliseconds from 0 to 60000, not {linger!r}")
        staging_rr = _on_off(e, "SLEEPSTACK_STAGING_RR", "off")
        idle_poll_s = _seconds(e, "SLEEPSTACK_IDLE_POLL_S", "1.0", 0.2, 5.0)
        epoch_writes = _on_off(e, "SLEEPSTACK_EPOCH_WRITES", "on")
        return cls(
            target=cast(Target, target),
            home=Path(e.get("SLEEPSTACK_HOME", ".sleepstack")).resolve(),
            environment=e.get("SLEEPSTACK_ENV", "dev"),
            tz=e.get("SLEEPSTACK_TZ", "UTC"),
            region=e.get("AWS_REGION", e.get("AWS_DEFAULT_REGION", "us-east-1")),
            opensearch_url=e.get("OPENSEARCH_URL") or None,
            athena_workgroup=e.get("SLEEPSTACK_ATHENA_WORKGROUP", "primary"),
            athena_s3_staging=e.get("SLEEPSTACK_ATHENA_S3_STAGING") or None,
            dead_letter_bucket=e.get("SLEEPSTACK_DEAD_LETTER_BUCKET") or None,
            state_table=e.get("SLEEPSTACK_STATE_TABLE") or None,
            raw_bucket=e.get("SLEEPSTACK_RAW_BUCKET") or None,
            curated_bucket=e.get("SLEEPSTACK_CURATED_BUCKET") or None,
            registry_table=e.get("SLEEPSTACK_REGISTRY_TABLE") or None,
            opensearch_dashboards_url=e.get("OPENSEARCH_DASHBOARDS_URL") or None,
            alert_rules=rules,
            batch_at=batch_at,
            dashboard_port=int(port),
            chromium=e.get("SLEEPSTACK_CHROMIUM", "/usr/bin/chromium"),
            live_store=cast(LiveStoreKind, live),
            opensearch_dist=Path(dist).resolve() if dist else None,
            send_linger_ms=int(linger),
            staging_rr=staging_rr,
            idle_poll_s=idle_poll_s,
            epoch_writes=epoch_writes,
            **_notify_settings(e),
        )

    def child_env(self) -> dict[str, str]:
        """The environment for a child process (a stack service) that must see these settings."""
        env = dict(os.environ)
        env.update(
            SLEEPSTACK_TARGET=self.target,
            SLEEPSTACK_HOME=str(self.home),
            SLEEPSTACK_ENV=self.environment,
            SLEEPSTACK_TZ=self.tz,
            SLEEPSTACK_BATCH_AT=self.batch_at,
            SLEEPSTACK_DASHBOARD_PORT=str(self.dashboard_port),
            SLEEPSTACK_CHROMIUM=self.chromium,
            SLEEPSTACK_LIVE_STORE=self.live_store,
            SLEEPSTACK_ALERT_RULES=json.dumps(self.alert_rules),
            SLEEPSTACK_SEND_LINGER_MS=str(self.send_linger_ms),
            SLEEPSTACK_STAGING_RR="on" if self.staging_rr else "off",
            SLEEPSTACK_EPOCH_WRITES="on" if self.epoch_writes else "off",
            SLEEPSTACK_SMTP_PORT=str(self.smtp_port),
            SLEEPSTACK_SMTP_FROM=self.smtp_from,
            SLEEPSTACK_SMTP_STARTTLS="on" if self.smtp_starttls else "off",
            SLEEPSTACK_DASHBOARD_BASE=self.dashboard_base,
        )
        # these settings' own values, never ones the parent merely inherited: a demo built from
        # its own settings must not send its children to an OpenSearch the caller's shell names
        for key, value in (
            ("OPENSEARCH_URL", self.opensearch_url),
            ("SLEEPSTACK_OPENSEARCH_DIST", self.opensearch_dist),
            ("SLEEPSTACK_ALERT_ROUTES", self.alert_routes),
            ("SLEEPSTACK_SMTP_HOST", self.smtp_host),
            ("SLEEPSTACK_SMTP_USER", self.smtp_user),
            ("SLEEPSTACK_SMTP_PASSWORD", self.smtp_password),
            ("SLEEPSTACK_SMTP_CAFILE", self.smtp_cafile),
            ("SLEEPSTACK_WEBHOOK_SECRET", self.webhook_secret),
        ):
            if value:
                env[key] = str(value)
            else:
                env.pop(key, None)
        return env

    @property
    def paths(self) -> Home:
        """Every path under ``SLEEPSTACK_HOME`` (:class:`local.home.Home`; the Lambda has no home)."""
        from local.home import Home

        return Home(self.home)

    @property
    def lake(self) -> Path:
        return self.paths.lake

    @property
    def template(self) -> Path:
        """The production template the local stack mirrors (package data of ``infra``)."""
        from local.template import TEMPLATE_PATH

        return TEMPLATE_PATH


def use_keras_backend(default: str = "jax") -> str:
    """The Keras backend for the optional anchor models: ``KERAS_BACKEND`` if set, else ``default``.

    Keras reads the variable once, when it is first imported, so this runs before that.
    """
    return os.environ.setdefault("KERAS_BACKEND", default)


def _on_off(e: Mapping[str, str], name: str, default: str) -> bool:
    """A switch read as ``on`` or ``off``; anything else is refused naming it."""
    value = e.get(name, default)
    if value not in ("on", "off"):
        raise ConfigError(name, f"must be 'on' or 'off', not {value!r}")
    return value == "on"


def _seconds(e: Mapping[str, str], name: str, default: str, lo: float, hi: float) -> float:
    """Seconds from ``lo`` to ``hi``; anything else is refused naming it."""
    text = e.get(name, default)
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not lo <= value <= hi:
        raise ConfigError(name, f"must be seconds from {lo:g} to {hi:g}, not {text!r}")
    return value


def _notify_settings(e: Mapping[str, str]) -> dict[str, Any]:
    """The notifier's settings (:mod:`sleepstack.notify`): routes file, SMTP relay, webhook key,
    and on AWS its SNS topic and outbox table."""
    smtp_port = e.get("SLEEPSTACK_SMTP_PORT", "587")
    if not smtp_port.isdigit() or not 0 < int(smtp_port) <= 65535:
        raise ConfigError("SLEEPSTACK_SMTP_PORT", f"must be a TCP port (1-65535), not {smtp_port!r}")
    starttls = _on_off(e, "SLEEPSTACK_SMTP_STARTTLS", "on")
    crash_s = _seconds(e, "SLEEPSTACK_NOTIFY_CRASH_WINDOW_S", "0", 0.0, 60.0)
    routes = e.get("SLEEPSTACK_ALERT_ROUTES")
    return {
        "alert_routes": Path(routes).resolve() if routes else None,
        "smtp_host": e.get("SLEEPSTACK_SMTP_HOST") or None,
        "smtp_port": int(smtp_port),
        "smtp_user": e.get("SLEEPSTACK_SMTP_USER") or None,
        "smtp_password": e.get("SLEEPSTACK_SMTP_PASSWORD") or None,
        "smtp_from": e.get("SLEEPSTACK_SMTP_FROM", "sleepstack@localhost"),
        "smtp_starttls": starttls,
        "smtp_cafile": e.get("SLEEPSTACK_SMTP_CAFILE") or None,
        "webhook_secret": e.get("SLEEPSTACK_WEBHOOK_SECRET") or None,
        "dashboard_base": e.get("SLEEPSTACK_DASHBOARD_BASE", "http://127.0.0.1:8787"),
        "notify_crash_window_s": crash_s,
        "clinical_topic_arn": e.get("SLEEPSTACK_CLINICAL_TOPIC_ARN") or None,
        "outbox_table": e.get("SLEEPSTACK_OUTBOX_TABLE") or None,
        "notify_poll_s": _seconds(e, "SLEEPSTACK_NOTIFY_POLL_S", "2", 0.5, 30.0),
    }
