"""Versioned schema migrations that run on start, on SQLite and PostgreSQL alike.

Each step is frozen once released: it defines the tables as they were at that version, so
a database made by any older release upgrades to the current schema step by step.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    select,
    text,
)
from sqlalchemy.engine import Connection, Engine

from clubjapon_ops.errors import StoreError
from clubjapon_ops.store import schema
from clubjapon_ops.store.advisory import session_lock
from clubjapon_ops.store.types import UTCDateTime, utcnow

log = logging.getLogger(__name__)

Step = Callable[[Connection], None]


def _v1_initial(conn: Connection) -> None:
    md = MetaData()
    Table(
        "contacts", md,
        Column("id", Integer, primary_key=True),
        Column("email", String(320), nullable=False, unique=True),
        Column("source", String(32), nullable=False),
        Column("crm_id", String(200)),
        Column("first_name", String(200)),
        Column("last_name", String(200)),
        Column("company", String(200)),
        Column("language", String(8), nullable=False),
        Column("opted_out", Boolean, nullable=False),
        Column("crm_created_at", UTCDateTime),
        Column("crm_updated_at", UTCDateTime),
        Column("attributes", JSON, nullable=False),
        Column("created_at", UTCDateTime, nullable=False),
        Column("updated_at", UTCDateTime, nullable=False),
        Index("ix_contacts_source_crm_id", "source", "crm_id"),
    )
    Table(
        "sync_state", md,
        Column("source", String(32), primary_key=True),
        Column("bookmark", Text),
        Column("updated_at", UTCDateTime, nullable=False),
    )
    Table(
        "suppressions", md,
        Column("id", Integer, primary_key=True),
        Column("email", String(320), nullable=False),
        Column("reason", Text, nullable=False),
        Column("source", String(32), nullable=False),
        Column("created_at", UTCDateTime, nullable=False),
        UniqueConstraint("email", "source", name="uq_suppressions_email_source"),
    )
    Table(
        "job_runs", md,
        Column("id", Integer, primary_key=True),
        Column("job", String(64), nullable=False),
        Column("trigger", String(32), nullable=False),
        Column("started_at", UTCDateTime, nullable=False),
        Column("finished_at", UTCDateTime),
        Column("duration_s", Float),
        Column("status", String(16), nullable=False),
        Column("counts", JSON, nullable=False),
        Column("error", Text),
        Index("ix_job_runs_job_started", "job", "started_at"),
    )
    md.create_all(conn)


def _v2_archive_and_full_sync(conn: Connection) -> None:
    # Plain ADD COLUMN: the one ALTER that SQLite and PostgreSQL share.
    timestamp = UTCDateTime().impl.compile(dialect=conn.dialect)
    conn.execute(text(f"ALTER TABLE contacts ADD COLUMN archived_at {timestamp}"))
    conn.execute(text(f"ALTER TABLE sync_state ADD COLUMN last_full_sync_at {timestamp}"))


def _v3_deliveries(conn: Connection) -> None:
    md = MetaData()
    Table(
        "deliveries", md,
        Column("id", Integer, primary_key=True),
        Column("edition", String(120), nullable=False),
        Column("email", String(320), nullable=False),
        Column("contact_id", Integer),
        Column("lang", String(8), nullable=False),
        Column("state", String(16), nullable=False),
        Column("attempts", Integer, nullable=False),
        Column("last_error", Text),
        Column("provider_status", String(16)),
        Column("provider_message_id", String(300)),
        Column("batch_key", String(64)),
        Column("batch_key_expires_at", UTCDateTime),
        Column("claimed_by", String(200)),
        Column("lease_expires_at", UTCDateTime),
        Column("next_attempt_at", UTCDateTime),
        Column("created_at", UTCDateTime, nullable=False),
        Column("updated_at", UTCDateTime, nullable=False),
        Column("sent_at", UTCDateTime),
        UniqueConstraint("edition", "email", name="uq_deliveries_edition_email"),
        Index("ix_deliveries_edition_state", "edition", "state"),
        Index("ix_deliveries_batch_key", "batch_key"),
    )
    md.create_all(conn)


def _v4_job_run_attempts(conn: Connection) -> None:
    # Number 4, not 3: 3 is taken by a branch built in parallel; the steps are independent.
    conn.execute(text("ALTER TABLE job_runs ADD COLUMN attempt INTEGER"))
    conn.execute(text("ALTER TABLE job_runs ADD COLUMN declared_job VARCHAR(64)"))
    conn.execute(
        text("CREATE INDEX ix_job_runs_declared_started ON job_runs (declared_job, started_at)")
    )
def _v5_full_sync_tracking(conn: Connection) -> None:
    # A full sync stamps every contact it sees, then archives the unstamped ones; the pass's
    # start time is kept so that a full sync killed mid-way resumes with the same stamp.
    timestamp = UTCDateTime().impl.compile(dialect=conn.dialect)
    conn.execute(text(f"ALTER TABLE contacts ADD COLUMN last_seen_at {timestamp}"))
    conn.execute(text(f"ALTER TABLE sync_state ADD COLUMN full_sync_started_at {timestamp}"))


def _v6_events_and_crm_pushes(conn: Connection) -> None:
    md = MetaData()
    Table(
        "events", md,
        Column("id", Integer, primary_key=True),
        Column("provider", String(16), nullable=False),
        Column("event_key", String(128), nullable=False),
        Column("delivery_id", Integer),
        Column("email", String(320), nullable=False),
        Column("type", String(16), nullable=False),
        Column("provider_event", String(64), nullable=False),
        Column("message_id", String(300)),
        Column("reason", Text),
        Column("occurred_at", UTCDateTime, nullable=False),
        Column("received_at", UTCDateTime, nullable=False),
        Column("processed_at", UTCDateTime),
        Column("raw", JSON, nullable=False),
        UniqueConstraint("provider", "event_key", name="uq_events_provider_key"),
        Index("ix_events_email_occurred", "email", "occurred_at"),
        Index("ix_events_delivery", "delivery_id"),
        Index("ix_events_unprocessed", "processed_at"),
    )
    Table(
        "crm_pushes", md,
        Column("id", Integer, primary_key=True),
        Column("email", String(320), nullable=False),
        Column("crm", String(32), nullable=False),
        Column("source", String(32), nullable=False),
        Column("outcome", String(16), nullable=False),
        Column("detail", Text),
        Column("pushed_at", UTCDateTime, nullable=False),
        UniqueConstraint("email", "crm", name="uq_crm_pushes_email_crm"),
    )
    md.create_all(conn)


def _v7_send_rate(conn: Connection) -> None:
    # Number 7: 6 is taken by a branch built in parallel (events); the steps are independent.
    # The token bucket that parallel senders share, so the rate limit is global.
    md = MetaData()
    Table(
        "send_rate", md,
        Column("name", String(64), primary_key=True),
        Column("tokens", Float, nullable=False),
        Column("updated_at", UTCDateTime, nullable=False),
    )
    md.create_all(conn)


def _v8_sendable_indexes(conn: Connection) -> None:
    # The (edition, state) index changed twice for every message sent ('sending', then
    # 'sent'), which was half of SQLite's work per message; partial indexes of the rows
    # still to claim change once per row, at its claim.
    conn.execute(text("DROP INDEX IF EXISTS ix_deliveries_edition_state"))
    md = MetaData()
    deliveries = Table("deliveries", md, Column("edition", String(120)),
                       Column("state", String(16)))
    for state in ("pending", "retry"):
        where = text(f"state = '{state}'")
        Index(f"ix_deliveries_{state}", deliveries.c.edition, sqlite_where=where,
              postgresql_where=where).create(conn)


def _v9_job_run_runner(conn: Connection) -> None:
    # Which process ran a job ('host:pid'): a run whose process is gone without recording its
    # end (SIGKILL, a crash) can then be told from one still running.
    conn.execute(text("ALTER TABLE job_runs ADD COLUMN runner VARCHAR(200)"))


def _v10_suppression_removals(conn: Connection) -> None:
    md = MetaData()
    Table(
        "suppression_removals", md,
        Column("id", Integer, primary_key=True),
        Column("email", String(320), nullable=False),
        Column("sources", Text, nullable=False),
        Column("reasons", Text, nullable=False),
        Column("why", Text, nullable=False),
        Column("removed_at", UTCDateTime, nullable=False),
        Index("ix_suppression_removals_email", "email"),
    )
    md.create_all(conn)


def _v11_last_cause(conn: Connection) -> None:
    # What the provider last answered for a row ('401', '429', '500', 'timeout'), kept
    # apart from last_error so that a later note (a key that lapsed) never hides it.
    conn.execute(text("ALTER TABLE deliveries ADD COLUMN last_cause VARCHAR(32)"))


def _v12_lists(conn: Connection) -> None:
    md = MetaData()
    Table(
        "lists", md,
        Column("id", Integer, primary_key=True),
        Column("source", String(32), nullable=False),
        Column("crm_list_id", String(200)),
        Column("name", String(200), nullable=False),
        Column("name_key", String(200), nullable=False),
        Column("synced_at", UTCDateTime, nullable=False),
        Column("missing_since", UTCDateTime),
        UniqueConstraint("source", "name_key", name="uq_lists_source_key"),
        Index("ix_lists_name_key", "name_key"),
    )
    Table(
        "list_members", md,
        Column("list_id", Integer, primary_key=True, autoincrement=False),
        Column("contact_id", Integer, primary_key=True, autoincrement=False),
        Index("ix_list_members_contact", "contact_id"),
    )
    md.create_all(conn)


def _v13_link_clicks(conn: Connection) -> None:
    md = MetaData()
    Table(
        "edition_links", md,
        Column("id", String(32), primary_key=True),
        Column("edition", String(120), nullable=False),
        Column("lang", String(8), nullable=False),
        Column("link_key", String(32), nullable=False),
        Column("label", Text, nullable=False),
        Column("url", Text, nullable=False),
        Column("updated_at", UTCDateTime, nullable=False),
        UniqueConstraint("edition", "lang", "link_key", name="uq_edition_links_key"),
    )
    Table(
        "link_clicks", md,
        Column("link_id", String(32), primary_key=True),
        Column("day", String(10), primary_key=True),
        Column("readers", Integer, nullable=False),
        Column("scanners", Integer, nullable=False),
    )
    md.create_all(conn)


MIGRATIONS: tuple[tuple[int, str, Step], ...] = (
    (1, "contacts, sync state, suppressions, job runs", _v1_initial),
    (2, "contacts.archived_at, sync_state.last_full_sync_at", _v2_archive_and_full_sync),
    (3, "deliveries: the per-recipient ledger", _v3_deliveries),
    (4, "job_runs.attempt, job_runs.declared_job", _v4_job_run_attempts),
    (5, "contacts.last_seen_at, sync_state.full_sync_started_at", _v5_full_sync_tracking),
    (6, "events (provider webhooks), crm_pushes (write-back)", _v6_events_and_crm_pushes),
    (7, "send_rate: the token bucket shared by parallel senders", _v7_send_rate),
    (8, "deliveries: partial indexes of the rows still to send", _v8_sendable_indexes),
    (9, "job_runs.runner: the process that runs a job", _v9_job_run_runner),
    (10, "suppression_removals: suppressions lifted by hand", _v10_suppression_removals),
    (11, "deliveries.last_cause: the provider's last answer for a row", _v11_last_cause),
    (12, "lists and list_members: the CRM's lists and who is on them", _v12_lists),
    (13, "edition_links and link_clicks: links of sent editions, clicks per day",
     _v13_link_clicks),
)
HEAD = MIGRATIONS[-1][0]


def applied_versions(conn: Connection) -> set[int]:
    """Return the migration steps recorded in the database (empty for a new one)."""
    schema.schema_version.create(conn, checkfirst=True)
    return set(conn.execute(select(schema.schema_version.c.version)).scalars())


def current_version(conn: Connection) -> int:
    """Return the highest schema version recorded in the database (0 for an empty one)."""
    return max(applied_versions(conn), default=0)


def migrate(engine: Engine, target: int = HEAD) -> int:
    """Apply every step up to ``target`` not applied yet, one transaction each.

    Steps are applied by number, not only above the highest one recorded, so a step that
    came in from a branch merged later still runs on a database that has newer ones.
    On PostgreSQL, processes starting together (parallel senders) migrate one at a time.
    """
    if engine.dialect.name == "postgresql":
        with session_lock(engine, "migrate"):
            return _migrate(engine, target)
    return _migrate(engine, target)


def _migrate(engine: Engine, target: int) -> int:
    with engine.begin() as conn:
        applied = applied_versions(conn)
    newest = max(applied, default=0)
    if newest > HEAD:
        raise StoreError(
            f"the database is at schema version {newest}, newer than this program knows "
            f"({HEAD}): upgrade clubjapon-ops"
        )
    for number, title, step in MIGRATIONS:
        if number <= target and number not in applied:
            with engine.begin() as conn:
                step(conn)
                conn.execute(
                    schema.schema_version.insert().values(version=number, applied_at=utcnow())
                )
            log.info("schema migrated", extra={"version": number, "step": title})
            applied.add(number)
    return max((n for n in applied if n <= target), default=0)
