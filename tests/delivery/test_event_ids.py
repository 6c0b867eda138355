"""SendGrid events are one per sg_event_id, whether the copies come in one POST or in several.

SendGrid's Event Webhook reference documents ``sg_event_id`` as "a unique ID to this event
that you can use for deduplication purposes", and warns that an event may be posted more
than once. Two events with one sg_event_id are one event: the first copy stored is the one
kept, in one POST as across POSTs (a replay changes nothing).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from clubjapon_ops.events.sendgrid import parse_body
from clubjapon_ops.store import Store
from clubjapon_ops.store.events import store_events
from clubjapon_ops.store.schema import events


def _ours(edition: str, email: str) -> str:
    return "<none>"


def _event(kind: str, event_id: str | None, at: int = 1_764_000_000) -> dict[str, Any]:
    raw = {"email": "yui@example.com", "event": kind, "timestamp": at,
           "sg_message_id": "W3kq9xZkQ2-sgbatch.filterdrecv-1.0"}
    return raw if event_id is None else {**raw, "sg_event_id": event_id}


def _stored(store: Store) -> list[tuple[str, str]]:
    with store.transaction() as conn:
        return [(r.event_key, r.provider_event) for r in conn.execute(
            select(events.c.event_key, events.c.provider_event).order_by(events.c.id))]


def test_one_sg_event_id_twice_in_one_post_keeps_the_first(store: Store) -> None:
    body = [_event("delivered", "ZHJvcC0x"), _event("open", "ZHJvcC0x", at=1_764_000_060)]
    with store.transaction() as conn:
        assert store_events(conn, parse_body(body), _ours) == 1
    assert _stored(store) == [("id:ZHJvcC0x", "delivered")]


def test_one_post_keeps_what_two_posts_would(store: Store) -> None:
    first, again = _event("delivered", "ZHJvcC0y"), _event("open", "ZHJvcC0y", at=1_764_000_060)
    with store.transaction() as conn:
        store_events(conn, parse_body([first]), _ours)
        assert store_events(conn, parse_body([again]), _ours) == 0
    assert _stored(store) == [("id:ZHJvcC0y", "delivered")]


def test_distinct_ids_are_distinct_events_even_when_alike(store: Store) -> None:
    # Two opens of one message at the same second: SendGrid gives each its own id.
    body = [_event("open", "b3Blbi0x"), _event("open", "b3Blbi0y")]
    with store.transaction() as conn:
        assert store_events(conn, parse_body(body), _ours) == 2
    assert [key for key, _ in _stored(store)] == ["id:b3Blbi0x", "id:b3Blbi0y"]


def test_without_an_id_only_identical_copies_are_one(store: Store) -> None:
    body = [_event("delivered", None), _event("delivered", None),
            _event("open", None, at=1_764_000_060)]
    with store.transaction() as conn:
        assert store_events(conn, parse_body(body), _ours) == 2
    assert [kind for _, kind in _stored(store)] == ["delivered", "open"]
