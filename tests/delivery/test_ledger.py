from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import event, select, update

from clubjapon_ops.contacts import Contact
from clubjapon_ops.store import Store
from clubjapon_ops.store import deliveries as ledger
from clubjapon_ops.store.contacts import add_suppression, upsert_contacts
from clubjapon_ops.store.schema import contacts, deliveries

E = "2025-11-04-lille"
LEASE = timedelta(minutes=5)


def seed(store: Store, n: int = 6) -> None:
    people = [Contact(email=f"p{i}@example.com", source="csv", language="fr") for i in range(n)]
    people.append(Contact(email="out@example.com", source="csv", opted_out=True))
    with store.transaction() as conn:
        upsert_contacts(conn, people)
        add_suppression(conn, "p0@example.com", "clicked unsubscribe", "unsubscribe")
        conn.execute(update(contacts).where(contacts.c.email == "p1@example.com")
                     .values(archived_at=datetime(2025, 1, 1, tzinfo=UTC)))


def states(store: Store) -> dict[str, str]:
    with store.transaction() as conn:
        return dict(conn.execute(select(deliveries.c.email, deliveries.c.state)).all())


def test_plan_takes_active_unsuppressed_contacts_once(send_store: Store) -> None:
    seed(send_store)
    with send_store.transaction() as conn:
        summary = ledger.plan_summary(conn, E)
        assert ledger.plan(conn, E) == 4
        assert ledger.plan(conn, E) == 0
    assert summary["to_send"] == 4
    assert summary["excluded"]["opted out"] == 1
    assert summary["excluded"]["suppressed"] == 1
    assert summary["excluded"]["archived"] == 1
    assert set(states(send_store)) == {"p2@example.com", "p3@example.com", "p4@example.com",
                                       "p5@example.com"}


def test_claim_then_record_moves_rows_only_as_told(send_store: Store) -> None:
    seed(send_store)
    with send_store.transaction() as conn:
        ledger.plan(conn, E)
        first = ledger.claim(conn, E, "w1", 3, LEASE)
    assert len(first) == 3 and set(states(send_store).values()) == {"sending", "pending"}
    with send_store.transaction() as conn:
        ledger.record(conn, [
            ledger.Outcome(first[0].id, ledger.SENT, "sent", "id-1"),
            ledger.Outcome(first[1].id, ledger.FAILED, "rejected", error="550 no such user"),
            ledger.Outcome(first[2].id, ledger.RETRY, "retry", error="451 later",
                           retry_at=datetime.now(UTC) + timedelta(minutes=5)),
        ])
        # The retry row is not due yet: only the last pending row is claimable.
        second = ledger.claim(conn, E, "w1", 10, LEASE)
    assert [c.contact.email for c in second] == ["p5@example.com"]
    counts = states(send_store)
    assert sorted(counts.values()) == ["failed", "retry", "sending", "sent"]


def test_an_unsubscribe_after_planning_skips_the_row(send_store: Store) -> None:
    seed(send_store)
    with send_store.transaction() as conn:
        ledger.plan(conn, E)
        add_suppression(conn, "p3@example.com", "clicked unsubscribe", "unsubscribe")
        claimed = ledger.claim(conn, E, "w1", 10, LEASE)
    assert "p3@example.com" not in {c.contact.email for c in claimed}
    assert states(send_store)["p3@example.com"] == "skipped"


def test_recover_makes_rows_of_a_dead_worker_unknown_or_retry_under_a_valid_key(
    send_store: Store,
) -> None:
    seed(send_store)
    now = datetime.now(UTC)
    with send_store.transaction() as conn:
        ledger.plan(conn, E)
        claimed = ledger.claim(conn, E, "dead:1:x", 10, LEASE)
        ledger.set_batch_key(conn, [claimed[0].id], "key-valid", now + timedelta(minutes=20))
        ledger.set_batch_key(conn, [claimed[1].id], "key-expired", now - timedelta(minutes=1))
        assert ledger.recover(conn, E, lambda who: False) == {}  # alive and leased: untouched
        settled = ledger.recover(conn, E, lambda who: who == "dead:1:x")
    assert settled == {"retry": 1, "unknown": 3}
    with send_store.transaction() as conn:
        again = ledger.claim(conn, E, "w2", 10, LEASE)
        # The keyed batch comes back alone, with its key, to be sent exactly as before.
        assert [(c.id, c.batch_key) for c in again] == [(claimed[0].id, "key-valid")]
        assert ledger.resend_unknown(conn, E) == 3
    assert sorted(states(send_store).values()) == ["pending", "pending", "pending", "sending"]


