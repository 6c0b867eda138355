"""The CRM's lists and who is on them: synced memberships, counts, and an audience in SQL."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, exists, func, insert, or_, select, update
from sqlalchemy.engine import Connection

from clubjapon_ops.listnames import list_key
from clubjapon_ops.store.deliveries import LEFT, UNKNOWN, in_chunks
from clubjapon_ops.store.schema import (
    contacts,
    deliveries,
    events,
    list_members,
    lists,
    suppressions,
)
from clubjapon_ops.store.types import utcnow

LEFT_WHY = "left the audience before sending"
REJOINED_WHY = ("back in the audience, but a try before it left may have reached this reader: "
                "check, then --resend-unknown")


@dataclass(frozen=True)
class SeenList:
    """A list as a sync saw it: its name as the CRM writes it, and the CRM's id if any."""

    name: str
    crm_id: str | None = None

    @property
    def key(self) -> str:
        """The key it is matched by."""
        return list_key(self.name)


@dataclass(frozen=True)
class GoneList:
    """A list the CRM no longer has under that name: deleted, or renamed to ``renamed_to``."""

    name: str
    renamed_to: str | None = None

    def warning(self, source: str) -> str:
        """The sentence the sync prints and logs."""
        if self.renamed_to:
            return (f"the {source} list '{self.name}' is now called '{self.renamed_to}': "
                    f"editions that name '{self.name}' in audience, only_for or except_for "
                    "must be changed")
        return (f"the {source} list '{self.name}' is no longer in the CRM (deleted or "
                "renamed): its members were taken off it; editions that name it must be changed")


def save_lists(conn: Connection, source: str, seen: Iterable[SeenList],
               now: datetime) -> dict[str, int]:
    """Record the lists a sync saw (new ones added, names and ids refreshed); {key: id}."""
    wanted = {s.key: s for s in seen if s.key}
    if not wanted:
        return {}
    stored = {row.name_key: row for row in conn.execute(
        select(lists.c.id, lists.c.name_key, lists.c.name, lists.c.crm_list_id)
        .where(lists.c.source == source, lists.c.name_key.in_(list(wanted))))}
    new = [{"source": source, "crm_list_id": s.crm_id, "name": s.name, "name_key": key,
            "synced_at": now} for key, s in wanted.items() if key not in stored]
    if new:
        conn.execute(insert(lists), new)
    for key, s in wanted.items():
        row = stored.get(key)
        if row is not None:
            conn.execute(update(lists).where(lists.c.id == row.id).values(
                name=s.name, crm_list_id=s.crm_id or row.crm_list_id, synced_at=now,
                missing_since=None))
    return dict(conn.execute(
        select(lists.c.name_key, lists.c.id)
        .where(lists.c.source == source, lists.c.name_key.in_(list(wanted)))).all())


def contact_ids(conn: Connection, emails: Iterable[str]) -> dict[str, int]:
    """The ids of the stored contacts with these addresses."""
    found: dict[str, int] = {}
    for chunk in in_chunks(emails):
        found.update(conn.execute(select(contacts.c.email, contacts.c.id)
                                  .where(contacts.c.email.in_(chunk))).all())
    return found


def crm_contact_ids(conn: Connection, source: str, crm_ids: Iterable[str]) -> list[int]:
    """The ids of this source's stored contacts with these CRM ids."""
    found: list[int] = []
    for chunk in in_chunks(crm_ids):
        found += conn.execute(select(contacts.c.id).where(
            contacts.c.source == source, contacts.c.crm_id.in_(chunk))).scalars().all()
    return found


def replace_memberships(conn: Connection, source: str,
                        memberships: Mapping[int, Iterable[int]]) -> None:
    """Each contact's lists of this source become exactly those given (contact id: list ids).

    Taken off a list in the CRM, off it here; lists of another source are left alone.
    """
    if not memberships:
        return
    of_source = select(lists.c.id).where(lists.c.source == source).scalar_subquery()
    for chunk in in_chunks(memberships):
        conn.execute(delete(list_members).where(list_members.c.contact_id.in_(chunk),
                                                list_members.c.list_id.in_(of_source)))
    rows = [{"list_id": list_id, "contact_id": contact}
            for contact, ids in memberships.items() for list_id in set(ids)]
    if rows:
        conn.execute(insert(list_members), rows)


