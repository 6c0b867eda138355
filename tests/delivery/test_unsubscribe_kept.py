"""A one-click unsubscribe answered 200 is never lost, whatever holds the store (issue 26).

While another transaction holds the store (SQLite's write lock, or a PostgreSQL lock on
suppressions), the public app keeps the unsubscribe in an owner-only file under var/ and
answers 200; it is applied once the store is free, and a send meanwhile skips the reader.
Before: the POST waited 30 s for SQLite's lock, answered 503, and nothing was stored.
"""

from __future__ import annotations

import sqlite3
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import select, text

from clubjapon_ops import jobs
from clubjapon_ops.delivery.tokens import TokenSigner
from clubjapon_ops.store import Store
from clubjapon_ops.store.pending import PendingUnsubscribes, pending_path
from clubjapon_ops.store.schema import deliveries, suppressions
from clubjapon_ops.web import create_app
from tests.delivery.conftest import SECRET, SLUG, make_settings, write_contacts

READERS = ["yui@example.com", "jean@example.com", "kenji@example.com"]


@contextmanager
def store_held(store: Store, home: Path) -> Iterator[None]:
    """Another writer holds the store: SQLite's write lock, or on PostgreSQL a lock on
    suppressions that every INSERT waits for (reads still go through)."""
    if store.dialect == "sqlite":
        holder = sqlite3.connect(home / "var" / "clubjapon.sqlite3", isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        return
    with store.engine.connect() as conn, conn.begin():
        conn.execute(text("LOCK TABLE suppressions IN EXCLUSIVE MODE"))
        yield


def suppressed(store: Store) -> set[str]:
    with store.transaction() as conn:
        return set(conn.execute(select(suppressions.c.email)).scalars())


def until(condition: object, what: str) -> None:
    """Wait for the background retry to do its work (an outcome, not a timing)."""
    deadline = time.monotonic() + 120
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_a_one_click_while_the_store_is_held_is_kept_answered_and_applied(
    home: Path, send_store: Store
) -> None:
    write_contacts(home / "contacts.csv", READERS)
    settings = make_settings(home)
    jobs.crm_sync(settings, send_store)
    client = create_app(settings, lambda: send_store).test_client()
    kept = pending_path(home)
    token = TokenSigner(SECRET).make_legacy(SLUG, READERS[0], "ja")
    with store_held(send_store, home):
        answer = client.post(f"/unsubscribe/{token}", data="List-Unsubscribe=One-Click",
                             content_type="application/x-www-form-urlencoded")
        assert answer.status_code == 200  # before: 503, and the unsubscribe lost
        assert READERS[0] not in suppressed(send_store)  # not stored yet: kept on disk
        assert READERS[0] in kept.read_text(encoding="utf-8")
        assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    # The store is free again: the app's retry applies it, and empties the file.
    until(lambda: READERS[0] in suppressed(send_store), "the kept unsubscribe was applied")
    until(lambda: not PendingUnsubscribes(kept).waiting(), "the file was emptied")
    with send_store.transaction() as conn:
        source = conn.execute(select(suppressions.c.source, suppressions.c.reason)
                              .where(suppressions.c.email == READERS[0])).one()
    assert source == ("unsubscribe", f"unsubscribe link, edition {SLUG}")


def test_a_send_skips_a_reader_whose_unsubscribe_waits_in_the_file(
    home: Path, send_store: Store
) -> None:
    write_contacts(home / "contacts.csv", READERS)
    settings = make_settings(home)
    jobs.crm_sync(settings, send_store)
    # Kept by the public app while the store was held, not applied yet (its app is gone).
    PendingUnsubscribes(pending_path(home)).add(READERS[1], "unsubscribe link", "unsubscribe")
    send_store.pending = PendingUnsubscribes(pending_path(home))  # as the CLI wires it
    jobs.send_campaign(settings, send_store, SLUG)
    with send_store.transaction() as conn:
        states = dict(conn.execute(select(deliveries.c.email, deliveries.c.state)
                                   .where(deliveries.c.edition == SLUG)).all())
    assert states[READERS[1]] == "skipped"
    assert states[READERS[0]] == states[READERS[2]] == "sent"
    assert READERS[1] in suppressed(send_store)
    # Drained once by the send, not re-read and re-inserted at each later hand-over.
    assert not PendingUnsubscribes(pending_path(home)).waiting()


def test_a_drain_the_store_refuses_keeps_the_file_for_the_hand_over_to_apply(
    home: Path, send_store: Store
) -> None:
    kept = PendingUnsubscribes(pending_path(home))
    kept.add(READERS[2], "unsubscribe link", "unsubscribe")
    with store_held(send_store, home):
        assert kept.try_drain(send_store, 0.2) is False
        assert kept.waiting()
    assert kept.try_drain(send_store, 5.0) is True
    assert suppressed(send_store) == {READERS[2]} and not kept.waiting()


def test_the_file_keeps_what_came_during_a_drain_and_leaves_out_a_torn_line(
    home: Path, send_store: Store
) -> None:
    path = pending_path(home)
    kept = PendingUnsubscribes(path)
    kept.add("a@example.com", "link", "unsubscribe")
    seen = path.read_bytes()
    kept.add("b@example.com", "link", "unsubscribe")  # arrives while a drain applies `seen`
    kept._forget(seen)
    assert "a@example.com" not in path.read_text() and "b@example.com" in path.read_text()
    with path.open("ab") as torn:  # a crash in the middle of an append: never answered
        torn.write(b'{"email": "c@exa')
    assert kept.drain(send_store, 5.0) == 1
    assert suppressed(send_store) == {"b@example.com"}
    assert not kept.waiting()
