"""The current schema, as SQLAlchemy Core tables. Migrations build it; queries use it."""

from __future__ import annotations

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
    text,
)

from clubjapon_ops.store.types import UTCDateTime

metadata = MetaData()

schema_version = Table(
    "schema_version",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("applied_at", UTCDateTime, nullable=False),
)

contacts = Table(
    "contacts",
    metadata,
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
    # Added by migration 2: set when a full CRM sync no longer sees the contact.
    Column("archived_at", UTCDateTime),
    # Added by migration 3: the start of the last full CRM sync that returned the contact.
    Column("last_seen_at", UTCDateTime),
    Index("ix_contacts_source_crm_id", "source", "crm_id"),
)

sync_state = Table(
    "sync_state",
    metadata,
    Column("source", String(32), primary_key=True),
    Column("bookmark", Text),
    Column("updated_at", UTCDateTime, nullable=False),
    # Added by migration 2.
    Column("last_full_sync_at", UTCDateTime),
    # Added by migration 3: set while a full sync is under way, so a killed one resumes.
    Column("full_sync_started_at", UTCDateTime),
)

suppressions = Table(
    "suppressions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("email", String(320), nullable=False),
    Column("reason", Text, nullable=False),
    Column("source", String(32), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("email", "source", name="uq_suppressions_email_source"),
)

job_runs = Table(
    "job_runs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("job", String(64), nullable=False),
    Column("trigger", String(32), nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime),
    Column("duration_s", Float),
    Column("status", String(16), nullable=False),
    Column("counts", JSON, nullable=False),
    Column("error", Text),
    # Added by migration 4: which try of a retried job this is (NULL in older rows means 1),
    # and the jobs/ file the run came from (NULL for direct commands such as `sync`).
    Column("attempt", Integer),
    Column("declared_job", String(64)),
    # Added by migration 9: the process running the job, 'host:pid'.
    Column("runner", String(200)),
    Index("ix_job_runs_job_started", "job", "started_at"),
    Index("ix_job_runs_declared_started", "declared_job", "started_at"),
)

# Added by migration 3: the ledger, one row per (edition, contact).
deliveries = Table(
    "deliveries",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("edition", String(120), nullable=False),
    Column("email", String(320), nullable=False),
    Column("contact_id", Integer),
    Column("lang", String(8), nullable=False),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("last_error", Text),
    # Migration 13: the provider's last answer for this row ('401', '429', '500', 'timeout',
    # 'connection lost'), kept until another answer replaces it; NULL once sent.
    Column("last_cause", String(32)),
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
    # Migration 8: the rows a send claims, by edition, in id order. Partial, so a row leaves
    # them once at its claim, and the per-message moves after that (sending, sent) write no
    # index page: half of SQLite's work per message.
    Index("ix_deliveries_pending", "edition", sqlite_where=text("state = 'pending'"),
          postgresql_where=text("state = 'pending'")),
    Index("ix_deliveries_retry", "edition", sqlite_where=text("state = 'retry'"),
          postgresql_where=text("state = 'retry'")),
    Index("ix_deliveries_batch_key", "batch_key"),
)

# Added by migration 6: provider events (webhooks), stored once each, then processed.
events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("provider", String(16), nullable=False),
    # The provider's event id, or a hash of the raw event where the provider has none.
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

# Added by migration 6: suppressions pushed to a CRM, one row per (email, CRM).
crm_pushes = Table(
    "crm_pushes",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("email", String(320), nullable=False),
    Column("crm", String(32), nullable=False),
    Column("source", String(32), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("detail", Text),
    Column("pushed_at", UTCDateTime, nullable=False),
    UniqueConstraint("email", "crm", name="uq_crm_pushes_email_crm"),
)

# Added by migration 7: token buckets shared by parallel senders (one row per bucket).
send_rate = Table(
    "send_rate",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("tokens", Float, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

# Added by migration 10: suppressions lifted by hand, with when and why (they are gone from
# suppressions; this is the record of who may be mailed again, and on whose word).
suppression_removals = Table(
    "suppression_removals",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("email", String(320), nullable=False),
    Column("sources", Text, nullable=False),  # the suppressions lifted, e.g. 'bounce, crm'
    Column("reasons", Text, nullable=False),  # what each of them said
    Column("why", Text, nullable=False),
    Column("removed_at", UTCDateTime, nullable=False),
    Index("ix_suppression_removals_email", "email"),
)

# Added by migration 15: the CRM's lists, one row per (source, name as matched), and who is
# on each. A list the CRM no longer has keeps its row, with missing_since set, and no member.
lists = Table(
    "lists",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("source", String(32), nullable=False),
    Column("crm_list_id", String(200)),  # the CRM's id (Brevo, HubSpot); none in a CSV export
    Column("name", String(200), nullable=False),  # as the CRM writes it
    Column("name_key", String(200), nullable=False),  # listnames.list_key(name)
    Column("synced_at", UTCDateTime, nullable=False),
    Column("missing_since", UTCDateTime),
    UniqueConstraint("source", "name_key", name="uq_lists_source_key"),
    Index("ix_lists_name_key", "name_key"),
)

list_members = Table(
    "list_members",
    metadata,
    Column("list_id", Integer, primary_key=True, autoincrement=False),
    Column("contact_id", Integer, primary_key=True, autoincrement=False),
    Index("ix_list_members_contact", "contact_id"),
)

# Added by migration 13: the links of each sent edition, by (edition, language, link key),
# kept with the ledger so that a click redirects even once the edition file is gone. The id
# is the link's click token (delivery/clicks.py): a keyed hash, it names nobody.
edition_links = Table(
    "edition_links",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("edition", String(120), nullable=False),
    Column("lang", String(8), nullable=False),
    Column("link_key", String(32), nullable=False),
    Column("label", Text, nullable=False),
    Column("url", Text, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("edition", "lang", "link_key", name="uq_edition_links_key"),
)

# Added by migration 13: clicks per link and day, readers and link scanners apart. One row
# per link and day whatever the number of clicks; nothing about who clicked.
link_clicks = Table(
    "link_clicks",
    metadata,
    Column("link_id", String(32), primary_key=True),
    Column("day", String(10), primary_key=True),  # YYYY-MM-DD, UTC
    Column("readers", Integer, nullable=False),
    Column("scanners", Integer, nullable=False),
)
