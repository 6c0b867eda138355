"""The payload in every URL parameter, contact field and edition field comes out escaped."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import pytest
from flask.testing import FlaskClient

from clubjapon_ops.delivery.tokens import TokenSigner
from clubjapon_ops.store import Store
from tests.web.conftest import SECRET, SLUG, STORED
from tests.web.payload import ESCAPED, PAYLOAD, POISONED, injected, poison_contact, poison_edition

P = quote(PAYLOAD, safe="")


def html_page(client: FlaskClient, path: str, status: int) -> str:
    answer = client.get(path)
    assert answer.status_code == status, path
    assert answer.mimetype == "text/html"
    body = answer.get_data(as_text=True)
    assert injected(body) == [], path
    if "/email.html" not in path or status != 200:
        assert PAYLOAD not in body, path
    # else css-inline writes < and > unescaped inside quoted attribute values, as HTML5
    # serialises them: inert there, and injected() parses the page to be sure.
    return body


@pytest.mark.parametrize(("path", "status", "echoed"), [
    (f"/preview/{P}", 404, True),
    (f"/preview/{P}/email.html", 404, True),
    (f"/preview/{P}/email.txt", 404, True),
    (f"/preview/{SLUG}?lang={P}", 400, True),
    (f"/preview/{SLUG}?contact={P}", 404, True),
    (f"/preview/{SLUG}?width={P}", 200, False),
    (f"/preview/{SLUG}?lang=ja&contact={STORED}&width={P}&x={P}", 200, False),
    (f"/preview/{SLUG}/email.html?contact={P}", 404, True),
])
def test_url_parameters_are_escaped(
    preview: FlaskClient, path: str, status: int, echoed: bool
) -> None:
    body = html_page(preview, path, status)
    assert (ESCAPED in body) == echoed


def test_the_edition_name_is_escaped_in_the_title_and_the_error(preview: FlaskClient) -> None:
    body = html_page(preview, f"/preview/{P}", 404)
    assert f"<title>Preview · {ESCAPED}</title>" in body
    assert f"&#39;{ESCAPED}&#39; is not an edition name" in body


@pytest.mark.parametrize("lang", ["fr", "ja"])
def test_contact_fields_are_escaped(preview: FlaskClient, web_store: Store, lang: str) -> None:
    poison_contact(web_store, lang)
    page = html_page(preview, f"/preview/{SLUG}?lang={lang}&contact={POISONED}", 200)
    assert ESCAPED in page  # the greeting, in the text part
    email = html_page(preview, f"/preview/{SLUG}/email.html?lang={lang}&contact={POISONED}", 200)
    assert ESCAPED in email
    text = preview.get(f"/preview/{SLUG}/email.txt?lang={lang}&contact={POISONED}")
    # The text part is the text as sent: raw, but never read as HTML.
    assert text.mimetype == "text/plain" and PAYLOAD in text.get_data(as_text=True)
    assert text.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("lang", ["fr", "en", "ja"])
def test_edition_fields_are_escaped(preview: FlaskClient, home: Path, lang: str) -> None:
    poison_edition(home / "config" / "editions" / f"{SLUG}.yaml")
    page = html_page(preview, f"/preview/{SLUG}?lang={lang}", 200)
    assert '<span class="subject" id="subject">' in page
    assert page.count(ESCAPED) >= 3  # subject, preheader, the text part
    email = html_page(preview, f"/preview/{SLUG}/email.html?lang={lang}", 200)
    assert email.count(ESCAPED) >= 10


def test_the_unsubscribe_page_never_shows_the_address_of_an_old_token(
        public: FlaskClient) -> None:
    # A link sent before opaque tokens carries the address; the page shows it to nobody,
    # escaped or not (issue 25: whoever opens a forwarded link must not learn it).
    token = TokenSigner(SECRET).make_legacy(SLUG, f"{PAYLOAD}@example.com", "fr")
    body = html_page(public, f"/unsubscribe/{token}", 200)
    assert PAYLOAD not in body and ESCAPED not in body and "example.com" not in body
    answer = public.post(f"/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click",
                                                        "page": "1"})
    done = answer.get_data(as_text=True)
    assert answer.status_code == 200 and PAYLOAD not in done and ESCAPED not in done
