"""Webhook requests built to break the parser or the store: 401 or 400, never 500, nothing kept.

On both engines (the ``send_store`` fixture): PostgreSQL refuses NUL and lone surrogates that
SQLite takes, and SQLite keeps NaN as text that is not JSON.
"""

from __future__ import annotations

import http.client
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from clubjapon_ops.events.signature import TIMESTAMP_HEADER
from clubjapon_ops.store import Store
from clubjapon_ops.store.schema import events
from tests.delivery.test_events_web import BREVO_SECRET, client, sign  # noqa: F401
from tests.fakes.wsgi import served as serve_app

EVENT = ('{"email": "yui@example.com", "event": "delivered", "timestamp": 1764000000, '
         '"sg_event_id": "e1", "ts_event": 1764000000, "x": %s}')
BAD_VALUES = {
    "nan": "NaN",
    "infinity": "Infinity",
    "minus-infinity": "-Infinity",
    "overflowing-float": "1e999",
    "lone-surrogate": '"\\ud800"',
    "lone-surrogate-key": '{"\\udfff": 1}',
    "nul": '"a\\u0000b"',
    "nul-key": '{"a\\u0000": 1}',
    "nested-100": "[" * 100 + "]" * 100,
}
DEEP = b"[" * 100_000 + b"]" * 100_000  # beyond the interpreter's recursion limit


def bodies() -> dict[str, tuple[bytes, bytes]]:
    """Per case, the SendGrid body (an array) and the Brevo body (one event)."""
    cases = {name: (f"[{EVENT % value}]".encode(), (EVENT % value).encode())
             for name, value in BAD_VALUES.items()}
    cases["nested-100000"] = (DEEP, DEEP)
    cases["surrogate-in-email"] = (b'[{"email": "y\\ud800@example.com", "event": "delivered", '
                                   b'"timestamp": 1764000000, "sg_event_id": "e2"}]',
                                   b'{"email": "y\\ud800@example.com", "event": "delivered"}')
    return cases


def count(store: Store) -> int:
    with store.transaction() as conn:
        return int(conn.execute(select(func.count()).select_from(events)).scalar_one())


@pytest.mark.parametrize("provider", ["sendgrid", "brevo"])
@pytest.mark.parametrize("case", sorted(bodies()))
def test_hostile_bodies_get_400_and_nothing_is_stored(
    client: FlaskClient, send_store: Store, provider: str, case: str  # noqa: F811
) -> None:
    sendgrid_body, brevo_body = bodies()[case]
    if provider == "sendgrid":
        answer = client.post("/events/sendgrid", data=sendgrid_body, headers=sign(sendgrid_body))
    else:
        answer = client.post(f"/events/brevo/{BREVO_SECRET}", data=brevo_body,
                             content_type="application/json")
    assert answer.status_code == 400
    assert answer.get_data(as_text=True) == "Bad request\n"
    assert count(send_store) == 0


def test_a_shallow_event_with_unicode_text_is_still_taken(
    client: FlaskClient, send_store: Store  # noqa: F811
) -> None:
    body = (EVENT % '{"a": ["é", "日本", "\\ud83d\\ude00", 1.5, null, true]}').encode()
    answer = client.post(f"/events/brevo/{BREVO_SECRET}", data=body,
                         content_type="application/json")
    assert answer.status_code == 200
    assert count(send_store) == 1


@pytest.mark.parametrize("stamp", ["²", "1764000000²", "¹⁷⁶⁴"])
def test_a_timestamp_of_unicode_digits_is_refused_before_the_signature(
    client: FlaskClient, send_store: Store, stamp: str  # noqa: F811
) -> None:
    body = f"[{EVENT % 1}]".encode()
    headers = {**sign(body), TIMESTAMP_HEADER: stamp}
    answer = client.post("/events/sendgrid", data=body, headers=headers)
    assert answer.status_code == 401
    assert count(send_store) == 0


@pytest.fixture
def served(client: FlaskClient) -> Iterator[int]:  # noqa: F811
    """The same app behind waitress on 127.0.0.1, as `web` serves it."""
    app: Flask = client.application
    with serve_app(app) as url:
        yield int(url.rsplit(":", 1)[1])


def post(port: int, path: str, body: bytes, headers: dict[str, str]) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        # http.client sends header values as latin-1: '²' goes as the byte 0xB2, which the
        # WSGI server hands back as '²'.
        conn.request("POST", path, body=body, headers=headers)
        return conn.getresponse().status
    finally:
        conn.close()


def test_over_real_http_a_unicode_timestamp_is_401_and_a_deep_body_400(
    served: int, send_store: Store
) -> None:
    body = f"[{EVENT % 1}]".encode()
    assert post(served, "/events/sendgrid", body, {**sign(body), TIMESTAMP_HEADER: "²"}) == 401
    assert post(served, "/events/sendgrid", DEEP, sign(DEEP)) == 400
    assert post(served, f"/events/brevo/{BREVO_SECRET}", DEEP,
                {"Content-Type": "application/json"}) == 400
    assert count(send_store) == 0



@pytest.mark.parametrize("authorization", ["Basic ²²²", "Basic 不", "Basic \x00"])
def test_a_basic_auth_header_of_unicode_is_refused_with_401(
    client: FlaskClient, send_store: Store, authorization: str  # noqa: F811
) -> None:
    body = (EVENT % 1).encode()
    answer = client.post("/events/brevo", data=body, content_type="application/json",
                         headers={"Authorization": authorization})
    assert answer.status_code == 401
    assert count(send_store) == 0
