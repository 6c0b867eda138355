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
    func,
    select,
    text,
)
from sqlalchemy.engine import Connection, Engine

from clubjapon_ops.errors import StoreError
from clubjapon_ops.store import schema
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


def _v3_full_sync_tracking(conn: Connection) -> None:
    # A full sync stamps every contact it sees, then archives the unstamped ones; the pass's
    # start time is kept so that a full sync killed mid-way resumes with the same stamp.
    timestamp = UTCDateTime().impl.compile(dialect=conn.dialect)
    conn.execute(text(f"ALTER TABLE contacts ADD COLUMN last_seen_at {timestamp}"))
    conn.execute(text(f"ALTER TABLE sync_state ADD COLUMN full_sync_started_at {timestamp}"))


MIGRATIONS: tuple[tuple[int, str, Step], ...] = (
    (1, "contacts, sync state, suppressions, job runs", _v1_initial),
    (2, "contacts.archived_at, sync_state.last_full_sync_at", _v2_archive_and_full_sync),
    (3, "contacts.last_seen_at, sync_state.full_sync_started_at", _v3_full_sync_tracking),
)
HEAD = MIGRATIONS[-1][0]


def current_version(conn: Connection) -> int:
    """Return the schema version recorded in the database (0 for an empty one)."""
    schema.schema_version.create(conn, checkfirst=True)
    version = conn.execute(select(func.max(schema.schema_version.c.version))).scalar()
    return int(version or 0)


def migrate(engine: Engine, target: int = HEAD) -> int:
    """Bring the database up to ``target``, one transaction per step; return the version."""
    with engine.begin() as conn:
        version = current_version(conn)
    if version > HEAD:
        raise StoreError(
            f"the database is at schema version {version}, newer than this program knows "
            f"({HEAD}): upgrade clubjapon-ops"
        )
    for number, title, step in MIGRATIONS:
        if version < number <= target:
            with engine.begin() as conn:
                step(conn)
                conn.execute(
                    schema.schema_version.insert().values(version=number, applied_at=utcnow())
                )
            log.info("schema migrated", extra={"version": number, "step": title})
            version = number
    return version
