"""SendGrid's event webhook: a JSON array of events, signed as a whole."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from clubjapon_ops.events import types as t
from clubjapon_ops.events.types import Event, MalformedEvent, event_basics, raw_hash, text_field

PROVIDER = "sendgrid"
_TYPES = {
    "delivered": t.DELIVERED,
    "deferred": t.DEFERRED,
    "spamreport": t.COMPLAINT,
    "unsubscribe": t.UNSUBSCRIBE,
    "group_unsubscribe": t.UNSUBSCRIBE,
    "open": t.OPEN,
    "click": t.CLICK,
}
# 'dropped' says why SendGrid did not even try: its own suppression lists, or a bad address.
_DROPPED = {
    "bounced address": t.HARD_BOUNCE,
    "invalid": t.INVALID,
    "spam reporting address": t.COMPLAINT,
    "unsubscribed address": t.UNSUBSCRIBE,
}


def _type(name: str, raw: dict[str, Any]) -> str:
    if name == "bounce":
        # type 'blocked' is a refusal of the sending IP or content, not of the address.
        return t.BLOCKED if raw.get("type") == "blocked" else t.HARD_BOUNCE
    if name == "dropped":
        reason = (text_field(raw, "reason") or "").lower()
        return next((v for k, v in _DROPPED.items() if reason.startswith(k)), t.BLOCKED)
    return _TYPES.get(name, t.OTHER)


def _delivery_hint(raw: dict[str, Any]) -> int | None:
    # Our custom_args come back as top-level fields, as strings.
    value = raw.get("delivery_id")
    if isinstance(value, str) and value.isdigit() and len(value) < 12:
        return int(value)
    return None


def parse_event(raw: Any) -> Event:
    """Normalise one SendGrid event; MalformedEvent when it lacks what we need."""
    raw, name, email = event_basics(raw)
    stamp = raw.get("timestamp")
    if not isinstance(stamp, int | float) or isinstance(stamp, bool) or stamp <= 0:
        raise MalformedEvent("event without a timestamp")
    try:
        occurred = datetime.fromtimestamp(stamp, UTC)
    except (OverflowError, OSError, ValueError):
        raise MalformedEvent("timestamp out of range") from None
    event_id = text_field(raw, "sg_event_id", 100)
    return Event(
        provider=PROVIDER,
        event_key="id:" + event_id if event_id else raw_hash(raw),
        email=email,
        type=_type(name.lower(), raw),
        provider_event=name,
        occurred_at=occurred,
        message_id=text_field(raw, "sg_message_id"),
        reason=text_field(raw, "reason", 500) or text_field(raw, "response", 500),
        raw=raw,
        delivery_hint=_delivery_hint(raw),
    )


def parse_body(document: Any) -> list[Event]:
    """Every event of one request; the whole request is refused if one is malformed."""
    if not isinstance(document, list) or not document:
        raise MalformedEvent("the body is not a non-empty JSON array")
    return [parse_event(item) for item in document]