def replace_list_members(conn: Connection, list_id: int, contact_ids: Sequence[int]) -> None:
    """The members of one list become exactly these contacts."""
    conn.execute(delete(list_members).where(list_members.c.list_id == list_id))
    rows = [{"list_id": list_id, "contact_id": c} for c in sorted(set(contact_ids))]
    if rows:
        conn.execute(insert(list_members), rows)


def retire_missing(conn: Connection, source: str, seen_keys: Iterable[str],
                   now: datetime) -> list[GoneList]:
    """Mark missing the lists of this source that a complete sync no longer saw, take their
    members off them, and return them (with their new name when the CRM id tells a rename)."""
    keys = set(seen_keys)
    rows = conn.execute(select(lists.c.id, lists.c.name, lists.c.name_key, lists.c.crm_list_id)
                        .where(lists.c.source == source)).all()
    names_by_crm_id = {r.crm_list_id: r.name for r in rows
                       if r.name_key in keys and r.crm_list_id is not None}
    gone: list[GoneList] = []
    for row in rows:
        if row.name_key in keys:
            continue
        if conn.execute(update(lists).where(lists.c.id == row.id,
                                            lists.c.missing_since.is_(None))
                        .values(missing_since=now)).rowcount:
            gone.append(GoneList(row.name, names_by_crm_id.get(row.crm_list_id)))
        conn.execute(delete(list_members).where(list_members.c.list_id == row.id))
    return gone


@dataclass(frozen=True)
class ListSummary:
    """One list for `clubjapon-ops lists`."""

    name: str
    source: str
    subscribed: int
    suppressed: int
    synced_at: datetime
    missing_since: datetime | None


def _suppressed() -> Any:
    """A contact no edition may reach: opted out in the CRM, or on the suppression list."""
    return or_(contacts.c.opted_out.is_(True),
               exists().where(suppressions.c.email == contacts.c.email))


def list_summaries(conn: Connection) -> list[ListSummary]:
    """Every list with its active members, subscribed and suppressed, by name."""
    counts: dict[int, dict[bool, int]] = {}
    blocked = _suppressed()
    for list_id, is_blocked, n in conn.execute(
        select(list_members.c.list_id, blocked, func.count())
        .select_from(list_members.join(contacts, contacts.c.id == list_members.c.contact_id))
        .where(contacts.c.archived_at.is_(None))
        .group_by(list_members.c.list_id, blocked)
    ):
        counts.setdefault(list_id, {})[bool(is_blocked)] = n
    return [
        ListSummary(row.name, row.source, counts.get(row.id, {}).get(False, 0),
                    counts.get(row.id, {}).get(True, 0), row.synced_at, row.missing_since)
        for row in conn.execute(select(lists).order_by(lists.c.name_key, lists.c.source))
    ]


def known_lists(conn: Connection) -> dict[str, str]:
    """The lists the last syncs saw, by key: {key: name as the CRM writes it}."""
    return dict(conn.execute(
        select(lists.c.name_key, lists.c.name).where(lists.c.missing_since.is_(None))
        .order_by(lists.c.source)).all())


@dataclass(frozen=True)
class AudienceQuery:
    """An audience as the store tests it, in list keys: on any of ``lists`` (every contact
    when empty), on none of ``exclude``, reading one of ``languages`` (any when empty)."""

    lists: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()

    @property
    def everyone(self) -> bool:
        """True when it keeps every eligible contact: no audience block."""
        return not (self.lists or self.exclude or self.languages)


