"""No log line carries an unsubscribe token or a webhook secret, even when a request fails."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from clubjapon_ops.delivery.tokens import TokenSigner
from clubjapon_ops.store import Store
from clubjapon_ops.web import create_app
from clubjapon_ops.web.logsafe import redact_paths
from tests.web.conftest import SECRET, SLUG, STORED, make_settings

BREVO_SECRET = "brevo-hook-secret-1a3c5e7f9b0d2f4a"


def broken_store() -> Store:
    raise RuntimeError("the database is down")


def test_a_failing_request_is_logged_without_its_token(
    home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(home, BREVO_WEBHOOK_SECRET=BREVO_SECRET)
    client = create_app(settings, broken_store).test_client()
    token = TokenSigner(SECRET).make_legacy(SLUG, STORED, "ja")
    event = {"event": "delivered", "email": STORED, "ts_event": 1_764_000_000}
    with caplog.at_level(logging.INFO):
        assert client.post(f"/unsubscribe/{token}").status_code == 500
        assert client.post(f"/events/brevo/{BREVO_SECRET}", json=event).status_code == 500
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "/unsubscribe/[redacted]" in logged and "/events/brevo/[redacted]" in logged
    assert token not in logged and token[:12] not in logged and BREVO_SECRET not in logged


@pytest.mark.parametrize(("line", "shown"), [
    ("Exception while serving /unsubscribe/abc.DEF-_x", "serving /unsubscribe/[redacted]"),
    ("POST /events/brevo/s3cr3t?x=1 HTTP/1.1", "POST /events/brevo/[redacted]?x=1 HTTP/1.1"),
    ("GET /events/brevo HTTP/1.1", "GET /events/brevo HTTP/1.1"),
    ("GET /healthz", "GET /healthz"),
    ("Exception while serving /r/lgWegp-JBc-H2Z4c.a-bcdefghijklm",
     "serving /r/[redacted]"),
])
def test_paths_with_a_token_are_redacted(line: str, shown: str) -> None:
    assert shown in redact_paths(line)
