"""Contact rows: batched upserts that merge by normalised email, and CRM opt-out suppressions."""

from __future__ import annotations

import difflib
import heapq
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.engine import Connection

from clubjapon_ops.contacts import Contact, newer
from clubjapon_ops.store.schema import contacts, deliveries, events, suppressions
from clubjapon_ops.store.types import utcnow

# The fields a CRM owns: a change in any of them makes the row "updated".
_CRM_FIELDS = (
    "source", "crm_id", "first_name", "last_name", "company", "language", "opted_out",
    "crm_created_at", "crm_updated_at", "attributes",
)
CRM_SUPPRESSION = "crm"


@dataclass
class UpsertCounts:
    """What one batch did to the store."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    merged: int = 0  # records folded into another of the same batch with the same email

    def add(self, other: UpsertCounts) -> None:
        """Accumulate another batch's counts."""
        self.created += other.created
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.merged += other.merged


def _row(contact: Contact) -> dict[str, Any]:
    return {
        "source": contact.source,
        "crm_id": contact.crm_id,
        "first_name": contact.first_name,
        "last_name": contact.last_name,
        "company": contact.company,
        "language": contact.language,
        "opted_out": contact.opted_out,
        "crm_created_at": contact.crm_created_at,
        "crm_updated_at": contact.crm_updated_at,
        "attributes": contact.attributes,
    }


def dedupe(batch: Iterable[Contact]) -> list[Contact]:
    """Merge records that share an email: the most recently updated wins, then the later one."""
    merged: dict[str, Contact] = {}
    for contact in batch:
        kept = merged.get(contact.email)
        merged[contact.email] = contact if kept is None else newer(kept, contact)
    return list(merged.values())


def upsert_contacts(conn: Connection, batch: Sequence[Contact]) -> UpsertCounts:
    """Insert new contacts, update changed ones, keep newer stored data; return the counts."""
    counts = UpsertCounts()
    unique = dedupe(batch)
    counts.merged = len(batch) - len(unique)
    if not unique:
        return counts
    columns = [contacts.c.email, contacts.c.archived_at, *(contacts.c[f] for f in _CRM_FIELDS)]
    existing = {
        row.email: row._mapping
        for row in conn.execute(
            select(*columns).where(contacts.c.email.in_([c.email for c in unique]))
        )
    }
    now = utcnow()
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    for contact in unique:
        stored = existing.get(contact.email)
        row = _row(contact)
        if stored is None:
            inserts.append({"email": contact.email, **row, "created_at": now, "updated_at": now})
            continue
        stored_at = stored["crm_updated_at"]
        stale = (
            contact.crm_updated_at is not None
            and stored_at is not None
            and contact.crm_updated_at < stored_at
        )
        same = all(stored[f] == row[f] for f in _CRM_FIELDS) and stored["archived_at"] is None
        if stale or same:
            counts.unchanged += 1
            continue
        updates.append({"b_email": contact.email, **row, "updated_at": now, "archived_at": None})
    if inserts:
        conn.execute(insert(contacts), inserts)
    if updates:
        conn.execute(
            update(contacts).where(contacts.c.email == bindparam("b_email")),
            updates,
        )
    counts.created = len(inserts)
    counts.updated = len(updates)
    changed = {r["email"] for r in inserts} | {r["b_email"] for r in updates}
    _sync_crm_suppressions(conn, [c for c in unique if c.email in changed])
    return counts


def mark_seen(
    conn: Connection,
    source: str,
    stamp: datetime,
    *,
    emails: Sequence[str] = (),
    crm_ids: Sequence[str] = (),
) -> None:
    """Stamp contacts that a full sync returned, by email or (for unusable records) by CRM id."""
    if emails:
        conn.execute(
            update(contacts).where(contacts.c.email.in_(list(emails))).values(last_seen_at=stamp)
        )
    if crm_ids:
        conn.execute(
            update(contacts)
            .where(and_(contacts.c.source == source, contacts.c.crm_id.in_(list(crm_ids))))
            .values(last_seen_at=stamp)
        )


def seen_since(conn: Connection, source: str, stamp: datetime) -> bool:
    """Tell whether the full sync begun at ``stamp`` saw at least one of this source's rows."""
    query = select(contacts.c.id).where(
        and_(contacts.c.source == source, contacts.c.last_seen_at >= stamp)
    ).limit(1)
    return conn.execute(query).first() is not None


def archive_unseen(conn: Connection, source: str, stamp: datetime) -> int:
    """Archive this source's active contacts that the full sync begun at ``stamp`` did not see.

    Rows are kept, suppressions too: an archived contact keeps its history and comes back
    (un-archived) if the CRM returns it again.
    """
    result = conn.execute(
        update(contacts)
        .where(
            and_(
                contacts.c.source == source,
                contacts.c.archived_at.is_(None),
                or_(contacts.c.last_seen_at.is_(None), contacts.c.last_seen_at < stamp),
            )
        )
        .values(archived_at=utcnow())
    )
    return int(result.rowcount)


