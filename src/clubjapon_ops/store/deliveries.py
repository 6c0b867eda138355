"""The ledger: one row per (edition, contact), moved only after what it records happened."""

from __future__ import annotations

import operator
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Integer,
    String,
    and_,
    bindparam,
    case,
    exists,
    func,
    insert,
    literal,
    literal_column,
    null,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.engine import Connection

from clubjapon_ops.contacts import Contact
from clubjapon_ops.store.advisory import xact_lock
from clubjapon_ops.store.schema import contacts, deliveries, suppressions
from clubjapon_ops.store.types import UTCDateTime, utcnow

PENDING, CLAIMED, SENDING, SENT, FAILED, RETRY, UNKNOWN, SKIPPED = (
    "pending", "claimed", "sending", "sent", "failed", "retry", "unknown", "skipped")
# claimed: reserved by a sender, not handed over yet (safe to give back);
# sending: handed over, answer not recorded yet (uncertain if the sender dies).
# left: the reader left the edition's audience before it went out (not sent, counted apart).
LEFT = "left"
STATES = (PENDING, CLAIMED, SENDING, SENT, FAILED, RETRY, UNKNOWN, SKIPPED, LEFT)
SENDABLE = (PENDING, RETRY)


@dataclass(frozen=True)
class Claimed:
    """A ledger row claimed for sending, with the contact it is for."""

    id: int
    contact: Contact
    attempts: int
    batch_key: str | None
    # Until when a resend under batch_key may start (None without a key).
    key_expires: datetime | None = None


@dataclass(frozen=True)
class Outcome:
    """What happened to one row; applied by :func:`record`."""

    id: int
    state: str
    provider_status: str
    provider_message_id: str | None = None
    error: str | None = None
    retry_at: datetime | None = None
    # The provider's answer in a few words ('401', '429', '500', 'timeout'), kept in
    # last_cause until another answer replaces it.
    cause: str | None = None
    # The provider took nothing under this batch's key: forget it, a resend takes a new one.
    clear_key: bool = False
    # The try told nothing about the message (credentials refused): give its attempt back.
    refund: bool = False


# The audience of an edition without an audience block: every eligible contact.
EVERYONE = true()


def _in_state(state: str) -> Any:
    """``state = 'pending'`` with the value written out, not bound: only then can the
    planner (SQLite's always, PostgreSQL's generic plans) use the partial index of that
    state. ``state`` is one of this module's constants, never outside input."""
    if state not in STATES:
        raise ValueError(f"not a ledger state: {state!r}")
    return deliveries.c.state == literal_column(f"'{state}'")


def _eligible() -> Any:
    """Contacts that may receive an edition: active, not opted out, not suppressed."""
    return and_(
        contacts.c.archived_at.is_(None),
        contacts.c.opted_out.is_(False),
        ~exists().where(suppressions.c.email == contacts.c.email),
    )


def _not_planned(edition: str) -> Any:
    return ~exists().where(
        and_(deliveries.c.edition == edition, deliveries.c.email == contacts.c.email)
    )


def new_in_audience(edition: str) -> Any:
    """Contacts a send of this edition would plan now (before its audience is applied)."""
    return and_(_eligible(), _not_planned(edition))