def test_an_expired_lease_is_recovered_whoever_held_it(send_store: Store) -> None:
    seed(send_store)
    with send_store.transaction() as conn:
        ledger.plan(conn, E)
        ledger.claim(conn, E, "other-host:1:x", 10, LEASE)
        later = datetime.now(UTC) + LEASE + timedelta(seconds=1)
        assert ledger.recover(conn, E, lambda who: False, now=later) == {"unknown": 4}


def test_a_keyed_batch_that_failed_waits_for_its_retry_time(send_store: Store) -> None:
    seed(send_store)
    now = datetime.now(UTC)
    with send_store.transaction() as conn:
        ledger.plan(conn, E)
        claimed = ledger.claim(conn, E, "w1", 2, LEASE)
        ledger.set_batch_key(conn, [c.id for c in claimed], "key-1", now + timedelta(minutes=25))
        ledger.record(conn, [ledger.Outcome(c.id, ledger.RETRY, "retry", error="HTTP 503",
                                            retry_at=now + timedelta(minutes=5))
                             for c in claimed])
        # Not due: the other rows go first, and the keyed rows are left alone.
        others = ledger.claim(conn, E, "w1", 10, LEASE)
        assert {c.id for c in others}.isdisjoint(c.id for c in claimed) and len(others) == 2
        due = ledger.claim(conn, E, "w1", 10, LEASE, now=now + timedelta(minutes=6))
    assert [(c.id, c.batch_key) for c in due] == [(c.id, "key-1") for c in claimed]


def test_a_claimed_row_settled_by_another_sender_is_not_handed_over(send_store: Store) -> None:
    seed(send_store)
    with send_store.transaction() as conn:
        ledger.plan(conn, E)
        slow = ledger.claim(conn, E, "slow:1:x", 2, LEASE, state=ledger.CLAIMED)
        # The slow worker's lease ran out: another sender gives its rows back to the queue.
        later = datetime.now(UTC) + LEASE + timedelta(seconds=1)
        assert ledger.recover(conn, E, lambda who: False, now=later) == {"released": 2}
        taken = ledger.claim(conn, E, "fast:2:y", 10, LEASE, state=ledger.CLAIMED)
        assert {c.id for c in slow} <= {c.id for c in taken}
        hot = ledger.LaneLedger(conn)
        assert not hot.mark_sending(slow[0].id, "slow:1:x")  # no longer its row
        assert hot.mark_sending(slow[0].id, "fast:2:y")


def test_a_claimed_keyed_batch_whose_key_lapsed_becomes_unknown_not_pending(
    send_store: Store,
) -> None:
    """A keyed batch that went out once, was claimed again to be resent under its key and
    was never handed over (its sender died), must not go back to 'pending' once the key has
    lapsed: claimed again, it would go out under a new key and could be delivered twice."""
    seed(send_store)
    now = datetime.now(UTC)
    with send_store.transaction() as conn:
        ledger.plan(conn, E)
        first = ledger.claim(conn, E, "w1", 2, LEASE)
        ledger.set_batch_key(conn, [c.id for c in first], "key-1", now + timedelta(minutes=5))
        ledger.record(conn, [ledger.Outcome(c.id, ledger.RETRY, "retry", error="HTTP 503",
                                            retry_at=now) for c in first])
        again = ledger.claim(conn, E, "dead:1:x", 10, LEASE, state=ledger.CLAIMED)
        assert [(c.id, c.batch_key) for c in again] == [(c.id, "key-1") for c in first]
        later = now + timedelta(minutes=6)  # the key lapsed while nobody held the batch
        assert ledger.recover(conn, E, lambda who: who == "dead:1:x", now=later) == {
            "unknown": 2}
        rest = ledger.claim(conn, E, "w2", 10, LEASE, now=later)
    assert {c.id for c in rest}.isdisjoint(c.id for c in first)
    with send_store.transaction() as conn:
        errors = conn.execute(select(deliveries.c.last_error).where(
            deliveries.c.id.in_([c.id for c in first]))).scalars().all()
    assert errors == [ledger.KEY_LAPSED] * 2


