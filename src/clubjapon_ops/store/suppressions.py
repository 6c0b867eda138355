"""Suppression management: list, lift (recorded), import and export the addresses never mailed."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, insert, select
from sqlalchemy.engine import Connection

from clubjapon_ops.store.contacts import add_suppression
from clubjapon_ops.store.schema import deliveries, suppression_removals, suppressions
from clubjapon_ops.store.types import utcnow

COMPLAINT = "complaint"  # a reader who reported spam: lifted only when forced
IMPORTED = "import"


@dataclass(frozen=True)
class Suppression:
    """One stored suppression."""

    email: str
    source: str
    reason: str
    created_at: datetime


@dataclass(frozen=True)
class Removal:
    """What lifting an address's suppressions did."""

    email: str
    sources: tuple[str, ...]  # empty: the address was not suppressed


def list_suppressions(
    conn: Connection, *, source: str | None = None, since: datetime | None = None
) -> list[Suppression]:
    """Suppressions, oldest first, of one source and since a time when given."""
    query = select(suppressions.c.email, suppressions.c.source, suppressions.c.reason,
                   suppressions.c.created_at)
    if source is not None:
        query = query.where(suppressions.c.source == source)
    if since is not None:
        query = query.where(suppressions.c.created_at >= since)
    rows = conn.execute(query.order_by(suppressions.c.created_at, suppressions.c.email,
                                       suppressions.c.source))
    return [Suppression(*row) for row in rows]


def sources_of(conn: Connection) -> list[str]:
    """The sources that suppressions are stored under, for choices and messages."""
    return sorted(conn.execute(select(suppressions.c.source).distinct()).scalars())


def suppressions_of(conn: Connection, email: str) -> list[Suppression]:
    """Every suppression of one address."""
    rows = conn.execute(select(suppressions.c.email, suppressions.c.source,
                               suppressions.c.reason, suppressions.c.created_at)
                        .where(suppressions.c.email == email)
                        .order_by(suppressions.c.source))
    return [Suppression(*row) for row in rows]


def lift(conn: Connection, email: str, why: str) -> Removal:
    """Remove every suppression of ``email`` and record when, why and what they said.

    The caller decides whether a complaint may be lifted: see :data:`COMPLAINT`.
    """
    found = suppressions_of(conn, email)
    if not found:
        return Removal(email, ())
    conn.execute(delete(suppressions).where(suppressions.c.email == email))
    conn.execute(insert(suppression_removals).values(
        email=email, sources=", ".join(s.source for s in found),
        reasons="; ".join(f"{s.source}: {s.reason}" for s in found), why=why,
        removed_at=utcnow()))
    return Removal(email, tuple(s.source for s in found))


def import_suppressions(conn: Connection, rows: Iterable[tuple[str, str]]) -> tuple[int, int]:
    """Suppress (email, reason) pairs under the 'import' source; return (added, known).

    An address suppressed already, whatever the source, is known: it keeps its own reason.
    """
    added = known = 0
    for email, reason in rows:
        suppressed = conn.execute(
            select(suppressions.c.id).where(suppressions.c.email == email)).first()
        if suppressed is None and add_suppression(conn, email, reason, IMPORTED):
            added += 1
        else:
            known += 1
    return added, known


def suppressed_recipients(conn: Connection, edition: str) -> dict[str, int]:
    """The edition's recipients suppressed since, by source (one address may have several)."""
    rows = conn.execute(
        select(suppressions.c.source, func.count(func.distinct(suppressions.c.email)))
        .where(suppressions.c.email.in_(
            select(deliveries.c.email).where(deliveries.c.edition == edition)))
        .group_by(suppressions.c.source))
    return {source: int(n) for source, n in rows}