def plan_summary(conn: Connection, edition: str, audience: Any = EVERYONE) -> dict[str, Any]:
    """Audience by language and exclusions by reason, without writing anything.

    ``audience``: the edition's audience as a condition on contacts (store.lists.in_audience).
    """
    new_by_lang: dict[str, int] = dict(
        conn.execute(
            select(contacts.c.language, func.count())
            .where(_eligible(), _not_planned(edition), audience)
            .group_by(contacts.c.language)
        ).all()
    )
    ledger = ledger_counts(conn, edition)
    suppressed = conn.execute(
        select(func.count()).select_from(contacts).where(
            contacts.c.archived_at.is_(None), contacts.c.opted_out.is_(False),
            exists().where(suppressions.c.email == contacts.c.email), _not_planned(edition),
        )
    ).scalar_one()
    opted_out = conn.execute(
        select(func.count()).select_from(contacts).where(
            contacts.c.archived_at.is_(None), contacts.c.opted_out.is_(True))
    ).scalar_one()
    archived = conn.execute(
        select(func.count()).select_from(contacts).where(contacts.c.archived_at.is_not(None))
    ).scalar_one()
    # A retry row goes out only once due: until then it waits, and is not "to send now".
    waiting = conn.execute(
        select(func.count()).select_from(deliveries)
        .where(deliveries.c.edition == edition, _in_state(RETRY), ~_due(utcnow()))
    ).scalar_one()
    return {
        "new_by_language": new_by_lang,
        "to_send": (sum(new_by_lang.values()) + ledger.get(PENDING, 0)
                    + ledger.get(RETRY, 0) - waiting),
        "excluded": {
            "waiting for a retry (not due yet)": waiting,
            "opted out": opted_out,
            "suppressed": suppressed,
            "archived": archived,
            "already sent": ledger.get(SENT, 0),
            "failed before": ledger.get(FAILED, 0),
            "unknown (needs --resend-unknown)": ledger.get(UNKNOWN, 0),
        },
    }


def lock_edition(conn: Connection, edition: str) -> None:
    """Hold this edition's planning lock until the transaction ends (PostgreSQL).

    Parallel senders starting together recover and plan one after the other: the first
    plans the audience, the others find it planned. SQLite serialises writers itself.
    """
    if conn.dialect.name == "postgresql":
        xact_lock(conn, f"plan {edition}")


def plan(conn: Connection, edition: str, audience: Any = EVERYONE) -> int:
    """Add a pending row for every eligible contact of the audience not yet in the ledger.

    One INSERT ... SELECT inside the database: nothing about the audience is held in memory.
    """
    now = utcnow()
    source = select(
        literal(edition, String), contacts.c.email, contacts.c.id, contacts.c.language,
        literal(PENDING, String), literal(0, Integer),
        literal(now, UTCDateTime), literal(now, UTCDateTime),
    ).where(_eligible(), _not_planned(edition), audience)
    columns = ["edition", "email", "contact_id", "lang", "state", "attempts", "created_at",
               "updated_at"]
    # Counted around the insert: psycopg reports no rowcount for INSERT ... SELECT.
    count = select(func.count()).select_from(deliveries).where(deliveries.c.edition == edition)
    before = conn.execute(count).scalar_one()
    conn.execute(insert(deliveries).from_select(columns, source))
    return int(conn.execute(count).scalar_one() - before)


# Values in one IN (...): well under SQLite's 32,766 bound variables and PostgreSQL's 65,535.
IN_CHUNK = 1000


def in_chunks(values: Iterable[Any]) -> Iterator[list[Any]]:
    """The distinct values, sorted, IN_CHUNK at a time: one IN (...) query each."""
    ordered = sorted(set(values), key=str)
    for start in range(0, len(ordered), IN_CHUNK):
        yield ordered[start:start + IN_CHUNK]


def recipients_rows(conn: Connection, emails: Iterable[str], *columns: Any) -> dict[str, list[Any]]:
    """These columns of every ledger row of these recipients, grouped by address."""
    found: dict[str, list[Any]] = {}
    for chunk in in_chunks(emails):
        for row in conn.execute(select(deliveries.c.email, *columns)
                                .where(deliveries.c.email.in_(chunk))):
            found.setdefault(row.email, []).append(row)
    return found


# Why a row of a keyed batch waits for the operator instead of going out under a new key.
KEY_LAPSED = "the batch's idempotency key lapsed before a resend: check, then --resend-unknown"


