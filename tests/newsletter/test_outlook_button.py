"""Outlook for Windows (Word's engine) reads only what its conditional comments hold.

Issue 23: there only the button's text was clickable (the padding belonged to the cell), its
corners were square, and Japanese fell back to Word's default font. The button is checked as
Word reads it: the VML inside <!--[if mso]>, parsed as XML with its namespaces.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import pytest

from clubjapon_ops.contacts import Contact
from clubjapon_ops.newsletter.lint import GMAIL_CLIP_BYTES, lint_message
from clubjapon_ops.newsletter.render import PersonalMessage
from clubjapon_ops.newsletter.service import load_newsletter
from clubjapon_ops.newsletter.typography import without_phrase_breaks
from clubjapon_ops.settings import load_settings
from tests.conftest import REPO
from tests.newsletter.conftest import SLUG

LANGS = ("fr", "en", "ja")
BUTTON = "#b3283d"  # the button's colour in the design (email.css .button-cell)
POSTAL = "Club Japon des Hauts-de-France; 151 avenue du Président Hoover; 59555 Lille Cedex"
VML = "urn:schemas-microsoft-com:vml"
WORD = "urn:schemas-microsoft-com:office:word"
_MSO = re.compile(r"<!--\[if mso\]>(.*?)<!\[endif\]-->", re.S)
_NOT_MSO = re.compile(r"<!--\[if !mso\]><!-->(.*?)<!--<!\[endif\]-->", re.S)


@pytest.fixture(scope="module")
def messages() -> dict[str, PersonalMessage]:
    settings = load_settings(REPO, environ={"CLUBJAPON_POSTAL_ADDRESS": POSTAL})
    newsletter = load_newsletter(settings, SLUG)
    return {lang: newsletter.personalise(Contact(
        email="reader@example.com", source="test", first_name="Marie", last_name="佐藤",
        language=lang)) for lang in LANGS}


class _Links(HTMLParser):
    """The HTML button's links and their inline styles (what every other client shows)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.buttons: list[dict[str, str]] = []
        self.cells: list[dict[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "a" and "button" in values.get("class", "").split():
            self.buttons.append(values)
        if tag == "td" and "button-cell" in values.get("class", "").split():
            self.cells.append(values)


def _roundrects(html: str) -> list[ET.Element]:
    found = []
    for block in _MSO.findall(html):
        if "roundrect" not in block:
            continue
        # Word parses this as XML: it must be well-formed, with its namespaces declared.
        root = ET.fromstring(f"<mso>{block}</mso>")
        found.extend(root.iter(f"{{{VML}}}roundrect"))
    return found


@pytest.mark.parametrize("lang", LANGS)
def test_outlook_gets_a_rounded_vml_button_that_is_the_link_whole(
    messages: dict[str, PersonalMessage], lang: str
) -> None:
    html = messages[lang].html
    links = _Links()
    links.feed(html)
    assert len(links.buttons) == 1
    href = links.buttons[0]["href"]
    shapes = _roundrects(html)
    assert len(shapes) == 1, "one VML button in <!--[if mso]>"
    shape = shapes[0]
    assert shape.get("href") == href  # the shape is the link: all of it is clickable
    assert shape.get("fillcolor") == BUTTON and shape.get("strokecolor") == BUTTON
    assert links.cells[0]["bgcolor"] == BUTTON
    arc = shape.get("arcsize") or ""
    assert arc.endswith("%") and 0 < float(arc[:-1]) <= 50  # rounded corners
    style = dict(item.split(":", 1) for item in (shape.get("style") or "").split(";") if item)
    assert style["v-text-anchor"] == "middle"
    assert int(style["height"].removesuffix("px")) >= 44  # a finger's target
    assert 160 <= int(style["width"].removesuffix("px")) <= 536  # inside the 600 px column
    assert shape.find(f"{{{WORD}}}anchorlock") is not None
    label = shape.find("center")
    assert label is not None and "color:#ffffff" in (label.get("style") or "")
    shown = without_phrase_breaks(links.buttons[0].get("title", "") or _label(html))
    assert (label.text or "").strip() == shown.strip()


def _label(html: str) -> str:
    match = re.search(r'<a [^>]*class="button"[^>]*>(.*?)</a>', html, re.S)
    assert match
    return re.sub(r"<[^>]+>", "", match.group(1))


@pytest.mark.parametrize("lang", LANGS)
def test_other_clients_get_the_html_button_with_the_padding_on_the_link(
    messages: dict[str, PersonalMessage], lang: str
) -> None:
    html = messages[lang].html
    hidden_from_word = "".join(_NOT_MSO.findall(html))
    assert 'class="button"' in hidden_from_word  # Outlook does not show it twice
    links = _Links()
    links.feed(html)
    style = links.buttons[0]["style"]
    assert "padding: 12px 24px" in style and "display: inline-block" in style
    assert "border-radius: 4px" in style
    assert "padding" not in links.cells[0].get("style", "")


def test_japanese_names_its_font_for_word_and_stays_far_below_gmails_clip(
    messages: dict[str, PersonalMessage],
) -> None:
    ja = messages["ja"].html
    texts = re.findall(r'<(?:p|h1|h2|td|a|li)\b[^>]*style="([^"]*)"', ja)
    assert texts and all("mso-fareast-font-family: Meiryo" in s for s in texts)
    label = _roundrects(ja)[0].find("center")
    assert label is not None and "mso-fareast-font-family:Meiryo" in (label.get("style") or "")
    for lang in LANGS:
        size = len(messages[lang].html.encode("utf-8"))
        assert size < GMAIL_CLIP_BYTES / 2, f"{lang}: {size} bytes"
        assert [p for p in lint_message(messages[lang]) if p.level == "error"] == []