def _sync_crm_suppressions(conn: Connection, changed: Sequence[Contact]) -> None:
    """Mirror CRM opt-outs as 'crm' suppressions; an opt-in lifts only a 'crm' suppression."""
    opted_out = [c.email for c in changed if c.opted_out]
    opted_in = [c.email for c in changed if not c.opted_out]
    if opted_in:
        conn.execute(
            delete(suppressions).where(
                and_(suppressions.c.source == CRM_SUPPRESSION, suppressions.c.email.in_(opted_in))
            )
        )
    if opted_out:
        known = set(
            conn.execute(
                select(suppressions.c.email).where(
                    and_(
                        suppressions.c.source == CRM_SUPPRESSION,
                        suppressions.c.email.in_(opted_out),
                    )
                )
            ).scalars()
        )
        now = utcnow()
        rows = [
            {"email": e, "reason": "opted out in the CRM", "source": CRM_SUPPRESSION,
             "created_at": now}
            for e in opted_out if e not in known
        ]
        if rows:
            conn.execute(insert(suppressions), rows)


def contact_counts(conn: Connection) -> dict[str, int]:
    """Return totals for status: contacts, active, opted out, archived, suppressed, by language."""
    totals: Counter[str] = Counter()
    query = select(
        contacts.c.language, contacts.c.opted_out, contacts.c.archived_at.is_(None), func.count()
    ).group_by(contacts.c.language, contacts.c.opted_out, contacts.c.archived_at.is_(None))
    for language, opted_out, active, n in conn.execute(query):
        totals["contacts"] += n
        if not active:
            totals["archived"] += n
        elif opted_out:
            totals["opted_out"] += n
        else:
            totals[f"language_{language}"] += n
    totals["suppressed_emails"] = conn.execute(
        select(func.count(func.distinct(suppressions.c.email)))
    ).scalar_one()
    return dict(totals)


def has_contacts(conn: Connection) -> bool:
    """Whether the store holds any contact at all (none: no sync has run yet)."""
    return conn.execute(select(contacts.c.id).limit(1)).first() is not None


def _contact(row: Any) -> Contact:
    return Contact(
        email=row.email, source=row.source, first_name=row.first_name, last_name=row.last_name,
        company=row.company, language=row.language, opted_out=row.opted_out, crm_id=row.crm_id,
        crm_created_at=row.crm_created_at, crm_updated_at=row.crm_updated_at,
        attributes=row.attributes or {},
    )


def find_contact(conn: Connection, email: str) -> Contact | None:
    """Return the stored contact with this normalised email, if any."""
    row = conn.execute(select(contacts).where(contacts.c.email == email)).first()
    return None if row is None else _contact(row)


def contacts_by_language(conn: Connection, language: str, limit: int = 50) -> list[Contact]:
    """Return up to ``limit`` active contacts who read this language, by email."""
    rows = conn.execute(
        select(contacts)
        .where(contacts.c.language == language, contacts.c.archived_at.is_(None))
        .order_by(contacts.c.email)
        .limit(limit)
    )
    return [_contact(r) for r in rows]


def add_suppression(conn: Connection, email: str, reason: str, source: str) -> bool:
    """Suppress an address for a source (unsubscribe, bounce ...); False if it already was."""
    known = conn.execute(
        select(suppressions.c.id).where(suppressions.c.email == email,
                                        suppressions.c.source == source)
    ).first()
    if known is not None:
        return False
    conn.execute(insert(suppressions).values(email=email, reason=reason, source=source,
                                             created_at=utcnow()))
    return True


# --- Looking contacts up, for ops ('contacts show', 'contacts find', 'unsubscribe') ---------


@dataclass(frozen=True)
class StoredContact:
    """A contact as stored, with what the store adds: when it came, changed, was archived."""

    contact: Contact
    created_at: datetime
    updated_at: datetime
    archived_at: datetime | None


@dataclass(frozen=True)
class EditionState:
    """One ledger row of a contact: where a given edition stands for that reader."""

    edition: str
    state: str
    attempts: int
    last_error: str | None
    provider_status: str | None
    sent_at: datetime | None
    updated_at: datetime
    next_attempt_at: datetime | None
    last_cause: str | None  # the provider's last answer ('401', '429', 'timeout'), if any


@dataclass(frozen=True)
class ContactEvent:
    """One provider event (or bounce-mailbox report) about a contact's messages."""

    occurred_at: datetime
    type: str
    provider: str
    edition: str | None
    reason: str | None


