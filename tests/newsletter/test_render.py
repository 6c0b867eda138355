from __future__ import annotations

import email
import re
from email import policy
from email.message import EmailMessage

import css_inline
import pytest
from markupsafe import Markup

from clubjapon_ops.contacts import Contact
from clubjapon_ops.delivery.message import MimeBuilder, encode_words, message_id
from clubjapon_ops.newsletter.render import HTML_TEMPLATE, charset_first
from clubjapon_ops.newsletter.service import Newsletter, load_newsletter
from clubjapon_ops.newsletter.typography import JA_EMAIL, without_phrase_breaks
from clubjapon_ops.settings import Settings
from tests.newsletter.conftest import SLUG

FROM = "Club Japon des Hauts-de-France <club-japon@example.org>"


@pytest.fixture
def newsletter(project_settings: Settings) -> Newsletter:
    return load_newsletter(project_settings, SLUG, lambda c, row: f"https://u.example/{c.email}?x=1&y=2")


def reader(lang: str, first: str | None = "Camille", last: str | None = "Martin",
           email_addr: str = "reader@example.com") -> Contact:
    return Contact(email=email_addr, source="csv", first_name=first, last_name=last,
                   language=lang)


def parse(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


@pytest.mark.parametrize(
    ("lang", "title", "greeting", "anonymous"),
    [
        ("fr", "Des liens toujours plus forts", "Bonjour Camille,", "Bonjour,"),
        ("en", "Ever stronger ties", "Dear Camille Martin,", "Hello,"),
        ("ja", "地域圏と日本の絆", "Martin\u00a0様", "ご担当者様"),
    ],
)
def test_each_language_renders_with_its_greeting(
    newsletter: Newsletter, lang: str, title: str, greeting: str, anonymous: str
) -> None:
    named = newsletter.personalise(reader(lang))
    nameless = newsletter.personalise(reader(lang, first=None, last=None))
    html = without_phrase_breaks(named.html)  # Japanese HTML has <wbr> between phrases
    assert title in html
    assert title.upper() in named.text.upper()  # the text part may set the title in capitals
    for part in (html, named.text):
        assert greeting in part
        assert "https://u.example/reader@example.com?x=1&" in part
    assert f'lang="{lang}"' in html
    assert anonymous in nameless.text and anonymous in without_phrase_breaks(nameless.html)
    assert "None" not in nameless.text


def test_figures_round_tables_and_quote_are_in_both_parts(newsletter: Newsletter) -> None:
    message = newsletter.personalise(reader("fr"))
    for part in (message.html, message.text):
        assert "80+" in part
        assert "La réglementation française est-elle trop rigide" in part
        assert "L’intelligence artificielle" in part or "L'intelligence artificielle" in part
        assert "Le Japon est un partenaire fidèle des Hauts-de-France." in part
        assert "Xavier Bertrand" in part
    assert 'class="quote-cell"' in message.html  # drawn on a cell, for Outlook
    assert "  > «\u202fLe Japon est un partenaire fidèle" in message.text  # typography


def test_translated_quotation_says_so(newsletter: Newsletter) -> None:
    assert "Translated from French." in newsletter.personalise(reader("en")).text
    assert "Traduit du" not in newsletter.personalise(reader("fr")).text


def test_hostile_contact_fields_are_escaped_in_html(newsletter: Newsletter) -> None:
    message = newsletter.personalise(reader("fr", first="<script>alert('x')</script>",
                                            email_addr="a&b@example.com"))
    assert "<script>alert" not in message.html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in message.html
    assert "a&amp;b@example.com" in message.html
    assert "Bonjour <script>alert('x')</script>," in message.text


def test_unknown_language_falls_back_to_the_primary_one(newsletter: Newsletter) -> None:
    assert newsletter.personalise(reader("de")).lang == "fr"


def test_personalising_equals_rendering_the_whole_template(newsletter: Newsletter) -> None:
    """Render once + slots gives the same document as a full render per contact."""
    contact = reader("ja", first="結衣", last="<鈴木>")
    message = newsletter.personalise(contact)
    renderer = newsletter.renderer
    ctx = renderer.context(newsletter.edition, "ja")
    values = message.html_values
    ctx["slot"] = lambda name: Markup(values[name])  # already escaped by the personaliser
    full = without_phrase_breaks(charset_first(css_inline.CSSInliner(keep_at_rules=True).inline(
        renderer.env.get_template(HTML_TEMPLATE).render(ctx))))
    # Alignment padding adds spaces before tags: compare everything but white space, and
    # but the Japanese phrase breaks, set once per language (not on the contact's values).
    ours = without_phrase_breaks(message.html).replace(f' style="{JA_EMAIL}"', "")
    ours = ours.replace(JA_EMAIL, "")
    # css-inline writes the no-break space of "<鈴木> 様" as &nbsp; in the full render.
    full = full.replace("&nbsp;", "\u00a0")
    ours = ours.replace("&nbsp;", "\u00a0")
    assert re.sub(r"\s+|;(?=\")", "", ours) == re.sub(r"\s+|;(?=\")", "", full)


# A name of plain ASCII up to 75 characters goes as it is, anything else through the
# encoder; a leading '.' is written =2E.
@pytest.mark.parametrize("char", ["é", "a", "."])
@pytest.mark.parametrize("length", [0, 1, 2, 3, 73, 74, 75, 76, 300])
def test_segments_decode_to_the_same_html(newsletter: Newsletter, char: str,
                                          length: int) -> None:
    message = newsletter.personalise(reader("fr", first=char * length))
    raw = MimeBuilder(FROM).build(message, edition=SLUG)
    parsed = parse(raw)
    html = parsed.get_body(("html",))
    text = parsed.get_body(("plain",))
    assert html is not None and text is not None
    # text/* parts travel with CRLF line ends (RFC 2046), the HTML one too.
    assert html.get_content().replace("\r\n", "\n") == message.html
    assert text.get_content().replace("\r\n", "\n") == message.text
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    body_lines = raw.split(b"\r\n\r\n", 1)[1].split(b"\r\n")
    assert all(len(line) <= 76 for line in body_lines)
    assert not any(line.startswith(b".") for line in body_lines)  # SMTP needs no stuffing


def test_mime_headers(newsletter: Newsletter) -> None:
    contact = reader("ja", first="結衣", last="鈴木", email_addr="yui@example.com")
    message = newsletter.personalise(contact)
    builder = MimeBuilder(FROM)
    parsed = parse(builder.build(message, edition=SLUG))
    assert parsed["From"] == FROM
    assert str(parsed["To"]) == "鈴木 結衣 <yui@example.com>"
    assert parsed["Subject"] == newsletter.edition.subject["ja"]
    assert parsed["Message-ID"] == message_id(SLUG, "yui@example.com", "example.org")
    assert parsed["Message-ID"] != message_id(SLUG, "other@example.com", "example.org")
    assert parsed["List-Unsubscribe"] == (
        "<https://u.example/yui@example.com?x=1&y=2>, "
        "<mailto:club-japon@example.org?subject=unsubscribe>")
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert parsed.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in parsed.iter_parts()] == ["text/plain", "text/html"]
    assert parsed["Date"] is not None


def test_no_contact_field_can_add_a_header(newsletter: Newsletter) -> None:
    contact = reader("fr", first="Eve\r\nBcc: victim@example.com", last="X\nSubject: spam")
    raw = MimeBuilder(FROM).build(newsletter.personalise(contact), edition=SLUG)
    parsed = parse(raw)
    assert parsed["Bcc"] is None
    assert parsed.get_all("Subject") == [newsletter.rendered["fr"].subject]


@pytest.mark.parametrize("text", ["Réunion du Club", "クラブ・ジャポン" * 10, "plain ascii"])
def test_encoded_words_round_trip(text: str) -> None:
    encoded = encode_words(text)
    assert all(len(line) <= 76 for line in encoded.split("\r\n"))
    parsed = parse(f"Subject: {encoded}\r\n\r\n".encode("ascii"))
    assert parsed["Subject"] == text
