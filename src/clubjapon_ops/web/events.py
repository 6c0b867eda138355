"""Provider webhooks: POST /events/brevo[/TOKEN] and POST /events/sendgrid.

Store first, then process: once the events are committed the provider gets its 200, even
if processing them fails (they are processed again later); a request that is not
authenticated, not well-formed or too large gets a 4xx and nothing is stored.
"""

from __future__ import annotations

import logging
from email.utils import parseaddr
from typing import Any

from flask import Blueprint, Response, current_app, request

from clubjapon_ops.delivery.message import message_id
from clubjapon_ops.errors import StoreError
from clubjapon_ops.events import brevo, sendgrid
from clubjapon_ops.events.body import parse_json
from clubjapon_ops.events.signature import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    load_public_key,
    verify,
)
from clubjapon_ops.events.types import Event, MalformedEvent
from clubjapon_ops.settings import Settings
from clubjapon_ops.store.events import process_pending, store_events
from clubjapon_ops.store.types import utcnow
from clubjapon_ops.web.auth import basic_password, bearer_token, password_matches

log = logging.getLogger(__name__)
blueprint = Blueprint("events", __name__)
MAX_EVENTS = 10_000  # SendGrid batches a few thousand at most; more is not a webhook


def _plain(text: str, status: int) -> Response:
    # Fixed words only: nothing from the request (a token, a header) is ever echoed.
    return Response(text + "\n", status=status, mimetype="text/plain")


def _settings() -> Settings:
    settings: Settings = current_app.config["CLUBJAPON_SETTINGS"]
    return settings


def _json() -> Any:
    # Over MAX_CONTENT_LENGTH: 413 before reading.
    return parse_json(request.get_data(cache=True))


def _accept(batch: list[Event]) -> Response:
    if len(batch) > MAX_EVENTS:
        return _plain("Too many events", 413)
    settings = _settings()
    domain = parseaddr(settings.mail_from)[1].rsplit("@", 1)[-1]
    store = current_app.config["CLUBJAPON_STORE_FACTORY"]()
    with store.transaction() as conn:
        new = store_events(conn, batch, lambda edition, email: message_id(edition, email, domain))
    try:
        with store.transaction() as conn:
            counts = process_pending(conn, settings.soft_bounce_limit)
    except StoreError as exc:
        # One line: the driver's error chained below it carries the SQL and an address.
        log.warning("events stored but not processed yet: %s", exc)
        counts = None
    except Exception:
        # Stored is what matters to the provider; what was not processed is picked up later.
        log.exception("events stored but not processed yet")
        counts = None
    log.info("events received", extra={"provider": batch[0].provider, "events": len(batch),
                                       "new": new, "processed": dict(counts or {})})
    return _plain("OK", 200)


@blueprint.post("/events/brevo")
@blueprint.post("/events/brevo/<token>")
def brevo_events(token: str | None = None) -> Response:
    """Brevo's webhook, authenticated by the secret in the URL, basic auth or a bearer token."""
    secret = _settings().brevo_webhook_secret
    # Brevo's webhook settings offer basic auth (user:password in the URL) and "auth":
    # {"type": "bearer", "token": ...} (developers.brevo.com/docs/username-and-password-
    # authentication); each given value is compared in constant time.
    given = (token, basic_password(), bearer_token())
    if not secret or not any(password_matches(value, secret) for value in given):
        return _plain("Unauthorized", 401)
    try:
        batch = brevo.parse_body(_json(), utcnow())
    except MalformedEvent:
        return _plain("Bad request", 400)
    return _accept(batch)


@blueprint.post("/events/sendgrid")
def sendgrid_events() -> Response:
    """SendGrid's signed event webhook: the signature is checked over the raw body."""
    key_text = _settings().sendgrid_webhook_public_key
    if not key_text:
        return _plain("Unauthorized", 401)
    body = request.get_data(cache=True)
    key = load_public_key(key_text)
    if not verify(key, request.headers.get(SIGNATURE_HEADER),
                  request.headers.get(TIMESTAMP_HEADER), body):
        return _plain("Unauthorized", 401)
    try:
        batch = sendgrid.parse_body(_json())
    except MalformedEvent:
        return _plain("Bad request", 400)
    return _accept(batch)