def stored_contact(conn: Connection, email: str) -> StoredContact | None:
    """The contact with this normalised email and its store dates, if any."""
    row = conn.execute(select(contacts).where(contacts.c.email == email)).first()
    if row is None:
        return None
    return StoredContact(_contact(row), row.created_at, row.updated_at, row.archived_at)


def editions_of(conn: Connection, email: str) -> list[EditionState]:
    """Every ledger row of an address, the newest edition first."""
    rows = conn.execute(
        select(deliveries.c.edition, deliveries.c.state, deliveries.c.attempts,
               deliveries.c.last_error, deliveries.c.provider_status, deliveries.c.sent_at,
               deliveries.c.updated_at, deliveries.c.next_attempt_at, deliveries.c.last_cause)
        .where(deliveries.c.email == email)
        .order_by(deliveries.c.created_at.desc(), deliveries.c.edition.desc()))
    return [EditionState(*row) for row in rows]


def events_of(conn: Connection, email: str, limit: int = 20) -> list[ContactEvent]:
    """The latest events about an address, newest first, with the edition they concern."""
    rows = conn.execute(
        select(events.c.occurred_at, events.c.type, events.c.provider, deliveries.c.edition,
               events.c.reason)
        .select_from(events.outerjoin(deliveries, deliveries.c.id == events.c.delivery_id))
        .where(events.c.email == email)
        .order_by(events.c.occurred_at.desc(), events.c.id.desc())
        .limit(limit))
    return [ContactEvent(*row) for row in rows]


def find_contacts(conn: Connection, text: str, limit: int) -> list[StoredContact]:
    """Contacts whose address, name or company holds ``text`` (any case), by email.

    At most ``limit`` of them: the caller asks for one more to know there are others.
    """
    wanted = text.strip().lower()
    full_name = func.coalesce(contacts.c.first_name, "") + " " + func.coalesce(
        contacts.c.last_name, "")
    fields = (contacts.c.email, contacts.c.first_name, contacts.c.last_name,
              contacts.c.company, full_name)
    rows = conn.execute(
        select(contacts)
        .where(or_(*(func.lower(f).contains(wanted, autoescape=True) for f in fields)))
        .order_by(contacts.c.email)
        .limit(limit))
    return [StoredContact(_contact(r), r.created_at, r.updated_at, r.archived_at)
            for r in rows]


def suppressed_among(conn: Connection, emails: Sequence[str]) -> set[str]:
    """Which of these addresses have a suppression (any source)."""
    if not emails:
        return set()
    return set(conn.execute(select(suppressions.c.email).distinct()
                            .where(suppressions.c.email.in_(list(emails)))).scalars())


SIMILAR = 0.8  # difflib's ratio: one or two letters off in an address of twenty


def _literal(text: str) -> str:
    """``text`` for a LIKE pattern, its wildcards taken literally (escape character '\\')."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def closest_emails(conn: Connection, email: str, n: int = 3) -> list[str]:
    """Up to ``n`` stored addresses closest to ``email``, the closest first.

    The database narrows the candidates to addresses of about the same length that share
    the domain and the start or the end of the local part, or the whole local part, or the
    first letters (one typo leaves one of them whole), and streams them: memory stays flat
    however many contacts there are (100,000 contacts, a third at one domain: 0.2 s).
    """
    local, _, domain = email.rpartition("@")
    size = len(email)
    address = contacts.c.email
    query = (
        select(address)
        .where(func.length(address).between(size - 3, size + 3))
        .where(or_(address.like(f"{_literal(local[:3])}%@{_literal(domain)}", escape="\\"),
                   address.like(f"%{_literal(local[-3:])}@{_literal(domain)}", escape="\\"),
                   address.startswith(f"{local}@", autoescape=True),
                   address.startswith(email[:4], autoescape=True))))
    matcher = difflib.SequenceMatcher()
    matcher.set_seq2(email)  # difflib caches what it learns of seq2: the target
    best: list[tuple[float, str]] = []
    # On the statement, not the connection: that would stream the transaction's later
    # statements too (PostgreSQL refuses a server-side cursor for an INSERT).
    for candidate in conn.execute(query.execution_options(yield_per=1000)).scalars():
        matcher.set_seq1(candidate)
        if (matcher.real_quick_ratio() < SIMILAR or matcher.quick_ratio() < SIMILAR
                or candidate == email):
            continue
        score = matcher.ratio()
        if score >= SIMILAR:
            heapq.heappush(best, (score, candidate))
            if len(best) > n:
                heapq.heappop(best)
    return [candidate for _, candidate in sorted(best, key=lambda p: (-p[0], p[1]))]