def test_claim_takes_due_retries_first_then_pending_rows_in_order(send_store: Store) -> None:
    seed(send_store, n=8)
    with send_store.transaction() as conn:
        ledger.plan(conn, E)
        ids = sorted(conn.execute(select(deliveries.c.id)).scalars())
        conn.execute(update(deliveries).where(deliveries.c.id == ids[3])
                     .values(state=ledger.RETRY, next_attempt_at=datetime(2025, 1, 1, tzinfo=UTC)))
        conn.execute(update(deliveries).where(deliveries.c.id == ids[4])
                     .values(state=ledger.RETRY,
                             next_attempt_at=datetime.now(UTC) + timedelta(hours=1)))
        claimed = ledger.claim(conn, E, "w1", 3, LEASE)
    assert [c.id for c in claimed] == [ids[3], ids[0], ids[1]]


def test_claim_reads_only_the_rows_it_takes(send_store: Store) -> None:
    """A claim walks the (edition, state) index in id order: it never sorts the whole
    sendable audience to take a batch from it (quadratic over a campaign)."""
    if send_store.dialect != "sqlite":
        return
    statements: list[tuple[str, object]] = []

    def keep(conn: object, cursor: object, statement: str, parameters: object,
             context: object, executemany: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append((statement, parameters))

    seed(send_store)
    event.listen(send_store.engine, "before_cursor_execute", keep)
    try:
        with send_store.transaction() as conn:
            ledger.plan(conn, E)
            statements.clear()
            assert ledger.claim(conn, E, "w1", 2, LEASE)
            plans = [" ".join(str(row[-1]) for row in conn.exec_driver_sql(
                f"EXPLAIN QUERY PLAN {sql}", params).all())  # type: ignore[arg-type]
                for sql, params in statements]
    finally:
        event.remove(send_store.engine, "before_cursor_execute", keep)
    assert any("deliveries" in sql and "JOIN" in sql for sql, _ in statements)
    assert plans and not [p for p in plans if "TEMP B-TREE" in p], plans
    assert any("USING INDEX ix_deliveries_pending" in p for p in plans), plans


def test_the_lane_ledger_writes_times_as_sqlalchemy_does(send_store: Store) -> None:
    seed(send_store)
    due = datetime(2030, 1, 1, 9, 0, tzinfo=UTC)  # a whole second: no microseconds to show
    with send_store.transaction() as conn:
        ledger.plan(conn, E)
        row = ledger.claim(conn, E, "w1", 1, LEASE)[0]
    with send_store.engine.connect() as conn:
        hot = ledger.LaneLedger(conn)
        with hot.transaction():
            hot.record([ledger.Outcome(row.id, ledger.RETRY, "retry", retry_at=due)])
    with send_store.transaction() as conn:
        stored = conn.execute(select(deliveries.c.next_attempt_at)
                              .where(deliveries.c.id == row.id)).scalar_one()
        raw = conn.exec_driver_sql(
            f"SELECT next_attempt_at, created_at FROM deliveries WHERE id = {row.id}").one()
    assert stored == due
    if send_store.dialect == "sqlite":
        # The same text form as the rows SQLAlchemy wrote, so text comparisons order right.
        assert raw[0] == "2030-01-01 09:00:00.000000" and len(raw[1]) == len(raw[0]), raw


def test_claim_skips_rows_another_sender_took_after_its_select(send_store: Store) -> None:
    """The claim's UPDATE checks the state its SELECT saw: a row another sender took in
    between (here: handed over by 'other', already 'sending') is neither moved nor returned."""
    seed(send_store)
    with send_store.transaction() as conn:
        ledger.plan(conn, E)
        ids = sorted(conn.execute(select(deliveries.c.id)).scalars())
    taken = ids[1]

    def take_first(conn: object, cursor: Any, statement: str, parameters: object,
                   context: object, executemany: bool) -> None:
        if statement.lstrip().upper().startswith("UPDATE DELIVERIES") and "attempts" in statement:
            # Another sender's claim and hand-over, between this claim's SELECT and UPDATE
            # (on the same DBAPI connection, so PostgreSQL's row locks do not block it).
            cursor.connection.cursor().execute(
                f"UPDATE deliveries SET state = 'sending', claimed_by = 'other:1:x', "
                f"attempts = 1 WHERE id = {taken}")

    event.listen(send_store.engine, "before_cursor_execute", take_first)
    try:
        with send_store.transaction() as conn:
            claimed = ledger.claim(conn, E, "w1", 10, LEASE, state=ledger.CLAIMED)
    finally:
        event.remove(send_store.engine, "before_cursor_execute", take_first)
    assert [c.id for c in claimed] == [i for i in ids if i != taken]
    with send_store.transaction() as conn:
        row = conn.execute(select(deliveries.c.state, deliveries.c.claimed_by,
                                  deliveries.c.attempts)
                           .where(deliveries.c.id == taken)).one()
    assert tuple(row) == ("sending", "other:1:x", 1)  # still the other sender's


def test_recover_leaves_a_row_its_slow_holder_handed_over_meanwhile(send_store: Store) -> None:
    """recover() settles a row only if it is still as its SELECT saw it: a holder whose lease
    ran out but who is alive may hand the row over in between, and then it is that holder's."""
    seed(send_store)
    with send_store.transaction() as conn:
        ledger.plan(conn, E)
        slow = ledger.claim(conn, E, "slow:1:x", 4, LEASE, state=ledger.CLAIMED)
    moved = slow[0].id

    def hand_over_first(conn: object, cursor: Any, statement: str, parameters: object,
                        context: object, executemany: bool) -> None:
        if statement.lstrip().upper().startswith("UPDATE DELIVERIES"):
            cursor.connection.cursor().execute(
                f"UPDATE deliveries SET state = 'sending' WHERE id = {moved}")

    later = datetime.now(UTC) + LEASE + timedelta(seconds=1)
    event.listen(send_store.engine, "before_cursor_execute", hand_over_first)
    try:
        with send_store.transaction() as conn:
            settled = ledger.recover(conn, E, lambda who: False, now=later)
    finally:
        event.remove(send_store.engine, "before_cursor_execute", hand_over_first)
    assert settled == {"released": 3}
    with send_store.transaction() as conn:
        row = conn.execute(select(deliveries.c.state, deliveries.c.claimed_by)
                           .where(deliveries.c.id == moved)).one()
    assert tuple(row) == ("sending", "slow:1:x")  # not put back in the queue to go twice


def test_a_keyed_batch_past_its_resend_time_becomes_unknown_not_sent_under_a_new_key(
    send_store: Store,
) -> None:
    seed(send_store)
    now = datetime.now(UTC)
    with send_store.transaction() as conn:
        ledger.plan(conn, E)
        first, second = ledger.claim(conn, E, "w1", 2, LEASE)
        ledger.set_batch_key(conn, [first.id], "key-lapsed", now - timedelta(seconds=1))
        ledger.set_batch_key(conn, [second.id], "key-valid", now + timedelta(minutes=5))
        conn.execute(update(deliveries).where(deliveries.c.id.in_([first.id, second.id]))
                     .values(state="retry", claimed_by=None, next_attempt_at=None))
        again = ledger.claim(conn, E, "w2", 10, LEASE)
    # The valid key's batch goes again, alone and under its key; the lapsed one waits for
    # the operator: the provider may have taken it, and a new key would deliver it twice.
    assert [(c.id, c.batch_key) for c in again] == [(second.id, "key-valid")]
    with send_store.transaction() as conn:
        row = conn.execute(select(deliveries.c.state, deliveries.c.last_error)
                           .where(deliveries.c.id == first.id)).one()
    assert row.state == "unknown" and "idempotency key lapsed" in row.last_error