def recover(
    conn: Connection, edition: str, is_gone: Callable[[str], bool], now: datetime | None = None
) -> dict[str, int]:
    """Settle rows left 'sending' by a process that is gone or whose lease ran out.

    A row whose batch carried an idempotency key that is still valid goes back to 'retry'
    with its key (the provider drops the copy if the first send went through); any other
    becomes 'unknown': it may or may not have been delivered.
    """
    now = now or utcnow()
    rows = conn.execute(
        select(deliveries.c.id, deliveries.c.state, deliveries.c.claimed_by,
               deliveries.c.lease_expires_at, deliveries.c.batch_key,
               deliveries.c.batch_key_expires_at)
        .where(deliveries.c.edition == edition, deliveries.c.state.in_((CLAIMED, SENDING)))
    ).all()
    settled: Counter[str] = Counter()
    for row in rows:
        lease_over = row.lease_expires_at is not None and row.lease_expires_at < now
        if not (lease_over or is_gone(row.claimed_by or "")):
            continue
        resend = row.batch_key is not None and row.batch_key_expires_at is not None and (
            row.batch_key_expires_at > now)
        # Only if the row is still as seen: its holder, slow rather than dead, may have moved
        # it since (handed it over, recorded its answer), and then it is not ours to settle.
        still = update(deliveries).where(
            deliveries.c.id == row.id, deliveries.c.state == row.state,
            deliveries.c.claimed_by.is_(None) if row.claimed_by is None
            else deliveries.c.claimed_by == row.claimed_by)
        if row.state == CLAIMED:
            # Not handed over this time: back in the queue, or, when it belongs to a keyed
            # batch that went out before, back with its batch so it goes again as one. A key
            # is recorded only with a hand-over, so a keyed row did go out once; if its key
            # has lapsed, a resend under a new key could deliver it twice: 'unknown', as
            # expire_keys() does for such a batch waiting in 'retry'.
            if row.batch_key is not None and not resend:
                if conn.execute(still.values(
                        state=UNKNOWN, claimed_by=None, lease_expires_at=None, updated_at=now,
                        last_error=KEY_LAPSED)).rowcount:
                    settled[UNKNOWN] += 1
                continue
            if conn.execute(still.values(
                    state=RETRY if resend else PENDING, claimed_by=None, lease_expires_at=None,
                    updated_at=now)).rowcount:
                settled["released"] += 1
            continue
        state = RETRY if resend else UNKNOWN
        if conn.execute(still.values(
                state=state, claimed_by=None, lease_expires_at=None, updated_at=now,
                last_error="interrupted while sending",
                **({} if resend else {"batch_key": None}))).rowcount:
            settled[state] += 1
    return dict(settled)


def resend_unknown(conn: Connection, edition: str) -> int:
    """Put 'unknown' rows back to 'pending' (the operator accepts a possible duplicate)."""
    return conn.execute(
        update(deliveries)
        .where(deliveries.c.edition == edition, deliveries.c.state == UNKNOWN)
        .values(state=PENDING, batch_key=None, batch_key_expires_at=None, updated_at=utcnow())
    ).rowcount


def _to_claimed(row: Any, now: datetime) -> Claimed:
    contact = Contact(
        email=row.email, source=row.source or "ledger", first_name=row.first_name,
        last_name=row.last_name, company=row.company, language=row.lang,
        # The CRM's other fields: the click-measurement consent is read from them.
        attributes=row.attributes or {},
    )
    # A key past its validity protects nothing any more: the row goes out under a new one.
    valid = row.batch_key_expires_at is not None and row.batch_key_expires_at > now
    return Claimed(id=row.id, contact=contact, attempts=row.attempts,
                   batch_key=row.batch_key if valid else None,
                   key_expires=row.batch_key_expires_at if valid else None)


def expire_keys(conn: Connection, edition: str, now: datetime) -> int:
    """Make 'unknown' the retry rows of a keyed batch whose key may no longer be resent.

    Such a batch failed with no sure answer (the provider may have taken it): under a new key
    it could be delivered twice, so it waits for the operator, as an interrupted one does.
    A batch the provider refused outright lost its key then (:func:`record`) and is not
    touched; last_cause keeps the provider's own answer.
    """
    return conn.execute(
        update(deliveries)
        .where(deliveries.c.edition == edition, deliveries.c.state == RETRY,
               deliveries.c.batch_key.is_not(None), deliveries.c.batch_key_expires_at <= now)
        .values(state=UNKNOWN, last_error=KEY_LAPSED, updated_at=now)
    ).rowcount