def _on_any(keys: Sequence[str]) -> Any:
    """The contact is on one of these lists. Aliases of their own: a query that joins the
    lists itself (counts by list) must not have them correlated with its own rows."""
    member, named = list_members.alias(), lists.alias()
    return exists().where(
        member.c.contact_id == contacts.c.id,
        member.c.list_id.in_(
            select(named.c.id).where(named.c.name_key.in_(list(keys))).scalar_subquery()))


def in_audience(query: AudienceQuery | None) -> Any:
    """The condition on ``contacts`` that the audience adds to eligibility (true for none)."""
    terms: list[Any] = []
    if query is not None:
        if query.lists:
            terms.append(_on_any(query.lists))
        if query.exclude:
            terms.append(~_on_any(query.exclude))
        if query.languages:
            terms.append(contacts.c.language.in_(list(query.languages)))
    return and_(True, *terms)


def memberships_of(conn: Connection, emails: Iterable[str],
                   keys: Iterable[str]) -> dict[str, frozenset[str]]:
    """For each address, which of these list keys it is on (addresses on none left out)."""
    wanted = list(set(keys))
    found: dict[str, set[str]] = {}
    if not wanted:
        return {}
    for chunk in in_chunks(emails):
        for email, key in conn.execute(
            select(contacts.c.email, lists.c.name_key)
            .select_from(contacts.join(list_members, list_members.c.contact_id == contacts.c.id)
                         .join(lists, lists.c.id == list_members.c.list_id))
            .where(contacts.c.email.in_(chunk), lists.c.name_key.in_(wanted))
        ):
            found.setdefault(email, set()).add(key)
    return {e: frozenset(k) for e, k in found.items()}


def lists_of(conn: Connection, email: str) -> list[str]:
    """The names of the lists an address is on, as the CRM writes them, by name."""
    return list(conn.execute(
        select(lists.c.name)
        .select_from(contacts.join(list_members, list_members.c.contact_id == contacts.c.id)
                     .join(lists, lists.c.id == list_members.c.list_id))
        .where(contacts.c.email == email, lists.c.missing_since.is_(None))
        .order_by(lists.c.name)).scalars())


def audience_by_list(conn: Connection, keys: Sequence[str], where: Any) -> dict[str, int]:
    """How many contacts matching ``where`` are on each of these lists, by key."""
    if not keys:
        return {}
    return dict(conn.execute(
        select(lists.c.name_key, func.count(func.distinct(contacts.c.id)))
        .select_from(contacts.join(list_members, list_members.c.contact_id == contacts.c.id)
                     .join(lists, lists.c.id == list_members.c.list_id))
        .where(lists.c.name_key.in_(list(keys)), where)
        .group_by(lists.c.name_key)).all())


def leave_audience(conn: Connection, ids: Sequence[int], audience: Any) -> set[int]:
    """Mark 'left' the claimed rows whose reader is no longer in the audience; their ids."""
    if not ids:
        return set()
    stays = exists().where(contacts.c.email == deliveries.c.email, audience)
    return set(conn.execute(
        update(deliveries)
        .where(deliveries.c.id.in_(list(ids)), ~stays)
        .values(state=LEFT, claimed_by=None, lease_expires_at=None, last_error=LEFT_WHY,
                updated_at=utcnow())
        .returning(deliveries.c.id)).scalars())


def rejoin_audience(conn: Connection, edition: str, audience: Any) -> int:
    """Put back to 'pending' the 'left' rows whose reader is in the audience again.

    A row that left while its keyed batch waited for a resend may have been delivered by the
    first try: it becomes 'unknown' (the operator decides), never 'pending' under its key.
    """
    back = exists().where(contacts.c.email == deliveries.c.email,
                          contacts.c.archived_at.is_(None), ~_suppressed(), audience)
    now = utcnow()
    doubtful = conn.execute(
        update(deliveries)
        .where(deliveries.c.edition == edition, deliveries.c.state == LEFT, back,
               deliveries.c.batch_key.is_not(None))
        .values(state=UNKNOWN, last_error=REJOINED_WHY, updated_at=now)).rowcount
    return int(doubtful) + int(conn.execute(
        update(deliveries)
        .where(deliveries.c.edition == edition, deliveries.c.state == LEFT, back,
               deliveries.c.batch_key.is_(None))
        .values(state="pending", last_error=None, updated_at=now)).rowcount)


