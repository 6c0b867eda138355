"""Provider webhooks against a real SQLite store: SendGrid signed with a key made here, Brevo
with its secret; replays, reordering, forgeries, malformed and oversized bodies."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from flask.testing import FlaskClient
from sqlalchemy import func, select, update

from clubjapon_ops import jobs
from clubjapon_ops.delivery.message import message_id
from clubjapon_ops.errors import ConfigError
from clubjapon_ops.store import Store
from clubjapon_ops.store import deliveries as ledger
from clubjapon_ops.store.schema import deliveries, events, suppressions
from clubjapon_ops.web import create_app
from tests.delivery.conftest import SLUG, make_settings, write_contacts

BREVO_SECRET = "brevo-hook-secret-6f1c2a9e"
EMAILS = ["yui@example.com", "jean@example.com", "kenji@example.com", "anna@example.com"]
X_MESSAGE_ID = "W3kq9xZkQ2-sgbatch"  # SendGrid's X-Message-Id: one per request, shared


def keypair() -> tuple[ec.EllipticCurvePrivateKey, str]:
    private = ec.generate_private_key(ec.SECP256R1())
    der = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, base64.b64encode(der).decode()


PRIVATE, PUBLIC = keypair()


def sign(body: bytes, key: ec.EllipticCurvePrivateKey = PRIVATE,
         at: float | None = None) -> dict[str, str]:
    stamp = str(int(time.time() if at is None else at))
    signature = key.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return {"X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
            "X-Twilio-Email-Event-Webhook-Timestamp": stamp,
            "Content-Type": "application/json"}


@pytest.fixture
def client(home: Path, send_store: Store) -> FlaskClient:
    """Four contacts synced and 'sent': SendGrid ids for two, Brevo ids for two."""
    write_contacts(home / "contacts.csv", EMAILS)
    settings = make_settings(home, BREVO_WEBHOOK_SECRET=BREVO_SECRET,
                             SENDGRID_WEBHOOK_PUBLIC_KEY=PUBLIC)
    jobs.crm_sync(settings, send_store)
    with send_store.transaction() as conn:
        ledger.plan(conn, SLUG)
        for email in EMAILS[:2]:
            conn.execute(update(deliveries).where(deliveries.c.email == email)
                         .values(state="sent", provider_message_id=X_MESSAGE_ID))
        for email in EMAILS[2:]:
            conn.execute(update(deliveries).where(deliveries.c.email == email)
                         .values(state="sent", provider_message_id=f"<2026.{email}@smtp-relay>"))
    return create_app(settings, lambda: send_store).test_client()


def sg_event(email: str, event: str, n: int, at: int = 1_764_000_000,
             **extra: Any) -> dict[str, Any]:
    return {"email": email, "event": event, "timestamp": at, "sg_event_id": f"evt-{n}",
            "sg_message_id": f"{X_MESSAGE_ID}.filterdrecv-{n}.0", **extra}


def post_sendgrid(client: FlaskClient, payload: Any, **sign_kw: Any) -> Any:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return client.post("/events/sendgrid", data=body, headers=sign(body, **sign_kw))


def stored(store: Store) -> list[tuple[Any, ...]]:
    with store.transaction() as conn:
        return [tuple(r) for r in conn.execute(
            select(events.c.email, events.c.type, events.c.delivery_id).order_by(events.c.id))]


def suppressed(store: Store) -> set[tuple[str, str]]:
    with store.transaction() as conn:
        return {(r.email, r.source) for r in conn.execute(select(suppressions))}


def delivery_id(store: Store, email: str) -> int:
    with store.transaction() as conn:
        return int(conn.execute(select(deliveries.c.id).where(deliveries.c.email == email))
                   .scalar_one())


def test_signed_sendgrid_events_are_stored_matched_and_processed(
    client: FlaskClient, send_store: Store
) -> None:
    payload = [
        sg_event("yui@example.com", "bounce", 1, type="bounce", reason="550 5.1.1 no such user"),
        sg_event("jean@example.com", "delivered", 2),
        sg_event("jean@example.com", "open", 3),
        sg_event("jean@example.com", "spamreport", 4),
    ]
    answer = post_sendgrid(client, payload)
    assert answer.status_code == 200
    yui = delivery_id(send_store, "yui@example.com")
    jean = delivery_id(send_store, "jean@example.com")
    assert stored(send_store) == [("yui@example.com", "hard_bounce", yui),
                                  ("jean@example.com", "delivered", jean),
                                  ("jean@example.com", "open", jean),
                                  ("jean@example.com", "complaint", jean)]
    assert suppressed(send_store) == {("yui@example.com", "bounce"),
                                      ("jean@example.com", "complaint")}
    with send_store.transaction() as conn:
        assert conn.execute(select(func.count()).where(events.c.processed_at.is_(None))
                            ).scalar_one() == 0


def test_a_replayed_webhook_changes_nothing(client: FlaskClient, send_store: Store) -> None:
    payload = [sg_event("yui@example.com", "bounce", 1, type="bounce"),
               sg_event("jean@example.com", "unsubscribe", 2)]
    assert post_sendgrid(client, payload).status_code == 200
    before = (stored(send_store), suppressed(send_store))
    assert post_sendgrid(client, payload).status_code == 200  # re-signed later: a retry
    assert post_sendgrid(client, list(reversed(payload))).status_code == 200
    assert (stored(send_store), suppressed(send_store)) == before
    assert len(before[0]) == 2


def test_delivery_id_echoed_in_custom_args_must_belong_to_the_recipient(
    client: FlaskClient, send_store: Store
) -> None:
    other = delivery_id(send_store, "kenji@example.com")
    payload = [{"email": "yui@example.com", "event": "delivered", "timestamp": 1_764_000_000,
                "sg_event_id": "x1", "delivery_id": str(other)}]
    assert post_sendgrid(client, payload).status_code == 200
    assert stored(send_store) == [("yui@example.com", "delivered", None)]


@pytest.mark.parametrize("case", ["other key", "tampered body", "no headers", "old",
                                  "future", "garbage signature"])
def test_forged_or_stale_sendgrid_requests_are_refused(
    client: FlaskClient, send_store: Store, case: str
) -> None:
    body = json.dumps([sg_event("yui@example.com", "bounce", 1, type="bounce")]).encode()
    headers = sign(body)
    if case == "other key":
        headers = sign(body, key=keypair()[0])
    elif case == "tampered body":
        body = body.replace(b"yui@", b"jean@")
    elif case == "no headers":
        headers = {"Content-Type": "application/json"}
    elif case == "old":
        headers = sign(body, at=time.time() - 3600)
    elif case == "future":
        headers = sign(body, at=time.time() + 3600)
    else:
        headers["X-Twilio-Email-Event-Webhook-Signature"] = "not base64!"
    answer = client.post("/events/sendgrid", data=body, headers=headers)
    assert answer.status_code == 401
    assert stored(send_store) == [] and suppressed(send_store) == set()


@pytest.mark.parametrize("body", [
    b"not json", b'{"email": "yui@example.com", "event": "bounce"}', b"[]", b"[1]",
    json.dumps([sg_event("yui@example.com", "bounce", 1), {"event": "bounce", "timestamp": 1}]
               ).encode(),
    json.dumps([{"email": "yui@example.com", "event": "bounce"}]).encode(),
], ids=["not-json", "object", "empty", "not-objects", "one-without-email", "no-timestamp"])
def test_malformed_signed_bodies_get_400_and_store_nothing(
    client: FlaskClient, send_store: Store, body: bytes
) -> None:
    answer = post_sendgrid(client, body)
    assert answer.status_code == 400
    assert stored(send_store) == [] and suppressed(send_store) == set()


def test_oversized_bodies_are_refused_before_anything_is_stored(
    client: FlaskClient, send_store: Store
) -> None:
    padding = "x" * (1024 * 1024)
    payload = [sg_event("yui@example.com", "bounce", 1, type="bounce", pad=padding)]
    assert post_sendgrid(client, payload).status_code == 413
    brevo = client.post(f"/events/brevo/{BREVO_SECRET}",
                        json={"event": "hard_bounce", "email": "yui@example.com", "p": padding})
    assert brevo.status_code == 413
    assert stored(send_store) == [] and suppressed(send_store) == set()


def test_soft_bounces_suppress_only_after_three_messages_in_a_row_in_event_time(
    client: FlaskClient, send_store: Store
) -> None:
    def event(kind: str, n: int, at: int) -> dict[str, Any]:
        # Brevo-shaped soft bounces and deliveries of four different messages.
        return {"event": kind, "email": "anna@example.com", "message-id": f"<m{n}@relay>",
                "ts_event": at}

    def post(*items: dict[str, Any]) -> None:
        for item in items:
            answer = client.post(f"/events/brevo/{BREVO_SECRET}", json=item)
            assert answer.status_code == 200

    # Arrival order differs from event time: the delivery of m3 comes first, then m4's
    # bounce, then the older bounces of m2 and m1. In event time only m4 bounced last.
    post(event("delivered", 3, 300), event("soft_bounce", 4, 400),
         event("soft_bounce", 2, 200), event("soft_bounce", 1, 100))
    assert suppressed(send_store) == set()
    # Several soft bounces of one message (the provider retrying it) count once.
    post(event("soft_bounce", 5, 500), event("soft_bounce", 5, 510))
    assert suppressed(send_store) == set()
    post(event("soft_bounce", 6, 600))
    assert suppressed(send_store) == {("anna@example.com", "bounce")}


def test_brevo_with_the_secret_in_the_url_or_basic_auth(
    client: FlaskClient, send_store: Store
) -> None:
    kenji = {"event": "hard_bounce", "email": "Kenji@Example.com", "reason": "user unknown",
             "message-id": "<2026.kenji@example.com@smtp-relay>", "ts_event": 1_764_000_000}
    anna = {"event": "unsubscribed", "email": "anna@example.com",
            "message-id": "<2026.anna@example.com@smtp-relay>", "ts_event": 1_764_000_001}
    assert client.post(f"/events/brevo/{BREVO_SECRET}", json=kenji).status_code == 200
    basic = base64.b64encode(f"brevo:{BREVO_SECRET}".encode()).decode()
    answer = client.post("/events/brevo", json=anna, headers={"Authorization": f"Basic {basic}"})
    assert answer.status_code == 200
    assert stored(send_store) == [
        ("kenji@example.com", "hard_bounce", delivery_id(send_store, "kenji@example.com")),
        ("anna@example.com", "unsubscribe", delivery_id(send_store, "anna@example.com"))]
    assert suppressed(send_store) == {("kenji@example.com", "bounce"),
                                      ("anna@example.com", "unsubscribe")}
    # The same events again (Brevo retries): nothing more.
    assert client.post(f"/events/brevo/{BREVO_SECRET}", json=kenji).status_code == 200
    assert len(stored(send_store)) == 2


@pytest.mark.parametrize("scheme", ["Bearer", "bearer"])
def test_brevo_with_the_secret_as_a_bearer_token(
    client: FlaskClient, send_store: Store, scheme: str
) -> None:
    # Brevo's webhook settings offer "auth": {"type": "bearer", "token": ...}
    # (developers.brevo.com/docs/username-and-password-authentication).
    anna = {"event": "unsubscribed", "email": "anna@example.com",
            "message-id": "<2026.anna@example.com@smtp-relay>", "ts_event": 1_764_000_001}
    answer = client.post("/events/brevo", json=anna,
                         headers={"Authorization": f"{scheme} {BREVO_SECRET}"})
    assert answer.status_code == 200
    assert suppressed(send_store) == {("anna@example.com", "unsubscribe")}


@pytest.mark.parametrize("how", ["no secret", "wrong token", "wrong password", "wrong bearer",
                                 "empty bearer", "bearer as the user name"])
def test_brevo_without_the_secret_is_refused_and_nothing_echoed(
    client: FlaskClient, send_store: Store, how: str
) -> None:
    event = {"event": "hard_bounce", "email": "yui@example.com"}
    if how == "no secret":
        answer = client.post("/events/brevo", json=event)
    elif how == "wrong token":
        answer = client.post(f"/events/brevo/{BREVO_SECRET}x", json=event)
    elif how == "wrong password":
        basic = base64.b64encode(f"brevo:{BREVO_SECRET[:-1]}".encode()).decode()
        answer = client.post("/events/brevo", json=event,
                             headers={"Authorization": f"Basic {basic}"})
    else:
        value = {"wrong bearer": f"Bearer {BREVO_SECRET[:-1]}", "empty bearer": "Bearer ",
                 "bearer as the user name":
                 "Basic " + base64.b64encode(f"{BREVO_SECRET}:x".encode()).decode()}[how]
        answer = client.post("/events/brevo", json=event, headers={"Authorization": value})
    assert answer.status_code == 401
    assert BREVO_SECRET[:8] not in answer.get_data(as_text=True)
    assert stored(send_store) == []


def test_endpoints_refuse_everything_when_not_configured(
    home: Path, send_store: Store
) -> None:
    app = create_app(make_settings(home), lambda: send_store).test_client()
    body = json.dumps([sg_event("yui@example.com", "bounce", 1)]).encode()
    assert app.post("/events/sendgrid", data=body, headers=sign(body)).status_code == 401
    assert app.post("/events/brevo/", json={}).status_code in (401, 404)
    assert app.post("/events/brevo", json={"event": "x", "email": "a@b.c"}).status_code == 401


def test_events_of_smtp_sends_match_by_our_message_id(
    client: FlaskClient, send_store: Store, home: Path
) -> None:
    ours = message_id(SLUG, "kenji@example.com", "example.org")
    event = {"event": "delivered", "email": "kenji@example.com", "message-id": ours,
             "ts_event": 1_764_000_000}
    assert client.post(f"/events/brevo/{BREVO_SECRET}", json=event).status_code == 200
    assert stored(send_store) == [("kenji@example.com", "delivered",
                                   delivery_id(send_store, "kenji@example.com"))]


def test_a_later_crm_opt_in_does_not_lift_a_bounce(
    client: FlaskClient, send_store: Store, home: Path
) -> None:
    event = {"event": "hard_bounce", "email": "yui@example.com", "ts_event": 1_764_000_000}
    assert client.post(f"/events/brevo/{BREVO_SECRET}", json=event).status_code == 200
    # The CRM says yui is opted in (the CSV has no opt-out) and was changed since.
    write_contacts(home / "contacts.csv", EMAILS)
    jobs.crm_sync(make_settings(home), send_store, full=True)
    assert ("yui@example.com", "bounce") in suppressed(send_store)


@pytest.mark.parametrize("value", ["not base64!", base64.b64encode(b"not a key").decode(),
                                   base64.b64encode(ec.generate_private_key(ec.SECP384R1())
                                                    .public_key().public_bytes(
                                       serialization.Encoding.DER,
                                       serialization.PublicFormat.SubjectPublicKeyInfo)).decode()])
def test_a_wrong_sendgrid_public_key_stops_at_start(home: Path, value: str) -> None:
    with pytest.raises(ConfigError, match="SENDGRID_WEBHOOK_PUBLIC_KEY"):
        make_settings(home, SENDGRID_WEBHOOK_PUBLIC_KEY=value)