def claim(
    conn: Connection, edition: str, worker: str, limit: int, lease: timedelta,
    now: datetime | None = None, state: str = SENDING,
) -> list[Claimed]:
    """Move up to ``limit`` sendable rows to ``state`` for this worker and return them.

    ``state`` is 'sending' when the whole batch is handed over at once, or 'claimed' when
    each row (or chunk) moves to 'sending' just before its own hand-over
    (:meth:`LaneLedger.mark_sending`, :func:`hand_over`).

    Rows of an interrupted batch that kept its idempotency key are claimed together, alone,
    so the batch can be sent again exactly as it was.
    """
    now = now or utcnow()
    expire_keys(conn, edition, now)  # 'status' then shows them unknown, with why
    # Another sender may take every row this one saw (see _take): look again, a few times.
    for _ in range(3):
        rows, keyed = _sendable(conn, edition, limit, now)
        if not rows:
            return []
        rows = _skip_suppressed(conn, edition, rows, now)
        taken = _take(conn, rows, worker, lease, now, state, keyed)
        if taken:
            return [_to_claimed(r, now) for r in rows if r.id in taken]
    return []


def _due(now: datetime) -> Any:
    return or_(deliveries.c.next_attempt_at.is_(None), deliveries.c.next_attempt_at <= now)


def _sendable(
    conn: Connection, edition: str, limit: int, now: datetime
) -> tuple[list[Any], str | None]:
    """Up to ``limit`` rows to claim (a keyed batch whole), and that batch's key if any."""
    base = (
        select(deliveries.c.id, deliveries.c.state, deliveries.c.email, deliveries.c.lang,
               deliveries.c.attempts, deliveries.c.batch_key, deliveries.c.batch_key_expires_at,
               contacts.c.first_name, contacts.c.last_name, contacts.c.company,
               contacts.c.source, contacts.c.attributes)
        .select_from(deliveries.outerjoin(contacts, contacts.c.id == deliveries.c.contact_id))
        .where(deliveries.c.edition == edition)
    )
    due = _due(now)
    # A keyed batch that failed (rather than being interrupted) waits for its retry time too.
    keyed = conn.execute(
        select(deliveries.c.batch_key)
        .where(deliveries.c.edition == edition, _in_state(RETRY),
               deliveries.c.batch_key.is_not(None), due,
               deliveries.c.batch_key_expires_at > now)
        .limit(1)
    ).scalar()
    if keyed is not None:
        queries = [base.where(deliveries.c.state.in_(SENDABLE), deliveries.c.batch_key == keyed)
                   .order_by(deliveries.c.id)]
    else:
        # Retry rows that are due, then pending ones, each by id. One state per query lets
        # the (edition, state) index hand rows over in id order: with both states in one
        # IN (...), SQLite sorted every sendable row to take the first few, at each claim.
        queries = [base.where(_in_state(s), due).order_by(deliveries.c.id)
                   for s in (RETRY, PENDING)]
    rows: list[Any] = []
    for query in queries:
        if keyed is None:
            query = query.limit(limit - len(rows))
        if conn.dialect.name == "postgresql":
            query = query.with_for_update(of=deliveries, skip_locked=True)
        rows += conn.execute(query).all()
        if len(rows) >= limit and keyed is None:
            break
    return rows, keyed


def _skip_suppressed(conn: Connection, edition: str, rows: list[Any], now: datetime) -> list[Any]:
    """Mark 'skipped' the rows whose address was suppressed since planning; the others."""
    suppressed = set(conn.execute(
        select(suppressions.c.email).where(suppressions.c.email.in_([r.email for r in rows]))
    ).scalars())
    if suppressed:
        conn.execute(
            update(deliveries)
            .where(deliveries.c.edition == edition, deliveries.c.email.in_(suppressed),
                   deliveries.c.state.in_(SENDABLE))
            .values(state=SKIPPED, last_error="suppressed before sending", updated_at=now)
        )
    return [r for r in rows if r.email not in suppressed]


