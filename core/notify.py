"""Alert delivery as data: routes, episode transitions, idempotency keys, quiet hours, messages.

Pure: the notifier (:mod:`sleepstack.notify`) reads the routes file and the live store and
sends; here is only what it decides.

* Every alert episode document has an ``open`` transition (at ``raised_ms``) and, once
  closed, a ``close`` one (at ``end_ms``) — derived from the document, so a speed-layer
  retry or replay that rewrites the same document derives the same transitions.
* A route matches episodes by group (study/ward), kind, category and severity and names
  recipients per tier; tier 0 hears of the open at once, tier *k* when the episode is
  still open and unacknowledged ``escalate_after_min`` minutes after the notifier first
  saw it.
* Each (episode, transition, route, recipient, tier) has one idempotency key
  (:func:`idempotency_key`); the outbox stores at most one message per key and every
  message carries it, so a receiver can drop a resend.
* Messages carry minimal health data by default (IEC 60601-1-8 leaves the content to the
  system; we follow data minimisation, GDPR art. 5(1)(c)): the bed label or pseudonymous
  id, the kind, the time in the subject's zone and the acknowledgement link; values only
  when the route opts in (``include_values``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from core.errors import InputError
from core.live.alerts import AlertKind, category

__all__ = [
    "CHANNELS",
    "SEVERITY",
    "Message",
    "QuietHours",
    "Recipient",
    "Route",
    "RouteError",
    "Tier",
    "Transition",
    "idempotency_key",
    "message",
    "parse_routes",
    "transitions",
]

#: Delivery channels a recipient may use (``sns``: an SNS topic's ARN, on AWS).
CHANNELS: Final = ("email", "webhook", "sns")

#: How urgent each kind is (matched by a route's ``severities``): the patient's breathing
#: and heart first, leaving the bed next, the device last.
SEVERITY: Final[Mapping[str, str]] = {
    AlertKind.BREATHING_PAUSE: "high",
    AlertKind.HR_HIGH: "high",
    AlertKind.HR_LOW: "high",
    AlertKind.BED_EXIT: "medium",
    AlertKind.CONTACT_LOST: "low",
    AlertKind.DEVICE_SILENT: "low",
    AlertKind.BATTERY_LOW: "low",
    AlertKind.NOT_WORN: "low",
    AlertKind.NOTIFIER_FAILING: "medium",
}
SEVERITIES: Final = ("high", "medium", "low")
_ROUTE_KEYS: Final = frozenset(
    {
        "name",
        "groups",
        "kinds",
        "category",
        "severities",
        "tiers",
        "tz",
        "quiet_hours",
        "include_values",
        "notify_close",
    }
)


class RouteError(InputError):
    """The routes file is invalid: ``what`` names the file, the route (and its line) and the field."""


@dataclass(frozen=True, slots=True)
class Recipient:
    channel: str  # email | webhook | sns
    address: str  # an e-mail address, an http(s) URL or an SNS topic ARN

    @property
    def ident(self) -> str:
        return f"{self.channel}:{self.address}"


@dataclass(frozen=True, slots=True)
class Tier:
    recipients: tuple[Recipient, ...]
    escalate_after_min: float = 0.0


@dataclass(frozen=True, slots=True)
class QuietHours:
    """Local ``start``..``end`` (minutes after midnight; may span midnight) in which a route's
    messages are held until the quiet hours end."""

    start_min: int
    end_min: int

    def release_ms(self, at_ms: int, tz: str) -> int | None:
        """When a message due at ``at_ms`` may go: ``None`` outside quiet hours, else their end."""
        local = datetime.fromtimestamp(at_ms / 1000, ZoneInfo(tz))
        minute = local.hour * 60 + local.minute
        if self.start_min <= self.end_min:
            inside = self.start_min <= minute < self.end_min
        else:
            inside = minute >= self.start_min or minute < self.end_min
        if not inside:
            return None
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
        end = midnight + timedelta(minutes=self.end_min)
        if end <= local:
            end = (midnight + timedelta(days=1, minutes=self.end_min)).replace(tzinfo=ZoneInfo(tz))
        return int(end.timestamp() * 1000)


@dataclass(frozen=True, slots=True)
class Route:
    name: str
    tiers: tuple[Tier, ...]
    groups: frozenset[str] = frozenset()
    kinds: frozenset[str] = frozenset()
    category: str | None = None
    severities: frozenset[str] = frozenset()
    tz: str = "UTC"
    quiet_hours: QuietHours | None = None
    include_values: bool = False
    notify_close: bool = False

    def matches(self, doc: Mapping[str, Any], groups: Sequence[str]) -> bool:
        """Whether this route carries the episode ``doc`` of a subject in ``groups``
        (an empty criterion matches everything)."""
        kind = str(doc.get("kind"))
        return (
            (not self.groups or bool(self.groups & set(groups)))
            and (not self.kinds or kind in self.kinds)
            and (self.category is None or doc.get("category", category(kind)) == self.category)
            and (not self.severities or SEVERITY.get(kind, "low") in self.severities)
        )

    def due_ms(self, at_ms: int) -> int:
        """When a message of a transition at ``at_ms`` may be sent (held through quiet hours)."""
        if self.quiet_hours is None:
            return at_ms
        release = self.quiet_hours.release_ms(at_ms, self.tz)
        return at_ms if release is None else release


@dataclass(frozen=True, slots=True)
class Transition:
    alert_id: str
    transition: str  # open | close
    at_ms: int


def transitions(doc: Mapping[str, Any]) -> list[Transition]:
    """The transitions an episode document shows: ``open`` always, ``close`` once closed."""
    out = [Transition(str(doc["doc_id"]), "open", int(doc.get("raised_ms") or doc["start_ms"]))]
    if doc.get("status") == "closed" and doc.get("end_ms") is not None:
        out.append(Transition(str(doc["doc_id"]), "close", int(doc["end_ms"])))
    return out


def idempotency_key(alert_id: str, transition: str, route: str, recipient: Recipient, tier: int) -> str:
    """The one key of a message: SHA-256 of its episode, transition, route, recipient and tier (32 hex)."""
    raw = "\x1f".join((alert_id, transition, route, recipient.ident, str(tier)))
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Message:
    """What a recipient receives: a subject line, a plain text, and the webhook's JSON."""

    subject: str
    text: str
    payload: dict[str, Any] = field(default_factory=dict)


