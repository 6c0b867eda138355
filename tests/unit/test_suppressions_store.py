"""Suppression management in the store, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select, update

from clubjapon_ops.store import Store
from clubjapon_ops.store import suppressions as s
from clubjapon_ops.store.contacts import add_suppression
from clubjapon_ops.store.schema import suppression_removals, suppressions


def test_list_lift_and_import(store: Store) -> None:
    with store.transaction() as conn:
        add_suppression(conn, "a@example.com", "phone call", "unsubscribe")
        add_suppression(conn, "a@example.com", "550 no such user", "bounce")
        add_suppression(conn, "b@example.com", "spam report", "complaint")
        conn.execute(update(suppressions).where(suppressions.c.email == "b@example.com")
                     .values(created_at=datetime(2025, 11, 6, tzinfo=UTC)))
    with store.transaction() as conn:
        assert [x.email for x in s.list_suppressions(conn)] == [
            "b@example.com", "a@example.com", "a@example.com"]
        assert [x.source for x in s.list_suppressions(conn, source="complaint")] == ["complaint"]
        since = s.list_suppressions(conn, since=datetime(2026, 1, 1, tzinfo=UTC))
        assert {x.email for x in since} == {"a@example.com"}
        assert s.sources_of(conn) == ["bounce", "complaint", "unsubscribe"]
        removal = s.lift(conn, "a@example.com", "came back")
        assert set(removal.sources) == {"bounce", "unsubscribe"}
        assert s.lift(conn, "nobody@example.com", "typo").sources == ()
        recorded = conn.execute(select(suppression_removals.c.email, suppression_removals.c.why,
                                       suppression_removals.c.reasons)).all()
        assert [(r.email, r.why) for r in recorded] == [("a@example.com", "came back")]
        assert "bounce: 550 no such user" in recorded[0].reasons
        assert s.import_suppressions(conn, [("b@example.com", "old list"),
                                            ("c@example.com", "old list")]) == (2, 0)
        # Suppressed already for another reason: the import's word is kept beside it, so
        # lifting the other source alone never lifts the import.
        assert [(x.email, x.source) for x in s.suppressions_of(conn, "b@example.com")] == [
            ("b@example.com", "complaint"), ("b@example.com", "import")]
        assert s.import_suppressions(conn, [("c@example.com", "again"),
                                            ("d@example.com", "new"),
                                            ("d@example.com", "twice")]) == (1, 2)
        assert [x.reason for x in s.suppressions_of(conn, "c@example.com")] == ["old list"]


def test_every_pending_event_is_processed_whatever_the_batch_size(store: Store) -> None:
    # A batch of the bounce mailbox can store more events than one call took (5,000):
    # the rest waited for the next run, its addresses still receiving mail meanwhile.
    from clubjapon_ops.events.types import Event
    from clubjapon_ops.store.events import process_pending, store_events

    now = datetime.now(UTC)
    batch = [Event(provider="mailbox", event_key=f"k{i}", email=f"r{i}@example.com",
                   type="hard_bounce", provider_event="dsn-hard", occurred_at=now,
                   message_id=None, reason="5.1.1", raw={}) for i in range(7)]
    with store.transaction() as conn:
        assert store_events(conn, batch, lambda edition, email: "") == 7
        counts = process_pending(conn, soft_bounce_limit=3, limit=3)
        suppressed = set(conn.execute(select(suppressions.c.email)).scalars())
    assert counts["processed"] == 7 and counts["suppressed_bounce"] == 7
    assert suppressed == {f"r{i}@example.com" for i in range(7)}
