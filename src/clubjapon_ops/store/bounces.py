"""The ledger look-ups the bounce mailbox needs: rows by id, by recipient, known addresses."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.engine import Connection

from clubjapon_ops.store.deliveries import in_chunks, recipients_rows
from clubjapon_ops.store.schema import contacts, deliveries


@dataclass(frozen=True)
class LedgerRow:
    """What matching a bounce needs of a ledger row."""

    id: int
    email: str
    edition: str
    sent_at: datetime | None


def rows_by_id(conn: Connection, ids: Iterable[int]) -> dict[int, LedgerRow]:
    """The ledger rows with these ids."""
    found: dict[int, LedgerRow] = {}
    for chunk in in_chunks(ids):
        for row in conn.execute(
            select(deliveries.c.id, deliveries.c.email, deliveries.c.edition,
                   deliveries.c.sent_at).where(deliveries.c.id.in_(chunk))
        ):
            found[row.id] = LedgerRow(row.id, row.email, row.edition, row.sent_at)
    return found


def rows_by_email(conn: Connection, emails: Iterable[str]) -> dict[str, list[LedgerRow]]:
    """Every ledger row of these recipients, the latest sent first."""
    found = {email: [LedgerRow(r.id, r.email, r.edition, r.sent_at) for r in rows]
             for email, rows in recipients_rows(conn, emails, deliveries.c.id,
                                                deliveries.c.edition,
                                                deliveries.c.sent_at).items()}
    for rows in found.values():
        # Rows never sent last; among the sent, the latest first (ties: the newest row).
        rows.sort(key=lambda r: (r.sent_at.timestamp() if r.sent_at else 0.0, r.id),
                  reverse=True)
    return found


def known_emails(conn: Connection, emails: Iterable[str]) -> set[str]:
    """Which of these addresses are a contact or a ledger recipient."""
    known: set[str] = set()
    for chunk in in_chunks(emails):
        known.update(conn.execute(select(contacts.c.email).where(contacts.c.email.in_(chunk)))
                     .scalars())
        known.update(conn.execute(
            select(deliveries.c.email).where(deliveries.c.email.in_(chunk)).distinct()
        ).scalars())
    return known
