"""Write-back bookkeeping: which local suppressions each CRM has been told about."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, delete, func, insert, or_, select
from sqlalchemy.engine import Connection

from clubjapon_ops.store.schema import contacts, crm_pushes, suppressions
from clubjapon_ops.store.types import utcnow

# Our own suppressions; 'crm' ones came from the CRM, which knows them already.
PUSHED_SOURCES = ("complaint", "unsubscribe", "bounce")  # the first one an address has wins
DONE, KNOWN, NOT_FOUND = "done", "known", "not_found"


@dataclass(frozen=True)
class Candidate:
    """A suppression the CRM has not been told about."""

    email: str
    source: str
    in_crm: bool  # the last sync from this CRM returned the contact
    crm_opted_out: bool  # and the CRM already has it opted out


def pending_pushes(conn: Connection, crm: str) -> list[Candidate]:
    """Suppressions to push to ``crm``: never pushed, or not found then seen in it since."""
    pushed = crm_pushes.alias("pushed")
    rows = conn.execute(
        select(suppressions.c.email, suppressions.c.source, contacts.c.source.label("origin"),
               contacts.c.opted_out, contacts.c.archived_at)
        .select_from(
            suppressions
            .outerjoin(contacts, contacts.c.email == suppressions.c.email)
            .outerjoin(pushed, and_(pushed.c.email == suppressions.c.email, pushed.c.crm == crm))
        )
        .where(
            suppressions.c.source.in_(PUSHED_SOURCES),
            or_(
                pushed.c.id.is_(None),
                # Unknown to the CRM then; the CRM has the contact now: tell it.
                and_(pushed.c.outcome == NOT_FOUND, contacts.c.source == crm,
                     contacts.c.updated_at > pushed.c.pushed_at),
            ),
        )
        .order_by(suppressions.c.email, suppressions.c.created_at)
    ).all()
    chosen: dict[str, Candidate] = {}
    for row in rows:
        in_crm = row.origin == crm and row.archived_at is None
        candidate = Candidate(row.email, row.source, in_crm, bool(in_crm and row.opted_out))
        kept = chosen.get(row.email)
        if kept is None or PUSHED_SOURCES.index(row.source) < PUSHED_SOURCES.index(kept.source):
            chosen[row.email] = candidate
    return list(chosen.values())


def record_push(
    conn: Connection, email: str, crm: str, source: str, outcome: str, detail: str | None = None
) -> None:
    """Record what the CRM was told (or why not), replacing an earlier 'not found'."""
    conn.execute(delete(crm_pushes).where(crm_pushes.c.email == email, crm_pushes.c.crm == crm))
    conn.execute(insert(crm_pushes).values(email=email, crm=crm, source=source, outcome=outcome,
                                           detail=detail, pushed_at=utcnow()))


def push_counts(conn: Connection, crm: str) -> dict[str, int]:
    """Recorded pushes to ``crm`` by outcome."""
    return dict(conn.execute(
        select(crm_pushes.c.outcome, func.count()).where(crm_pushes.c.crm == crm)
        .group_by(crm_pushes.c.outcome)
    ).all())
