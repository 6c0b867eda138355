"""Suppression management: list, lift (recorded), import and export the addresses never mailed."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.engine import Connection

from clubjapon_ops.store.schema import deliveries, suppression_removals, suppressions
from clubjapon_ops.store.types import utcnow

if TYPE_CHECKING:
    from clubjapon_ops.store.database import Store

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


def _held(conn: Connection, email: str, *, complaints: bool) -> list[Any]:
    """The suppression rows of ``email`` that a lift may remove, with their ids."""
    query = select(suppressions.c.id, suppressions.c.source, suppressions.c.reason).where(
        suppressions.c.email == email)
    if not complaints:
        query = query.where(suppressions.c.source != COMPLAINT)
    return list(conn.execute(query.order_by(suppressions.c.source)))


def lift(conn: Connection, email: str, why: str, *, complaints: bool = True) -> Removal:
    """Remove the suppressions of ``email`` (complaints only if ``complaints``) and record
    when, why and what they said.

    Only the rows read here are deleted, by id: a suppression added meanwhile (a reader's
    one-click arriving during the removal) is a new word from the reader, and stays.
    """
    found = _held(conn, email, complaints=complaints)
    if not found:
        return Removal(email, ())
    gone = sorted((str(source), str(reason)) for source, reason in conn.execute(
        delete(suppressions).where(suppressions.c.id.in_([row.id for row in found]))
        .returning(suppressions.c.source, suppressions.c.reason)))
    if not gone:  # another removal took them first, and recorded them
        return Removal(email, ())
    conn.execute(insert(suppression_removals).values(
        email=email, sources=", ".join(source for source, _ in gone),
        reasons="; ".join(f"{source}: {reason}" for source, reason in gone), why=why,
        removed_at=utcnow()))
    return Removal(email, tuple(source for source, _ in gone))


# Addresses written per transaction by an import: a few milliseconds of work, so that a
# reader's unsubscribe (or a send) never waits long for SQLite's one writer.
IMPORT_CHUNK = 1000


def import_suppressions(conn: Connection, rows: Iterable[tuple[str, str]]) -> tuple[int, int]:
    """Suppress (email, reason) pairs under the 'import' source; return (added, known).

    Known: the address has an 'import' suppression already (it keeps its reason). A
    suppression of another source does not count: each source is lifted on its own (a CRM
    opt-in lifts only 'crm'), so the import's word is recorded beside it.
    """
    reasons: dict[str, str] = {}
    given = 0
    for email, reason in rows:
        reasons.setdefault(email, reason)
        given += 1
    known: set[str] = set()
    emails = list(reasons)
    for start in range(0, len(emails), IMPORT_CHUNK):
        known.update(conn.execute(
            select(suppressions.c.email).where(
                suppressions.c.source == IMPORTED,
                suppressions.c.email.in_(emails[start:start + IMPORT_CHUNK]))).scalars())
    now = utcnow()
    new = [{"email": e, "reason": r, "source": IMPORTED, "created_at": now}
           for e, r in reasons.items() if e not in known]
    if new:
        conn.execute(insert(suppressions), new)
    return len(new), given - len(new)  # an address twice in the rows is known the 2nd time


def import_in_chunks(store: Store, rows: Sequence[tuple[str, str]],
                     chunk: int = IMPORT_CHUNK) -> tuple[int, int]:
    """As :func:`import_suppressions`, one transaction per ``chunk`` rows: a long file
    never holds the store (and a reader's one-click unsubscribe) for more than a moment.

    A chunk written stays written if a later one fails: running the import again finds
    those known and adds the rest.
    """
    added = known = 0
    for start in range(0, len(rows), chunk):
        with store.transaction() as conn:
            a, k = import_suppressions(conn, rows[start:start + chunk])
        added, known = added + a, known + k
    return added, known


def suppressed_recipients(conn: Connection, edition: str) -> dict[str, int]:
    """The edition's recipients suppressed since, by source (one address may have several)."""
    rows = conn.execute(
        select(suppressions.c.source, func.count(func.distinct(suppressions.c.email)))
        .where(suppressions.c.email.in_(
            select(deliveries.c.email).where(deliveries.c.edition == edition)))
        .group_by(suppressions.c.source))
    return {source: int(n) for source, n in rows}
