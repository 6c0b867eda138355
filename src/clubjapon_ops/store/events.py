"""Provider events: stored once each (replays change nothing), matched to the ledger, then
processed into suppressions."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from clubjapon_ops.events.types import (
    CLICK,
    DELIVERED,
    HARD_BOUNCE,
    OPEN,
    SOFT_BOUNCE,
    SOFT_BOUNCE_SOURCE,
    SUPPRESS_AT_ONCE,
    Event,
)
from clubjapon_ops.store.contacts import add_suppression
from clubjapon_ops.store.deliveries import in_chunks, recipients_rows
from clubjapon_ops.store.schema import deliveries, events
from clubjapon_ops.store.types import utcnow

# Our deterministic Message-ID for (edition, email): lets events of SMTP sends match too.
OurMessageId = Callable[[str, str], str]
# A DSN comes within the sending server's queue lifetime (Postfix: 5 days): a message sent
# longer ago that no event calls bounced reached the reader.
DELIVERED_AFTER = timedelta(days=6)
# The events that tell whether a message reached the reader, for the soft-bounce streak.
_OUTCOMES = (DELIVERED, SOFT_BOUNCE, HARD_BOUNCE, OPEN, CLICK)


def _bare(value: str) -> str:
    return value.strip().strip("<>").lower()


def _ledger_rows(conn: Connection, emails: set[str]) -> dict[str, list[Any]]:
    """The ledger rows of these recipients, with what matching an event needs."""
    return recipients_rows(conn, emails, deliveries.c.id, deliveries.c.edition,
                           deliveries.c.provider_message_id)


def match_delivery(event: Event, rows: Sequence[Any], ours: OurMessageId) -> int | None:
    """The ledger row an event is about: the id the provider echoed, its message id, or ours.

    ``rows`` are the recipient's own rows, so an event cannot land on another's row.
    """
    if event.delivery_hint is not None:
        for row in rows:
            if row.id == event.delivery_hint:
                return int(row.id)
    wanted = {_bare(v) for v in (event.message_id, event.raw.get("smtp-id"))
              if isinstance(v, str) and v.strip()}
    if not wanted:
        return None
    for row in rows:
        stored = _bare(row.provider_message_id or "")
        if stored and any(w == stored or w.startswith(stored + ".") for w in wanted):
            # SendGrid's sg_message_id is the X-Message-Id we stored plus ".filter..."
            return int(row.id)
        if _bare(ours(row.edition, event.email)) in wanted:
            return int(row.id)
    return None


def _insert_ignoring_duplicates(conn: Connection) -> Any:
    # Skips a replayed event even when two copies arrive at once (after the check below).
    if conn.dialect.name == "postgresql":
        return postgresql.insert(events).on_conflict_do_nothing(
            constraint="uq_events_provider_key")
    if conn.dialect.name == "sqlite":
        return sqlite.insert(events).on_conflict_do_nothing(
            index_elements=["provider", "event_key"])
    return insert(events)


def _known_keys(conn: Connection, provider: str, keys: list[str]) -> set[str]:
    known: set[str] = set()
    for chunk in in_chunks(keys):
        known.update(conn.execute(
            select(events.c.event_key)
            .where(events.c.provider == provider, events.c.event_key.in_(chunk))
        ).scalars())
    return known


def store_events(
    conn: Connection, batch: Sequence[Event], ours: OurMessageId, now: datetime | None = None
) -> int:
    """Store the events not stored yet, matched to the ledger; return how many were new.

    A few statements per request whatever its size: providers want a quick answer.
    """
    now = now or utcnow()
    fresh: dict[tuple[str, str], Event] = {}
    for provider in {e.provider for e in batch}:
        mine = [e for e in batch if e.provider == provider]
        known = _known_keys(conn, provider, [e.event_key for e in mine])
        for event in mine:
            # Copies of one event (SendGrid: one sg_event_id) in one request are one event,
            # and the first is kept, as a copy in a later request changes nothing either.
            if event.event_key not in known:
                fresh.setdefault((provider, event.event_key), event)
    if not fresh:
        return 0
    ledger = _ledger_rows(conn, {e.email for e in fresh.values()})
    conn.execute(_insert_ignoring_duplicates(conn), [
        {"provider": e.provider, "event_key": e.event_key,
         "delivery_id": match_delivery(e, ledger.get(e.email, ()), ours), "email": e.email,
         "type": e.type, "provider_event": e.provider_event, "message_id": e.message_id,
         "reason": e.reason, "occurred_at": e.occurred_at, "received_at": now, "raw": e.raw}
        for e in fresh.values()
    ])
    return len(fresh)


def soft_bounce_streak(conn: Connection, email: str, now: datetime | None = None) -> int:
    """How many of this address's latest messages soft-bounced in a row.

    Counted per message, not per event: a provider reports several soft bounces while it
    retries one message, and that is one bad message, not several. Messages are in the
    order they were sent (else their events happened), not the order events arrived, so
    late events fall into place. Over SMTP nothing reports a delivery: a message sent more
    than DELIVERED_AFTER ago that no event calls bounced reached the reader, and breaks
    the streak (without it, soft bounces months apart counted as "in a row").
    """
    now = now or utcnow()
    sent = dict(conn.execute(
        select(deliveries.c.id, deliveries.c.sent_at)
        .where(deliveries.c.email == email, deliveries.c.sent_at.is_not(None))
    ).all())
    rows = conn.execute(
        select(events.c.id, events.c.type, events.c.delivery_id, events.c.message_id,
               events.c.occurred_at)
        .where(events.c.email == email, events.c.type.in_(_OUTCOMES))
    ).all()
    messages: dict[str, list[Any]] = {}  # message -> [when, only soft bounces seen]
    for row in rows:
        key = (f"d{row.delivery_id}" if row.delivery_id is not None
               else f"m{row.message_id}" if row.message_id else f"e{row.id}")
        when = sent.get(row.delivery_id) or row.occurred_at
        seen = messages.setdefault(key, [when, True])
        seen[0] = max(seen[0], when)
        seen[1] = seen[1] and row.type == SOFT_BOUNCE
    for delivery_id, sent_at in sent.items():
        if f"d{delivery_id}" not in messages and sent_at <= now - DELIVERED_AFTER:
            messages[f"d{delivery_id}"] = [sent_at, False]
    streak = 0
    for _, soft in sorted(messages.values(), key=lambda m: m[0], reverse=True):
        if not soft:
            break
        streak += 1
    return streak


def _reason(row: Any, prefix: str = "") -> str:
    detail = f": {row.reason}" if row.reason else ""
    return f"{prefix}{row.provider} {row.provider_event}{detail}"[:500]


def process_pending(conn: Connection, soft_bounce_limit: int, limit: int = 5000) -> Counter[str]:
    """Turn every stored, unprocessed event into suppressions; mark them processed.

    ``limit`` events at a time (memory stays bounded), until none is left: a batch of the
    bounce mailbox can hold more than one call's worth, and what was left waited a run.
    """
    counts: Counter[str] = Counter()
    while True:
        done = _process_some(conn, soft_bounce_limit, limit)
        counts.update(done)
        if done["processed"] < limit:
            return counts


def _process_some(conn: Connection, soft_bounce_limit: int, limit: int) -> Counter[str]:
    counts: Counter[str] = Counter()
    rows = conn.execute(
        select(events.c.id, events.c.email, events.c.type, events.c.provider,
               events.c.provider_event, events.c.reason)
        .where(events.c.processed_at.is_(None))
        .order_by(events.c.id)
        .limit(limit)
    ).all()
    for row in rows:
        source = SUPPRESS_AT_ONCE.get(row.type)
        prefix = ""
        if source is None and row.type == SOFT_BOUNCE:
            streak = soft_bounce_streak(conn, row.email)
            if streak >= soft_bounce_limit:
                source, prefix = SOFT_BOUNCE_SOURCE, f"{streak} soft bounces in a row, last: "
        if source is not None and add_suppression(conn, row.email, _reason(row, prefix),
                                                  source):
            counts[f"suppressed_{source}"] += 1
    ids = [row.id for row in rows]
    now = utcnow()
    for chunk in in_chunks(ids):
        conn.execute(update(events).where(events.c.id.in_(chunk)).values(processed_at=now))
    counts["processed"] = len(ids)
    return counts
