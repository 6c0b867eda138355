"""The one closed list of event types, and an event as both providers' webhooks reduce to it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

DELIVERED, DEFERRED, SOFT_BOUNCE, HARD_BOUNCE, BLOCKED, INVALID = (
    "delivered", "deferred", "soft_bounce", "hard_bounce", "blocked", "invalid")
COMPLAINT, UNSUBSCRIBE, OPEN, CLICK, OTHER = (
    "complaint", "unsubscribe", "open", "click", "other")
TYPES = (DELIVERED, DEFERRED, SOFT_BOUNCE, HARD_BOUNCE, BLOCKED, INVALID, COMPLAINT,
         UNSUBSCRIBE, OPEN, CLICK, OTHER)

# Which types suppress an address at once, and under which suppression source.
SUPPRESS_AT_ONCE = {
    HARD_BOUNCE: "bounce",
    INVALID: "bounce",
    COMPLAINT: "complaint",
    UNSUBSCRIBE: "unsubscribe",
}
SOFT_BOUNCE_SOURCE = "bounce"


class MalformedEvent(ValueError):
    """A webhook body that is not what the provider documents."""


@dataclass(frozen=True)
class Event:
    """One provider event, normalised; ``raw`` is kept as received."""

    provider: str
    event_key: str
    email: str
    type: str
    provider_event: str
    occurred_at: datetime
    message_id: str | None
    reason: str | None
    raw: dict[str, Any]
    delivery_hint: int | None = None  # our ledger id, when the provider echoes it back


def raw_hash(raw: dict[str, Any]) -> str:
    """A stable key for an event without a provider id: the same JSON gives the same key."""
    canonical = json.dumps(raw, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def text_field(raw: dict[str, Any], name: str, limit: int = 300) -> str | None:
    """A string field cut to ``limit``; None when absent, empty or not a string."""
    value = raw.get(name)
    if isinstance(value, str) and value.strip():
        return value.strip()[:limit]
    return None


def email_field(raw: dict[str, Any]) -> str:
    """The recipient, lower-cased; an event without one is malformed."""
    email = text_field(raw, "email", 320)
    if email is None or "@" not in email:
        raise MalformedEvent("event without a recipient email")
    return email.lower()


def event_basics(raw: Any) -> tuple[dict[str, Any], str, str]:
    """What every provider's event must have: an object, its type name and its recipient;
    MalformedEvent otherwise."""
    if not isinstance(raw, dict):
        raise MalformedEvent("an event is not a JSON object")
    name = text_field(raw, "event", 64)
    if name is None:
        raise MalformedEvent("event without a type")
    return raw, name, email_field(raw)
