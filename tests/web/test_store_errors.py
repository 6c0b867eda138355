"""A database the public app cannot write to: a webhook gets a 503 and one log line, no
address, no SQL; a one-click unsubscribe is kept aside, answered 200 (issue 26), and
applied once the database takes it."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from clubjapon_ops import jobs
from clubjapon_ops.delivery.tokens import TokenSigner
from clubjapon_ops.logs import setup_logging
from clubjapon_ops.store import Store, open_store
from clubjapon_ops.store.pending import PendingUnsubscribes, pending_path
from clubjapon_ops.web import create_app
from clubjapon_ops.web import unsubscribe as unsubscribe_module
from tests.conftest import free_port
from tests.delivery.test_unsubscribe_kept import suppressed, until
from tests.web.conftest import SECRET, SLUG, STORED, make_settings

BREVO_SECRET = "brevo-webhook-secret-0123456789"


@pytest.fixture(autouse=True)
def _quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """The app retries kept unsubscribes every 5 s; here, at once."""
    monkeypatch.setattr(unsubscribe_module, "RETRY_EVERY_S", 0.05)


def applied_once_writable(home: Path, store: Store) -> None:
    """The kept unsubscribe is stored once the app's store takes writes, and the file (and
    the app's retries with it) ends: nothing is left retrying after the test."""
    until(lambda: STORED in suppressed(store), "the kept unsubscribe was applied")
    until(lambda: not PendingUnsubscribes(pending_path(home)).waiting(), "the file was emptied")


def test_a_read_only_store_answers_503_and_logs_no_address_nor_sql(
    home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(home, BREVO_WEBHOOK_SECRET=BREVO_SECRET)
    writable = open_store(settings.database_url)
    jobs.crm_sync(settings, writable)
    writable.close()
    database = home / "var" / "clubjapon.sqlite3"
    read_only = open_store(f"sqlite:///file:{database}?mode=ro&uri=true")
    current = [read_only]
    client = create_app(settings, lambda: current[0]).test_client()
    token = TokenSigner(SECRET).make_legacy(SLUG, STORED, "fr")
    event = {"event": "hard_bounce", "email": STORED, "id": 1, "date": "2025-11-05 10:00:00",
             "message-id": "<x@example.org>", "ts_event": 1762333200, "tags": [SLUG]}
    try:
        with caplog.at_level(logging.INFO):
            answers = [
                client.post(f"/unsubscribe/{token}", data="List-Unsubscribe=One-Click",
                            content_type="application/x-www-form-urlencoded"),
                client.post(f"/events/brevo/{BREVO_SECRET}", data=json.dumps(event),
                            content_type="application/json"),
            ]
    finally:
        read_only.close()
    unsubscribe, webhook = answers
    # The reader's unsubscribe is kept aside, to be stored when the database takes it: 200.
    assert unsubscribe.status_code == 200
    assert STORED in pending_path(home).read_text(encoding="utf-8")
    # 503: Brevo retries a webhook that got a 5xx.
    assert webhook.status_code == 503
    assert webhook.get_data(as_text=True) == "Service unavailable\n"
    logged = "\n".join(
        r.getMessage() + (logging.Formatter().formatException(r.exc_info) if r.exc_info else "")
        for r in caplog.records)
    assert "read-only" in logged or "read only" in logged
    assert STORED not in logged and "INSERT" not in logged and token not in logged
    current[0] = open_store(settings.database_url)
    applied_once_writable(home, current[0])


def test_a_store_that_cannot_open_logs_json_without_the_database_password(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # As 'web --log-json' runs: the CLI's log setup, taught the settings' secrets, and a store
    # opened on first use; nothing listens on the port, so every request finds it closed.
    secret = "Pg-S3cret-9f1c"
    url = (f"postgresql+psycopg://club@127.0.0.1:{free_port()}/club?sslmode=prefer"
           f"&pass%77ord={secret}&sslpassword={secret}2")
    settings = make_settings(home, CLUBJAPON_DATABASE_URL=url,
                             BREVO_WEBHOOK_SECRET=BREVO_SECRET)
    setup_logging(json_lines=True, secrets=settings.secrets())
    url_now = [settings.database_url]
    client = create_app(settings, lambda: open_store(url_now[0])).test_client()
    token = TokenSigner(SECRET).make_legacy(SLUG, STORED, "fr")
    kept = client.post(f"/unsubscribe/{token}", data="List-Unsubscribe=One-Click",
                       content_type="application/x-www-form-urlencoded")
    assert kept.status_code == 200  # kept aside until the database opens
    event = {"event": "hard_bounce", "email": STORED, "id": 1, "date": "2025-11-05 10:00:00",
             "message-id": "<x@example.org>", "ts_event": 1762333200, "tags": [SLUG]}
    answer = client.post(f"/events/brevo/{BREVO_SECRET}", data=json.dumps(event),
                         content_type="application/json")
    assert answer.status_code == 503
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    logged = next(line for line in lines if line["msg"].startswith("database unavailable"))
    assert "127.0.0.1" in logged["msg"] and "pass%77ord=***" in logged["msg"], logged
    assert secret not in json.dumps(lines) and secret[4:] not in json.dumps(lines)
    # The database opens again (here a SQLite file stands for it).
    url_now[0] = f"sqlite:///{home / 'var' / 'back.sqlite3'}"
    applied_once_writable(home, open_store(url_now[0]))