def message(
    doc: Mapping[str, Any],
    transition: Transition,
    *,
    label: str,
    tz: str,
    link: str,
    include_values: bool,
    tier: int,
    key: str,
) -> Message:
    """The message of one transition: ``label`` (the bed label, else the pseudonymous id),
    the kind, the time in the subject's zone ``tz``, the link; value and threshold only
    when ``include_values``."""
    when = datetime.fromtimestamp(transition.at_ms / 1000, ZoneInfo(tz))
    local = when.strftime("%Y-%m-%d %H:%M:%S %Z")
    kind = str(doc["kind"])
    verb = "opened" if transition.transition == "open" else "closed"
    escalated = f" (escalation, tier {tier})" if tier else ""
    lines = [f"{kind} {verb}{escalated}", f"Who: {label}", f"When: {local}"]
    payload: dict[str, Any] = {
        "alert_id": transition.alert_id,
        "transition": transition.transition,
        "kind": kind,
        "category": doc.get("category", category(kind)),
        "who": label,
        "at": when.isoformat(),
        "at_ms": transition.at_ms,
        "tier": tier,
        "idempotency_key": key,
    }
    if include_values:
        payload["value"], payload["threshold"] = doc.get("value"), doc.get("threshold")
        lines.append(f"Value: {doc.get('value')} (threshold {doc.get('threshold')})")
    if link:
        payload["ack_url"] = link
        if transition.transition == "open":
            lines.append(f"Acknowledge: {link}")
    return Message(f"[sleepstack] {kind} {verb}: {label} at {when:%H:%M}", "\n".join(lines) + "\n", payload)


# --- the routes file ------------------------------------------------------------------


def _hhmm(value: Any, err: Any) -> int:
    text = str(value)
    hh, sep, mm = text.partition(":")
    if not (sep and hh.isdigit() and mm.isdigit() and int(hh) < 24 and int(mm) < 60):
        raise err(f"must be a local time HH:MM, not {value!r}")
    return int(hh) * 60 + int(mm)


