from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, inspect, select, text

from clubjapon_ops.contacts import Contact
from clubjapon_ops.errors import StoreError
from clubjapon_ops.store import Store, open_store
from clubjapon_ops.store.contacts import upsert_contacts
from clubjapon_ops.store.database import make_engine
from clubjapon_ops.store.migrations import HEAD, migrate
from clubjapon_ops.store.schema import contacts, metadata, schema_version, suppressions


def contact(email: str, **fields: object) -> Contact:
    return Contact(email=email, source="csv", **fields)  # type: ignore[arg-type]


def at(day: int) -> datetime:
    return datetime(2025, 11, day, tzinfo=UTC)


def all_suppressions(store: Store) -> set[tuple[str, str]]:
    with store.transaction() as conn:
        return {(r.email, r.source) for r in conn.execute(select(suppressions))}


@pytest.mark.sqlite_only
def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(store: Store) -> None:
    with store.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 30000


def test_upsert_counts_created_updated_unchanged(store: Store) -> None:
    with store.transaction() as conn:
        first = upsert_contacts(conn, [contact("a@x.org", first_name="A"), contact("b@x.org")])
    assert (first.created, first.updated, first.unchanged) == (2, 0, 0)
    with store.transaction() as conn:
        second = upsert_contacts(
            conn, [contact("a@x.org", first_name="A"), contact("b@x.org", first_name="B")]
        )
    assert (second.created, second.updated, second.unchanged) == (0, 1, 1)
    with store.transaction() as conn:
        names = dict(conn.execute(select(contacts.c.email, contacts.c.first_name)).all())
    assert names == {"a@x.org": "A", "b@x.org": "B"}


def test_an_older_record_never_overwrites_a_newer_one(store: Store) -> None:
    with store.transaction() as conn:
        upsert_contacts(conn, [contact("a@x.org", first_name="New", crm_updated_at=at(10))])
        counts = upsert_contacts(conn, [contact("a@x.org", first_name="Old",
                                                crm_updated_at=at(2))])
        name = conn.execute(select(contacts.c.first_name)).scalar_one()
    assert counts.unchanged == 1
    assert name == "New"


def test_crm_opt_out_suppresses_and_opt_in_lifts_only_crm_suppressions(store: Store) -> None:
    with store.transaction() as conn:
        upsert_contacts(conn, [contact("a@x.org", opted_out=True),
                               contact("b@x.org", opted_out=True)])
        conn.execute(suppressions.insert().values(
            email="b@x.org", reason="clicked unsubscribe", source="unsubscribe",
            created_at=at(3)))
    assert all_suppressions(store) == {("a@x.org", "crm"), ("b@x.org", "crm"),
                                       ("b@x.org", "unsubscribe")}
    with store.transaction() as conn:
        upsert_contacts(conn, [contact("a@x.org", opted_out=False),
                               contact("b@x.org", opted_out=False)])
    assert all_suppressions(store) == {("b@x.org", "unsubscribe")}


def test_migrated_schema_matches_the_declared_one(store: Store) -> None:
    inspector = inspect(store.engine)
    for table in metadata.sorted_tables:
        actual = {c["name"] for c in inspector.get_columns(table.name)}
        assert actual == set(table.columns.keys()), table.name
        # PostgreSQL lists the index behind each unique constraint too: not ours to declare.
        indexes = {i["name"] for i in inspector.get_indexes(table.name)
                   if not i.get("duplicates_constraint")}
        assert indexes == {i.name for i in table.indexes}, table.name


def test_upgrade_from_version_1_keeps_every_row(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/old.sqlite3"
    engine = make_engine(url)
    assert migrate(engine, target=1) == 1
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO contacts (email, source, language, opted_out, attributes, created_at,"
            " updated_at) VALUES ('kept@x.org', 'csv', 'ja', 0, '{}', '2025-01-01 00:00:00',"
            " '2025-01-01 00:00:00')"))
        conn.execute(text("INSERT INTO sync_state (source, bookmark, updated_at) "
                          "VALUES ('hubspot', '2025-10-01T00:00:00Z', '2025-10-01 00:00:00')"))
    engine.dispose()

    store = open_store(url)
    with store.transaction() as conn:
        assert conn.execute(select(func.max(schema_version.c.version))).scalar() == HEAD
        row = conn.execute(select(contacts)).one()
        assert (row.email, row.language, row.archived_at) == ("kept@x.org", "ja", None)
        assert conn.execute(text("SELECT bookmark FROM sync_state")).scalar() == (
            "2025-10-01T00:00:00Z")
    assert migrate(store.engine) == HEAD  # a second start changes nothing


def test_a_newer_database_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/new.sqlite3"
    store = open_store(url)
    with store.transaction() as conn:
        conn.execute(schema_version.insert().values(version=HEAD + 1, applied_at=at(1)))
    with pytest.raises(StoreError, match="newer than this program"):
        open_store(url)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sqlite:////proc/no/such/dir/db.sqlite3", "cannot open database"),
        ("postgresql+psycopg://u:pw-hidden@127.0.0.1:1/db", "cannot open database"),
    ],
)
def test_unopenable_databases_give_a_clear_error(url: str, message: str) -> None:
    with pytest.raises(StoreError, match=message) as info:
        open_store(url)
    assert "pw-hidden" not in str(info.value)
