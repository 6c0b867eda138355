"""Links of sent editions and the clicks on them: per link and day, readers and scanners apart.

Nothing here stores who clicked, except a ``click`` event for a reader who agreed to be
measured (CLUBJAPON_LINK_TRACKING=consent), one per reader, link and day.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from clubjapon_ops.contacts import consents
from clubjapon_ops.store.schema import contacts, deliveries, edition_links, events, link_clicks
from clubjapon_ops.store.types import utcnow

# The provider name of the click events we record ourselves (consent mode).
CLICK_PROVIDER = "links"


@dataclass(frozen=True)
class StoredLink:
    """One link of one language of a sent edition: its token id, label and target."""

    id: str
    edition: str
    lang: str
    key: str
    label: str
    url: str


@dataclass(frozen=True)
class ReaderClick:
    """A click by a reader whose message named their ledger row (consent mode)."""

    row: int
    link_id: str
    day: str
    at: datetime


@dataclass(frozen=True)
class LinkLine:
    """A link of an edition with its clicks: readers and scanners, per language."""

    lang: str
    key: str
    label: str
    url: str
    readers: int
    scanners: int
    consenting_readers: int


def _insert(conn: Connection, table: Any) -> Any:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


def remember_links(conn: Connection, links: Iterable[StoredLink]) -> int:
    """Store an edition's links before it is sent (a changed target replaces the old one)."""
    rows = [{"id": link.id, "edition": link.edition, "lang": link.lang, "link_key": link.key,
             "label": link.label, "url": link.url, "updated_at": utcnow()} for link in links]
    if not rows:
        return 0
    stmt = _insert(conn, edition_links)
    conn.execute(stmt.on_conflict_do_update(
        index_elements=[edition_links.c.id],
        set_={"label": stmt.excluded.label, "url": stmt.excluded.url,
              "updated_at": stmt.excluded.updated_at}), rows)
    return len(rows)


def _link(row: Any) -> StoredLink:
    return StoredLink(row.id, row.edition, row.lang, row.link_key, row.label, row.url)


def all_links(conn: Connection) -> dict[str, StoredLink]:
    """Every stored link by its id (a club's whole history is a few thousand rows)."""
    return {row.id: _link(row) for row in conn.execute(select(edition_links))}


def find_link(conn: Connection, link_id: str) -> StoredLink | None:
    """The stored link with this id, or None."""
    row = conn.execute(select(edition_links).where(edition_links.c.id == link_id)).first()
    return None if row is None else _link(row)


def add_clicks(conn: Connection, counts: Mapping[tuple[str, str], tuple[int, int]]) -> None:
    """Add (readers, scanners) to each (link id, day): one row per link and day, ever."""
    rows = [{"link_id": link_id, "day": day, "readers": readers, "scanners": scanners}
            for (link_id, day), (readers, scanners) in sorted(counts.items())]
    if not rows:
        return
    stmt = _insert(conn, link_clicks)
    conn.execute(stmt.on_conflict_do_update(
        index_elements=[link_clicks.c.link_id, link_clicks.c.day],
        set_={"readers": link_clicks.c.readers + stmt.excluded.readers,
              "scanners": link_clicks.c.scanners + stmt.excluded.scanners}), rows)


def consenting_readers(conn: Connection, rows: Iterable[int],
                       field: str) -> dict[int, tuple[str, str]]:
    """Of these ledger rows, those whose contact's ``field`` says yes now: row -> (email,
    edition). Consent is read again at the click: a reader who withdrew it is not recorded."""
    wanted = sorted(set(rows))
    if not wanted:
        return {}
    found = conn.execute(
        select(deliveries.c.id, deliveries.c.email, deliveries.c.edition, contacts.c.attributes)
        .select_from(deliveries.join(contacts, contacts.c.email == deliveries.c.email))
        .where(deliveries.c.id.in_(wanted))
    ).all()
    return {int(r.id): (r.email, r.edition) for r in found
            if consents(r.attributes or {}, field)}


def add_reader_clicks(conn: Connection, clicks: Iterable[tuple[ReaderClick, str]]) -> int:
    """Record consenting readers' clicks as ``click`` events: one per reader, link and day."""
    now = utcnow()
    rows = [{"provider": CLICK_PROVIDER, "event_key": f"{c.row}:{c.link_id}:{c.day}",
             "delivery_id": c.row, "email": email, "type": "click",
             "provider_event": "link click", "message_id": None, "reason": c.link_id,
             "occurred_at": c.at, "received_at": now, "processed_at": now,
             "raw": {"link": c.link_id}} for c, email in clicks]
    if not rows:
        return 0
    stmt = _insert(conn, events).on_conflict_do_nothing(
        index_elements=[events.c.provider, events.c.event_key])
    conn.execute(stmt, rows)
    return len(rows)


def link_report(conn: Connection, edition: str) -> list[LinkLine]:
    """The edition's links in reading order, per language, with their clicks."""
    links = conn.execute(
        select(edition_links).where(edition_links.c.edition == edition)).all()
    if not links:
        return []
    ids = [row.id for row in links]
    totals = {row.link_id: (int(row.readers or 0), int(row.scanners or 0)) for row in conn.execute(
        select(link_clicks.c.link_id, func.sum(link_clicks.c.readers).label("readers"),
               func.sum(link_clicks.c.scanners).label("scanners"))
        .where(link_clicks.c.link_id.in_(ids)).group_by(link_clicks.c.link_id))}
    people: dict[str, int] = dict(conn.execute(
        select(events.c.reason, func.count(func.distinct(events.c.email)))
        .where(events.c.provider == CLICK_PROVIDER, events.c.reason.in_(ids))
        .group_by(events.c.reason)).tuples().all())
    lines = [LinkLine(row.lang, row.link_key, row.label, row.url,
                      *totals.get(row.id, (0, 0)), int(people.get(row.id, 0)))
             for row in links]
    order = {"fr": 0, "en": 1, "ja": 2}
    return sorted(lines, key=lambda line: (_key_order(line.key), order.get(line.lang, 9)))


def _key_order(key: str) -> tuple[int, ...]:
    return tuple(int(part) if part.isdigit() else 0 for part in key.split("."))