def audience_size(conn: Connection, audience: Any) -> int:
    """How many contacts may receive an edition with this audience (planned or not)."""
    return int(conn.execute(select(func.count()).select_from(contacts).where(
        contacts.c.archived_at.is_(None), contacts.c.opted_out.is_(False),
        ~exists().where(suppressions.c.email == contacts.c.email), audience)).scalar_one())


def ledger_by_list(conn: Connection, edition: str,
                   keys: Sequence[str]) -> dict[str, dict[str, int]]:
    """An edition's ledger rows by state, for the readers on each of these lists (by key)."""
    found: dict[str, dict[str, int]] = {}
    if not keys:
        return found
    for key, state, n in conn.execute(
        select(lists.c.name_key, deliveries.c.state, func.count(func.distinct(deliveries.c.id)))
        .select_from(deliveries.join(contacts, contacts.c.email == deliveries.c.email)
                     .join(list_members, list_members.c.contact_id == contacts.c.id)
                     .join(lists, lists.c.id == list_members.c.list_id))
        .where(deliveries.c.edition == edition, lists.c.name_key.in_(list(keys)))
        .group_by(lists.c.name_key, deliveries.c.state)
    ):
        found.setdefault(key, {})[state] = n
    return found


@dataclass(frozen=True)
class ListLine:
    """An edition's figures for the readers on one list (a reader on two lists is in both)."""

    name: str
    planned: int
    sent: int
    bounced: int
    unsubscribed: int
    left: int


BOUNCES = ("hard_bounce", "soft_bounce", "invalid", "blocked")  # events.types, by name


def list_report(conn: Connection, edition: str) -> list[ListLine]:
    """Planned, sent, bounced and unsubscribed by list, for the lists the edition's
    readers are on now (memberships as the last sync left them)."""
    on_list = (deliveries.join(contacts, contacts.c.email == deliveries.c.email)
               .join(list_members, list_members.c.contact_id == contacts.c.id)
               .join(lists, lists.c.id == list_members.c.list_id))
    states: dict[tuple[int, str], int] = {
        (list_id, state): n for list_id, state, n in conn.execute(
            select(lists.c.id, deliveries.c.state, func.count(func.distinct(deliveries.c.id)))
            .select_from(on_list).where(deliveries.c.edition == edition)
            .group_by(lists.c.id, deliveries.c.state))}
    if not states:
        return []

    def people(condition: Any, source: Any) -> dict[int, int]:
        return dict(conn.execute(
            select(lists.c.id, func.count(func.distinct(deliveries.c.email)))
            .select_from(source).where(deliveries.c.edition == edition, condition)
            .group_by(lists.c.id)).all())

    with_events = on_list.join(events, events.c.delivery_id == deliveries.c.id)
    bounced = people(events.c.type.in_(BOUNCES), with_events)
    unsubscribed = people(or_(
        exists().where(events.c.delivery_id == deliveries.c.id, events.c.type == "unsubscribe"),
        exists().where(suppressions.c.email == deliveries.c.email,
                       suppressions.c.source == "unsubscribe",
                       suppressions.c.reason == f"unsubscribe link, edition {edition}")),
        on_list)
    ids = sorted({list_id for list_id, _ in states})
    names = dict(conn.execute(select(lists.c.id, lists.c.name).where(lists.c.id.in_(ids))).all())
    return sorted((
        ListLine(names[i], sum(n for (j, _), n in states.items() if j == i),
                 states.get((i, "sent"), 0), bounced.get(i, 0), unsubscribed.get(i, 0),
                 states.get((i, LEFT), 0))
        for i in ids), key=lambda line: list_key(line.name))