def _take(
    conn: Connection, rows: list[Any], worker: str, lease: timedelta, now: datetime,
    state: str, keyed: str | None,
) -> set[int]:
    """Move the rows still as the SELECT saw them to ``state``; return the ids moved.

    On SQLite the SELECT runs before the write lock is taken, and another sender may have
    claimed (even sent) a row since; on PostgreSQL a row lock covers it, and the check costs
    nothing. A row that is no longer as seen is not this sender's to send.
    """
    taken: set[int] = set()
    for seen in SENDABLE:
        ids = [r.id for r in rows if r.state == seen]
        if not ids:
            continue
        expected = [_in_state(seen)] if keyed is not None else [_in_state(seen), _due(now)]
        taken.update(conn.execute(
            update(deliveries)
            .where(deliveries.c.id.in_(ids), *expected)
            .values(state=state, claimed_by=worker, lease_expires_at=now + lease,
                    attempts=deliveries.c.attempts + 1, updated_at=now)
            .returning(deliveries.c.id)
        ).scalars())
    return taken


def make_due(conn: Connection, edition: str) -> int:
    """Make every row waiting in 'retry' due now (``send --now``); return how many.

    Safe for a keyed batch too: it goes again under its key while the key is valid, and
    expire_keys() settles it as before once the key has lapsed.
    """
    return conn.execute(
        update(deliveries)
        .where(deliveries.c.edition == edition, _in_state(RETRY),
               deliveries.c.next_attempt_at.is_not(None))
        .values(next_attempt_at=None)
    ).rowcount


def next_keyed_retry(conn: Connection, edition: str, now: datetime) -> datetime | None:
    """When the first keyed batch waiting in 'retry' is due, if its key still allows it."""
    due = conn.execute(
        select(func.min(func.coalesce(deliveries.c.next_attempt_at, literal(now, UTCDateTime))))
        .where(deliveries.c.edition == edition, _in_state(RETRY),
               deliveries.c.batch_key.is_not(None), deliveries.c.batch_key_expires_at > now)
    ).scalar()
    return due if isinstance(due, datetime) else None


def retry_window(conn: Connection, edition: str) -> tuple[int, datetime | None]:
    """How many rows wait in 'retry', and when the last of them becomes due."""
    count, last = conn.execute(
        select(func.count(), func.max(deliveries.c.next_attempt_at))
        .where(deliveries.c.edition == edition, _in_state(RETRY))
    ).one()
    return int(count), last if isinstance(last, datetime) else None


def set_batch_key(conn: Connection, ids: Sequence[int], key: str, expires: datetime) -> None:
    """Record the idempotency key a batch is about to be sent with."""
    conn.execute(
        update(deliveries).where(deliveries.c.id.in_(list(ids)))
        .values(batch_key=key, batch_key_expires_at=expires)
    )


def _not_suppressed() -> Any:
    """The row's address has no suppression: checked again at each hand-over, since a
    reader may unsubscribe between the claim and the message going out."""
    return ~exists().where(suppressions.c.email == deliveries.c.email)


def skip_suppressed_claimed(conn: Connection, ids: Sequence[int], worker: str) -> int:
    """Mark 'skipped', saying why, this worker's claimed rows among ``ids`` whose address is
    suppressed now (an unsubscribe after the claim); return how many."""
    rows = conn.execute(
        select(deliveries.c.id, suppressions.c.source)
        .join(suppressions, suppressions.c.email == deliveries.c.email)
        .where(deliveries.c.id.in_(list(ids)), deliveries.c.state == CLAIMED,
               deliveries.c.claimed_by == worker)
        .order_by(deliveries.c.id, suppressions.c.source)
    ).all()
    sources: dict[int, list[str]] = {}
    for row_id, source in rows:
        sources.setdefault(row_id, []).append(source)
    now = utcnow()
    for row_id, found in sources.items():
        conn.execute(
            update(deliveries)
            .where(deliveries.c.id == row_id, deliveries.c.state == CLAIMED)
            .values(state=SKIPPED, claimed_by=None, lease_expires_at=None, updated_at=now,
                    last_error=f"suppressed after the claim, before sending ({', '.join(found)})"))
    return len(sources)