def _strings(value: Any, err: Any) -> frozenset[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise err(f"must be a list of names, not {value!r}")
    return frozenset(value)


def parse_routes(data: Any, source: str, lines: Mapping[int, int] | None = None) -> list[Route]:
    """Validate a loaded routes file (``{"routes": [...]}``) into routes.

    ``source`` names the file and ``lines`` gives each route's line (index -> line), so a
    :class:`RouteError` reads ``routes.yaml, route 'night-ward' (line 4), field tiers[1]: ...``.
    """
    lines = lines or {}
    if not isinstance(data, dict) or not isinstance(data.get("routes"), list) or not data["routes"]:
        raise RouteError(source, "must be a mapping with a non-empty list 'routes'")
    unknown_top = set(data) - {"routes"}
    if unknown_top:
        raise RouteError(source, f"unknown top-level key {sorted(unknown_top)[0]!r} (only 'routes')")
    routes: list[Route] = []
    seen: set[str] = set()
    for i, raw in enumerate(data["routes"]):
        where = f"{source}, route {i + 1}" + (f" (line {lines[i]})" if i in lines else "")
        if not isinstance(raw, dict):
            raise RouteError(where, "must be a mapping")
        if isinstance(raw.get("name"), str):
            where = f"{source}, route {raw['name']!r}" + (f" (line {lines[i]})" if i in lines else "")
        routes.append(_route(raw, where, seen))
    return routes


def _route(raw: dict[str, Any], where: str, seen: set[str]) -> Route:
    def err(name: str) -> Any:
        return lambda reason: RouteError(f"{where}, field {name}", reason)

    unknown = set(raw) - _ROUTE_KEYS
    if unknown:
        raise err(sorted(unknown)[0])(f"is not a route field (one of {', '.join(sorted(_ROUTE_KEYS))})")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise err("name")("is required (a non-empty string)")
    if name in seen:
        raise err("name")(f"{name!r} is used by another route")
    seen.add(name)
    kinds = _strings(raw.get("kinds", []), err("kinds"))
    bad_kind = kinds - {str(k) for k in AlertKind}
    if bad_kind:
        raise err("kinds")(f"{sorted(bad_kind)[0]!r} is not an alert kind ({', '.join(sorted(AlertKind))})")
    cat = raw.get("category")
    if cat not in (None, "clinical", "technical"):
        raise err("category")(f"must be 'clinical' or 'technical', not {cat!r}")
    severities = _strings(raw.get("severities", []), err("severities"))
    if severities - set(SEVERITIES):
        raise err("severities")(f"must be among {', '.join(SEVERITIES)}, not {sorted(severities)!r}")
    tz = _zone(raw.get("tz", "UTC"), err)
    quiet = _quiet(raw.get("quiet_hours"), err)
    flags = {}
    for flag in ("include_values", "notify_close"):
        value = raw.get(flag, False)
        if not isinstance(value, bool):
            raise err(flag)(f"must be true or false, not {value!r}")
        flags[flag] = value
    tiers_raw = raw.get("tiers")
    if not isinstance(tiers_raw, list) or not tiers_raw:
        raise err("tiers")("is required: a non-empty list of tiers, each with recipients")
    tiers = tuple(_tier(t, k, err) for k, t in enumerate(tiers_raw))
    for k in range(1, len(tiers)):
        if tiers[k].escalate_after_min <= tiers[k - 1].escalate_after_min:
            raise err(f"tiers[{k}].escalate_after_min")("must be later than the tier before")
    return Route(
        name=name,
        tiers=tiers,
        groups=_strings(raw.get("groups", []), err("groups")),
        kinds=kinds,
        category=cat,
        severities=severities,
        tz=str(tz),
        quiet_hours=quiet,
        include_values=flags["include_values"],
        notify_close=flags["notify_close"],
    )


def _zone(tz: Any, err: Any) -> str:
    try:
        ZoneInfo(str(tz))
    except (ZoneInfoNotFoundError, ValueError):
        raise err("tz")(f"{tz!r} is not an IANA time zone (e.g. Europe/London)") from None
    return str(tz)


def _quiet(q: Any, err: Any) -> QuietHours | None:
    if q is None:
        return None
    if not isinstance(q, dict) or set(q) != {"start", "end"}:
        raise err("quiet_hours")("must be a mapping with 'start' and 'end' (HH:MM)")
    return QuietHours(_hhmm(q["start"], err("quiet_hours.start")), _hhmm(q["end"], err("quiet_hours.end")))


def _tier(raw: Any, k: int, err: Any) -> Tier:
    name = f"tiers[{k}]"
    if not isinstance(raw, dict) or set(raw) - {"recipients", "escalate_after_min"}:
        raise err(name)("must be a mapping of 'recipients' and (after the first) 'escalate_after_min'")
    after = raw.get("escalate_after_min", 0)
    if isinstance(after, bool) or not isinstance(after, int | float) or after < 0:
        raise err(f"{name}.escalate_after_min")(f"must be minutes >= 0, not {after!r}")
    if k == 0 and after:
        raise err(f"{name}.escalate_after_min")("the first tier is notified at once (omit it or give 0)")
    if k > 0 and not after:
        raise err(f"{name}.escalate_after_min")("is required after the first tier (minutes unacknowledged)")
    recips = raw.get("recipients")
    if not isinstance(recips, list) or not recips:
        raise err(f"{name}.recipients")("must be a non-empty list")
    out = []
    for j, r in enumerate(recips):
        rname = f"{name}.recipients[{j}]"
        if not isinstance(r, dict) or len(r) != 1:
            raise err(rname)("must be one of {email: ADDRESS}, {webhook: URL} or {sns: TOPIC_ARN}")
        ((channel, address),) = r.items()
        if channel not in CHANNELS:
            raise err(rname)(f"channel {channel!r} is not one of {', '.join(CHANNELS)}")
        if not isinstance(address, str) or not address:
            raise err(rname)(f"{channel} needs an address, not {address!r}")
        if channel == "email" and ("@" not in address or any(c.isspace() for c in address)):
            raise err(rname)(f"{address!r} is not an e-mail address")
        if channel == "webhook" and not address.startswith(("https://", "http://")):
            raise err(rname)(f"{address!r} is not an http(s) URL")
        if channel == "sns" and not (address.startswith("arn:aws") and ":sns:" in address):
            raise err(rname)(f"{address!r} is not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)")
        out.append(Recipient(channel, address))
    return Tier(tuple(out), float(after))
