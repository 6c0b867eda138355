"""Brevo's transactional webhook: one JSON event per request (or a list, when batched)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from clubjapon_ops.events import types as t
from clubjapon_ops.events.types import Event, MalformedEvent, event_basics, raw_hash, text_field

PROVIDER = "brevo"
# Brevo's event names (snake_case in webhooks, camelCase in some docs and the API) to ours.
_TYPES = {
    "delivered": t.DELIVERED,
    "deferred": t.DEFERRED,
    "soft_bounce": t.SOFT_BOUNCE, "softbounce": t.SOFT_BOUNCE, "soft_bounces": t.SOFT_BOUNCE,
    "hard_bounce": t.HARD_BOUNCE, "hardbounce": t.HARD_BOUNCE, "hard_bounces": t.HARD_BOUNCE,
    "blocked": t.BLOCKED,
    "invalid_email": t.INVALID, "invalid": t.INVALID,
    "spam": t.COMPLAINT, "complaint": t.COMPLAINT,
    "unsubscribed": t.UNSUBSCRIBE, "unsubscribe": t.UNSUBSCRIBE,
    "opened": t.OPEN, "unique_opened": t.OPEN, "uniqueopened": t.OPEN, "open": t.OPEN,
    "proxy_open": t.OPEN, "unique_proxy_open": t.OPEN,
    "click": t.CLICK, "clicks": t.CLICK, "clicked": t.CLICK,
}


def _occurred(raw: dict[str, Any], received: datetime) -> datetime:
    # ts_event is when it happened; ts when Brevo logged it; ts_epoch is milliseconds.
    for name, scale in (("ts_event", 1), ("ts", 1), ("ts_epoch", 1000)):
        value = raw.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
            try:
                return datetime.fromtimestamp(value / scale, UTC)
            except (OverflowError, OSError, ValueError):
                raise MalformedEvent(f"{name} is out of range") from None
    return received


def parse_event(raw: Any, received: datetime) -> Event:
    """Normalise one Brevo event; MalformedEvent when it lacks what we need."""
    raw, name, email = event_basics(raw)
    kind = _TYPES.get(name.lower().replace("-", "_"), t.OTHER)
    return Event(
        provider=PROVIDER,
        event_key=raw_hash(raw),  # Brevo sends no event id: the same event hashes the same
        email=email,
        type=kind,
        provider_event=name,
        occurred_at=_occurred(raw, received),
        message_id=text_field(raw, "message-id") or text_field(raw, "message_id"),
        reason=text_field(raw, "reason", 500),
        raw=raw,
    )


def parse_body(document: Any, received: datetime) -> list[Event]:
    """Every event of one request; the whole request is refused if one is malformed."""
    items = document if isinstance(document, list) else [document]
    if not items:
        raise MalformedEvent("no event")
    return [parse_event(item, received) for item in items]