def hand_over(conn: Connection, ids: Sequence[int], worker: str) -> set[int]:
    """Claimed rows are about to be handed over together; return those still this worker's
    and not suppressed meanwhile (see :func:`skip_suppressed_claimed` for those)."""
    conn.execute(
        update(deliveries)
        .where(deliveries.c.id.in_(list(ids)), deliveries.c.state == CLAIMED,
               deliveries.c.claimed_by == worker, _not_suppressed())
        .values(state=SENDING)
    )
    return set(conn.execute(
        select(deliveries.c.id)
        .where(deliveries.c.id.in_(list(ids)), deliveries.c.state == SENDING,
               deliveries.c.claimed_by == worker)
    ).scalars())


# Built once: the per-message path runs these thousands of times a second, and a
# prebuilt statement skips SQLAlchemy's construction and cache-key work.
_MARK_SENDING = (
    update(deliveries)
    .where(deliveries.c.id == bindparam("b_id"), deliveries.c.state == CLAIMED,
           deliveries.c.claimed_by == bindparam("b_worker"), _not_suppressed())
    .values(state=SENDING)
)
_RECORD = (
    update(deliveries)
    .where(deliveries.c.id == bindparam("b_id"), deliveries.c.state == SENDING)
    .values(
        state=bindparam("b_state"), provider_status=bindparam("b_provider_status"),
        provider_message_id=bindparam("b_provider_message_id"),
        last_error=bindparam("b_last_error"), next_attempt_at=bindparam("b_next_attempt_at"),
        sent_at=bindparam("b_sent_at"), updated_at=bindparam("b_updated_at"),
        last_cause=bindparam("b_last_cause"),
        # The batch key stays as a record of what the message went out under; a retry is
        # resent under it while it is valid, and claim() ignores it once it has expired. A
        # batch the provider refused outright gives it up: nothing was taken under it.
        batch_key=case((bindparam("b_clear_key", type_=Integer) == 1, null()),
                       else_=deliveries.c.batch_key),
        batch_key_expires_at=case((bindparam("b_clear_key", type_=Integer) == 1, null()),
                                  else_=deliveries.c.batch_key_expires_at),
        attempts=deliveries.c.attempts - bindparam("b_refund", type_=Integer),
        claimed_by=None, lease_expires_at=None,
    )
)


