"""The preview's "send me a test" form: the same test copies as `send --test-to`, behind the
preview's password, a CSRF token and a rate limit."""

from __future__ import annotations

import base64
import email
import html
import re
from email import policy
from email.utils import parseaddr
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from clubjapon_ops.store import Store
from clubjapon_ops.web import create_preview_app
from tests.web.conftest import _ABSOLUTE, SLUG, make_settings

PAGE = f"/preview/{SLUG}"
SEND = f"/preview/{SLUG}/test-copies"
_TOKEN = re.compile(r'name="csrf" value="([0-9a-f]+)"')


def token(client: FlaskClient, **headers: str) -> str:
    """Open the preview page, as marketing does before sending; the form's token."""
    page = client.get(PAGE, headers=headers)
    assert page.status_code == 200
    found = _TOKEN.search(page.get_data(as_text=True))
    assert found, "the preview page has no send-me-a-test form"
    return found.group(1)


def copies(home: Path) -> list[str]:
    folder = home / "var" / "outbox" / "test-copies" / SLUG
    return sorted(p.name for p in folder.glob("*.eml")) if folder.exists() else []


def test_the_form_sends_one_copy_per_language_ticked_and_says_which(
    home: Path, preview: FlaskClient
) -> None:
    page = preview.get(f"{PAGE}?lang=ja").get_data(as_text=True)
    assert 'id="test-copy-form"' in page
    for lang in ("fr", "en", "ja"):
        assert f'name="lang" value="{lang}"' in page
    answer = preview.post(SEND, data={"to": "me@example.org", "lang": ["fr", "ja"],
                                      "csrf": token(preview)})
    body = answer.get_data(as_text=True)
    assert answer.status_code == 200, body
    assert copies(home) == ["fr-me@example.org-1.eml", "ja-me@example.org-1.eml"]
    assert (f"[fr] me@example.org: sent (outbox: test-copies/{SLUG}/fr-me@example.org-1.eml), "
            "rendered as the sample reader Camille Martin") in body
    assert "[ja] me@example.org: sent" in body and "佐藤 陽翔" in body
    assert not _ABSOLUTE.search(body)  # the file under the outbox, never its absolute path
    # The same files as the CLI's: a [TEST] subject, the tester's address alone in To:.
    path = home / "var" / "outbox" / "test-copies" / SLUG / "ja-me@example.org-1.eml"
    message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
    assert str(message["Subject"]).startswith("[TEST] ")
    assert parseaddr(str(message["To"])) == ("", "me@example.org")
    assert message["Content-Language"] == "ja"
    # Sent again, nothing is overwritten.
    again = preview.post(SEND, data={"to": "me@example.org", "lang": "ja",
                                     "csrf": token(preview)})
    assert again.status_code == 200
    assert copies(home) == ["fr-me@example.org-1.eml", "ja-me@example.org-1.eml",
                            "ja-me@example.org-2.eml"]


@pytest.mark.parametrize(("form", "said"), [
    ({"to": "me@example.org", "lang": "de"}, f"{SLUG} is not written in de"),
    ({"to": "not-an-address", "lang": "fr"}, "'not-an-address'"),
    ({"to": "", "lang": "fr"}, "no address to send the test copies to"),
    ({"to": ",".join(f"a{i}@example.org" for i in range(6)), "lang": "fr"},
     "6 addresses: the preview sends to at most 5 at once"),
])
def test_a_form_that_cannot_be_sent_says_why_and_sends_nothing(
    home: Path, preview: FlaskClient, form: dict[str, str], said: str
) -> None:
    answer = preview.post(SEND, data={**form, "csrf": token(preview)})
    assert answer.status_code == 400
    body = html.unescape(answer.get_data(as_text=True))
    assert "Nothing was sent: " in body and said in body
    assert copies(home) == []


def test_a_post_without_the_pages_token_sends_nothing(
    home: Path, preview: FlaskClient, web_store: Store
) -> None:
    form = {"to": "me@example.org", "lang": "fr"}
    good = token(preview)
    refused = [
        preview.post(SEND, data=form),  # a page elsewhere cannot read the token
        preview.post(SEND, data={**form, "csrf": "0" * 64}),
        preview.post(SEND, data={**form, "csrf": good}, headers={"Sec-Fetch-Site": "cross-site"}),
    ]
    # A browser that never opened the page has no cookie: the token alone is not enough.
    stranger = create_preview_app(make_settings(home), lambda: web_store).test_client()
    refused.append(stranger.post(SEND, data={**form, "csrf": good}))
    for answer in refused:
        assert answer.status_code == 403
        assert answer.mimetype == "text/plain"
        assert "reload the preview" in answer.get_data(as_text=True)
    assert copies(home) == []
    cookie = preview.get_cookie("clubjapon_form")
    assert cookie is not None and cookie.http_only and cookie.same_site == "Strict"


def test_behind_the_password_the_form_asks_for_it(home: Path, web_store: Store) -> None:
    password = "aperçu-8f3e1c5a7b9d"
    settings = make_settings(home, CLUBJAPON_PREVIEW_PASSWORD=password)
    client = create_preview_app(settings, lambda: web_store).test_client()
    auth = {"Authorization": "Basic " + base64.b64encode(
        f"marketing:{password}".encode()).decode()}
    csrf = token(client, **auth)
    bare = client.post(SEND, data={"to": "me@example.org", "lang": "fr", "csrf": csrf})
    assert bare.status_code == 401 and copies(home) == []
    sent = client.post(SEND, data={"to": "me@example.org", "lang": "fr", "csrf": csrf},
                       headers=auth)
    assert sent.status_code == 200 and copies(home) == ["fr-me@example.org-1.eml"]


def test_a_flooded_form_gets_a_plain_429(home: Path, preview: FlaskClient) -> None:
    now = [1000.0]
    window = preview.application.extensions["clubjapon_test_copy_window"]
    window.clock = lambda: now[0]  # a clock the test moves: no waiting, no race
    form = {"to": "me@example.org", "lang": "fr", "csrf": token(preview)}
    # Posts forged elsewhere are refused and count for nothing: a page on another site cannot
    # use up marketing's test sends.
    for _ in range(window.limit * 3):
        assert preview.post(SEND, data={**form, "csrf": "forged"}).status_code == 403
    # Every post from the page counts, sent or not (here: an address that is not one).
    for _ in range(window.limit):
        assert preview.post(SEND, data={**form, "to": "not an address"}).status_code == 400
    flooded = preview.post(SEND, data=form)
    assert flooded.status_code == 429
    assert flooded.mimetype == "text/plain"
    assert flooded.get_data(as_text=True) == (
        "Too many test sends: at most 5 a minute from the preview. Wait a minute, then send "
        "again.\n")
    assert flooded.headers["Retry-After"] == "60"
    assert copies(home) == []
    now[0] += 60
    assert preview.post(SEND, data=form).status_code == 200
    assert copies(home) == ["fr-me@example.org-1.eml"]
