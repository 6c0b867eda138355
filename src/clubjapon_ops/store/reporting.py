"""Read-only figures for the campaign report: the ledger and the events of one edition."""

from __future__ import annotations

import re
from collections import Counter
from datetime import datetime

from sqlalchemy import and_, func, select
from sqlalchemy.engine import Connection

from clubjapon_ops.store.schema import deliveries, events, suppressions


def ledger_editions(conn: Connection) -> list[str]:
    """Every edition the ledger holds rows of, sorted."""
    return sorted(conn.execute(select(deliveries.c.edition).distinct()).scalars())


def sent_times(conn: Connection, edition: str) -> list[datetime]:
    """When each message of the edition was handed over, oldest first."""
    return list(conn.execute(
        select(deliveries.c.sent_at)
        .where(deliveries.c.edition == edition, deliveries.c.sent_at.is_not(None))
        .order_by(deliveries.c.sent_at)
    ).scalars())


def event_times(conn: Connection, edition: str, kind: str) -> list[datetime]:
    """When events of one type happened to the edition's messages, oldest first."""
    return list(conn.execute(
        select(events.c.occurred_at)
        .select_from(events.join(deliveries, deliveries.c.id == events.c.delivery_id))
        .where(deliveries.c.edition == edition, events.c.type == kind)
        .order_by(events.c.occurred_at)
    ).scalars())


def event_counts(conn: Connection, edition: str) -> dict[str, tuple[int, int]]:
    """Per event type: (events, distinct recipients) for the edition's messages."""
    rows = conn.execute(
        select(events.c.type, func.count(), func.count(func.distinct(events.c.email)))
        .select_from(events.join(deliveries, deliveries.c.id == events.c.delivery_id))
        .where(deliveries.c.edition == edition)
        .group_by(events.c.type)
    ).all()
    return {kind: (int(n), int(people)) for kind, n, people in rows}


def failure_reasons(
    conn: Connection, edition: str, kinds: tuple[str, ...], limit: int = 15
) -> list[tuple[str, str, int]]:
    """(type, reason, distinct recipients) for bounce-like events, most frequent first."""
    rows = conn.execute(
        select(events.c.type, events.c.reason, func.count(func.distinct(events.c.email)))
        .select_from(events.join(deliveries, deliveries.c.id == events.c.delivery_id))
        .where(deliveries.c.edition == edition, events.c.type.in_(kinds))
        .group_by(events.c.type, events.c.reason)
    ).all()
    counted: Counter[tuple[str, str]] = Counter()
    for kind, reason, n in rows:
        counted[(kind, (reason or "no reason given")[:120])] += int(n)
    return [(kind, reason, n) for (kind, reason), n in counted.most_common(limit)]


# How an SMTP server's reply is stored (delivery/transports/smtp.py): the code, then its text.
_SMTP_REFUSAL = re.compile(r"^5\d\d(?: |$)")


def smtp_refusals(conn: Connection, edition: str, limit: int = 15) -> list[tuple[str, int]]:
    """(the server's reply, recipients) for the edition's messages an SMTP server refused
    with a 5xx (at RCPT, or at DATA), most frequent first.

    They never reach a bounce mailbox or a webhook: the server said no while we spoke to it,
    and only the ledger keeps its words.
    """
    rows = conn.execute(
        select(deliveries.c.last_error, func.count())
        .where(deliveries.c.edition == edition, deliveries.c.state == "failed",
               deliveries.c.last_error.like("5%"))
        .group_by(deliveries.c.last_error)
    ).all()
    counted: Counter[str] = Counter()
    for reply, n in rows:
        if _SMTP_REFUSAL.match(reply):
            # A multi-line reply is stored with its line breaks: one line for a table cell.
            counted[" ".join(reply.split())[:120]] += int(n)
    return counted.most_common(limit)


def link_unsubscribes(conn: Connection, edition: str) -> set[str]:
    """Addresses that used this edition's unsubscribe link (the web app records the edition)."""
    return set(conn.execute(
        select(suppressions.c.email).where(and_(
            suppressions.c.source == "unsubscribe",
            suppressions.c.reason == f"unsubscribe link, edition {edition}",
        ))
    ).scalars())


def provider_unsubscribes(conn: Connection, edition: str) -> set[str]:
    """Addresses whose provider reported an unsubscribe from this edition's messages."""
    return set(conn.execute(
        select(events.c.email)
        .select_from(events.join(deliveries, deliveries.c.id == events.c.delivery_id))
        .where(deliveries.c.edition == edition, events.c.type == "unsubscribe")
    ).scalars())


def editions_sent_since(conn: Connection, since: datetime) -> list[str]:
    """Editions with a message handed over since ``since``."""
    return sorted(conn.execute(
        select(deliveries.c.edition).where(deliveries.c.sent_at >= since).distinct()
    ).scalars())