class LaneLedger:
    """The two statements a sending lane runs per message, on the driver's own cursor.

    Marking a row 'sending' and recording an answer happen once per message, thousands of
    times a second; through SQLAlchemy's execution layer they cost about three times the
    database work itself (bench/bench_send.py --profile). Here each is compiled once for
    the dialect and run on a DBAPI cursor of ``conn``, inside ``conn``'s transaction, with
    the same SQL, parameters and type conversion SQLAlchemy would have used.
    """

    def __init__(self, conn: Connection) -> None:
        dialect = conn.dialect
        # The driver's own connection: statements on its cursor join conn's transaction.
        raw = conn.connection.driver_connection
        if raw is None:
            raise RuntimeError("the connection is closed")
        self._conn = conn
        self._raw = raw
        self._cursor = raw.cursor()
        self._mark = _compiled(_MARK_SENDING, dialect)
        self._record = _compiled(_RECORD, dialect)
        # The dialect's own form of the type: on SQLite, the same text SQLAlchemy writes.
        to_db = deliveries.c.updated_at.type.dialect_impl(dialect).bind_processor(dialect)
        self._time: Callable[[Any], Any] = to_db or (lambda value: value)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One transaction: committed on success, rolled back on error.

        The driver's own commit, unless a statement went through SQLAlchemy meanwhile (a
        suppression after a bounce): then SQLAlchemy's, which commits the same transaction.
        """
        try:
            yield
        except BaseException:
            if self._conn.in_transaction():
                self._conn.rollback()
            else:
                self._raw.rollback()
            raise
        if self._conn.in_transaction():
            self._conn.commit()
        else:
            self._raw.commit()

    def mark_sending(self, row_id: int, worker: str) -> bool:
        """A claimed row is about to be handed over; False if it is no longer this worker's,
        or its address was suppressed since the claim (:func:`skip_suppressed_claimed`).

        A row stops being the worker's when its lease ran out and another sender settled it
        (a slow worker under a shared rate limit): handing it over then could send it twice.
        """
        mark = self._mark
        self._cursor.execute(mark.sql, mark.params({"b_id": row_id, "b_worker": worker}))
        return bool(self._cursor.rowcount == 1)

    def record(self, outcomes: Sequence[Outcome]) -> int:
        """As :func:`record`."""
        if not outcomes:
            return 0
        now = self._time(utcnow())
        record = self._record
        self._cursor.executemany(record.sql, [
            record.params(_record_values(o, now, self._time(o.retry_at))) for o in outcomes])
        return int(self._cursor.rowcount)


class _Prepared:
    """A statement compiled for one dialect: its SQL, and its parameters from values."""

    def __init__(self, stmt: Any, dialect: Any) -> None:
        compiled = stmt.compile(dialect=dialect)
        self.sql: str = compiled.string
        self._defaults = dict(compiled.params)  # values written in the statement itself
        order = list(compiled.positiontup or [])
        # Positional paramstyles (SQLite's '?') take a tuple in the statement's order.
        self._order = operator.itemgetter(*order) if dialect.positional and order else None

    def params(self, values: dict[str, Any]) -> Any:
        merged = {**self._defaults, **values}
        if self._order is None:
            return merged
        picked = self._order(merged)
        return picked if isinstance(picked, tuple) else (picked,)


_COMPILED: dict[tuple[int, str], _Prepared] = {}


def _compiled(stmt: Any, dialect: Any) -> _Prepared:
    """The statement prepared for this dialect, once per process."""
    key = (id(stmt), f"{dialect.name}+{dialect.driver}")
    if key not in _COMPILED:
        _COMPILED[key] = _Prepared(stmt, dialect)
    return _COMPILED[key]


def _record_values(o: Outcome, now: Any, retry_at: Any) -> dict[str, Any]:
    return {"b_id": o.id, "b_state": o.state, "b_provider_status": o.provider_status,
            "b_provider_message_id": o.provider_message_id, "b_last_error": o.error,
            "b_next_attempt_at": retry_at, "b_sent_at": now if o.state == SENT else None,
            "b_updated_at": now, "b_last_cause": None if o.state == SENT else o.cause,
            "b_clear_key": 1 if o.clear_key else 0, "b_refund": 1 if o.refund else 0}


def release(conn: Connection, edition: str, worker: str) -> int:
    """Give back this worker's claimed rows that were never handed over.

    A row of a keyed batch that went out before goes back to 'retry' with its key, due at
    once, so that it goes again with its batch under that key (or becomes 'unknown' if the
    key lapses: expire_keys); back in 'pending' with a key it could be sent under another.
    """
    now = utcnow()
    mine = (deliveries.c.edition == edition, deliveries.c.state == CLAIMED,
            deliveries.c.claimed_by == worker)
    given_back = dict(claimed_by=None, lease_expires_at=None,
                      attempts=deliveries.c.attempts - 1, updated_at=now)
    keyed = conn.execute(
        update(deliveries).where(*mine, deliveries.c.batch_key.is_not(None))
        .values(state=RETRY, next_attempt_at=now, **given_back)).rowcount
    return int(keyed) + int(conn.execute(
        update(deliveries).where(*mine, deliveries.c.batch_key.is_(None))
        .values(state=PENDING, **given_back)).rowcount)


def batch_lost_rows(conn: Connection, batch_key: str) -> int:
    """How many rows of a keyed batch were taken out of it (skipped, left the audience).

    The provider names each part of a batch by its key: resent without some of its rows, a
    part may go under another key (a duplicate if the first was taken) or share one with
    messages it never carried (dropped as a duplicate, never delivered).
    """
    return int(conn.execute(
        select(func.count()).select_from(deliveries)
        .where(deliveries.c.batch_key == batch_key,
               deliveries.c.state.in_((SKIPPED, LEFT)))).scalar_one())


BATCH_CHANGED = ("readers of this batch unsubscribed or left the audience before its resend, "
                 "and the provider may have taken the first try: check, then --resend-unknown")


def record(conn: Connection, outcomes: Iterable[Outcome]) -> int:
    """Write each row's outcome; rows leave 'sending' only here. Return the rows written:
    fewer than the outcomes when another sender settled a row meanwhile."""
    now = utcnow()
    params = [_record_values(o, now, o.retry_at) for o in outcomes]
    if not params:
        return 0
    return int(conn.execute(_RECORD, params).rowcount)


def ledger_counts(conn: Connection, edition: str) -> dict[str, int]:
    """Rows of one edition by state."""
    return dict(conn.execute(
        select(deliveries.c.state, func.count())
        .where(deliveries.c.edition == edition)
        .group_by(deliveries.c.state)
    ).all())


def sent_editions(conn: Connection) -> set[str]:
    """Editions with at least one row sent (a provider's "queued" is recorded as sent)."""
    return set(conn.execute(
        select(deliveries.c.edition).where(_in_state(SENT)).distinct()).scalars())


def ledger_report(conn: Connection, edition: str) -> dict[str, Any]:
    """Counts by state, by language, and failures by error, for status and summaries."""
    by_lang: dict[str, dict[str, int]] = {}
    for lang, state, n in conn.execute(
        select(deliveries.c.lang, deliveries.c.state, func.count())
        .where(deliveries.c.edition == edition)
        .group_by(deliveries.c.lang, deliveries.c.state)
    ):
        by_lang.setdefault(lang, {})[state] = n
    errors: dict[str, int] = dict(conn.execute(
        select(deliveries.c.last_error, func.count())
        .where(deliveries.c.edition == edition,
               deliveries.c.state.in_((FAILED, RETRY, UNKNOWN, SKIPPED)))
        .group_by(deliveries.c.last_error)
        .order_by(func.count().desc())
        .limit(10)
    ).all())
    causes: dict[tuple[str, str], int] = {
        (state, cause): n for state, cause, n in conn.execute(
            select(deliveries.c.state, deliveries.c.last_cause, func.count())
            .where(deliveries.c.edition == edition, deliveries.c.last_cause.is_not(None),
                   deliveries.c.state.in_((FAILED, RETRY, UNKNOWN)))
            .group_by(deliveries.c.state, deliveries.c.last_cause))}
    return {"by_state": ledger_counts(conn, edition), "by_language": by_lang, "errors": errors,
            "causes": causes}


def editions_in_ledger(conn: Connection) -> list[str]:
    """Editions that have ledger rows."""
    return list(conn.execute(select(deliveries.c.edition).distinct()).scalars())


def iter_audience(conn: Connection, edition: str, audience: Any = EVERYONE) -> Iterable[Contact]:
    """Stream who a send would reach now: new eligible contacts and rows still to send."""
    rows = conn.execution_options(yield_per=500).execute(
        select(contacts)
        .where(_eligible(), audience)
        .where(or_(
            _not_planned(edition),
            exists().where(and_(deliveries.c.edition == edition,
                                deliveries.c.email == contacts.c.email,
                                deliveries.c.state.in_(SENDABLE))),
        ))
        .order_by(contacts.c.id)
    )
    for row in rows:
        yield Contact(email=row.email, source=row.source, first_name=row.first_name,
                      last_name=row.last_name, company=row.company, language=row.language)
