"""Content-Security-Policy and the other security headers on every answer of both apps."""

from __future__ import annotations

import re

import pytest
from flask.testing import FlaskClient

from clubjapon_ops.delivery.tokens import TokenSigner
from tests.web.conftest import SECRET, SLUG, STORED
from tests.web.payload import injected


def policy(header: str) -> dict[str, str]:
    items = (part.strip().split(" ", 1) for part in header.split(";") if part.strip())
    return {item[0]: item[1] if len(item) > 1 else "" for item in items}


@pytest.mark.parametrize(("method", "path"), [
    ("get", "/unsubscribe/TOKEN"), ("get", "/unsubscribe/bad"), ("post", "/unsubscribe/bad"),
    ("get", "/healthz"), ("post", "/events/brevo"), ("post", "/events/sendgrid"),
    ("get", "/nowhere"),
])
def test_every_public_answer_has_a_strict_policy(
    public: FlaskClient, method: str, path: str
) -> None:
    path = path.replace("TOKEN", TokenSigner(SECRET).make_legacy(SLUG, STORED, "ja"))
    answer = getattr(public, method)(path)
    csp = policy(answer.headers["Content-Security-Policy"])
    assert csp["default-src"] == "'none'"
    assert "script-src" not in csp and csp["frame-ancestors"] == "'none'"
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert answer.headers["Referrer-Policy"] == "no-referrer"


def test_the_unsubscribe_page_styles_with_this_requests_nonce(public: FlaskClient) -> None:
    path = f"/unsubscribe/{TokenSigner(SECRET).make_legacy(SLUG, STORED, 'ja')}"
    nonces = []
    for _ in range(2):
        answer = public.get(path)
        nonce = policy(answer.headers["Content-Security-Policy"])["style-src"]
        assert re.fullmatch(r"'nonce-[\w-]{24}'", nonce)
        assert f'<style nonce="{nonce[7:-1]}">' in answer.get_data(as_text=True)
        nonces.append(nonce)
    assert nonces[0] != nonces[1]


def test_the_preview_runs_only_its_own_script_and_sandboxes_the_email(
    preview: FlaskClient,
) -> None:
    page = preview.get(f"/preview/{SLUG}?lang=fr")
    csp = policy(page.headers["Content-Security-Policy"])
    assert csp["default-src"] == "'none'" and csp["frame-src"] == "'self'"
    nonce = csp["script-src"][7:-1]
    body = page.get_data(as_text=True)
    assert body.count(f'nonce="{nonce}"') == 2  # the <style> and the <script>
    # Scripts never run in the email; same origin only so the page can read its height.
    assert re.search(r'<iframe id="email"[^>]* sandbox="allow-same-origin"', body)
    assert injected(body) == []  # no inline handler left (the select had onchange=...)
    email = preview.get(f"/preview/{SLUG}/email.html?lang=fr")
    email_csp = policy(email.headers["Content-Security-Policy"])
    assert "sandbox" in email_csp and email_csp["sandbox"] == "allow-same-origin"
    assert email_csp["default-src"] == "'none'" and "script-src" not in email_csp
