"""What the rendered email must hold for mail clients: the footer, the button, the quotation.

How it looks in a browser is tests/e2e/test_email_clients.py; these read the rendered
parts as a client receives them (after css-inline), one language at a time.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from clubjapon_ops.contacts import Contact
from clubjapon_ops.newsletter.render import PersonalMessage
from clubjapon_ops.newsletter.service import load_newsletter
from clubjapon_ops.newsletter.textwrap_cjk import display_width
from clubjapon_ops.newsletter.typography import without_phrase_breaks
from clubjapon_ops.settings import load_settings
from tests.newsletter.conftest import SLUG, edit

LANGS = ("fr", "en", "ja")
ADDRESS = "Club Japon des Hauts-de-France; 151 avenue du Président Hoover; 59555 Lille Cedex"
LINES = ("Club Japon des Hauts-de-France", "151 avenue du Président Hoover", "59555 Lille Cedex")
LONG_ADDRESS = "marie-christine.delacroix-villeneuve@hokuto-automotive-france.example.com"
EDITION = Path("config/editions") / f"{SLUG}.yaml"
_STYLE = re.compile(r'<(\w+)[^>]*?\bclass="([^"]*)"[^>]*?\bstyle="([^"]*)"')


def messages(project: Path, address: str = ADDRESS) -> dict[str, PersonalMessage]:
    settings = load_settings(project, environ={"CLUBJAPON_POSTAL_ADDRESS": address})
    newsletter = load_newsletter(
        settings, SLUG, lambda c, row: f"https://club-japon.example.org/unsubscribe/{'t' * 90}")
    return {lang: newsletter.personalise(Contact(
        email=LONG_ADDRESS, source="csv", first_name="Camille", last_name="佐藤", language=lang))
        for lang in LANGS}


def styles(html: str, css_class: str) -> list[str]:
    """The inlined style attribute of every element with this class."""
    return [style for _tag, classes, style in _STYLE.findall(html)
            if css_class in classes.split()]


@pytest.mark.parametrize("address", [ADDRESS, "\n".join(LINES), " ; ".join(LINES) + ";"])
def test_the_postal_address_is_in_both_parts_line_by_line(project: Path, address: str) -> None:
    for lang, message in messages(project, address).items():
        assert "<br>".join(LINES) in message.html, lang
        assert "\n".join(LINES) in message.text, lang


@pytest.mark.parametrize("lang", LANGS)
def test_the_footer_says_why_links_online_and_unsubscribe(project: Path, lang: str) -> None:
    message = messages(project)[lang]
    view_online = f"https://club-japon.example.org/editions/{SLUG}/{lang}"
    footer_html = message.html.split('class="footer"', 1)[1]
    footer_text = message.text.split("\n-- \n", 1)[1]
    for footer in (footer_html, footer_text):
        assert LONG_ADDRESS in footer
        assert view_online in footer
        assert message.unsubscribe_url in footer
        assert LINES[1] in footer
    # In the text part a URL or an address goes on a line of its own.
    lines = footer_text.splitlines()
    for alone in (LONG_ADDRESS, view_online, message.unsubscribe_url):
        assert alone in lines, (alone, lines)


@pytest.mark.parametrize("lang", LANGS)
def test_text_part_lines_fit_72_columns_but_a_url_alone(project: Path, lang: str) -> None:
    text = messages(project)[lang].text
    # Every line, body and footer: a list's "  * " and a round table's "1. " included.
    too_long = [line for line in text.splitlines()
                if display_width(line) > 72 and not re.fullmatch(r"\s*\S+", line)]
    assert too_long == []
    # And the link at the top, under its label rather than after it.
    head = text.split("\n\n", 3)[2]
    assert all(display_width(line) <= 72 for line in head.splitlines()), head


def test_a_mailto_button_writes_its_address_out(project: Path) -> None:
    for lang, message in messages(project).items():
        # Shown as text, outside any href: a reader whose app mishandles mailto: can copy it.
        shown = re.sub(r'href="[^"]*"', "", message.html)
        assert "club-japon@example.org" in shown, lang
        assert "mailto:" not in message.text, lang
        assert "\nclub-japon@example.org\n" in message.text, lang


def test_an_https_button_shows_no_address(project: Path) -> None:
    edit(project / EDITION, "    # No url: the button is a mailto: link to CLUBJAPON_MAIL_FROM.",
         "    url: https://club-japon.example.org/contact")
    for lang, message in messages(project).items():
        assert 'href="https://club-japon.example.org/contact"' in message.html, lang
        assert 'class="cta-address"' not in message.html, lang
        assert "\nhttps://club-japon.example.org/contact\n" in message.text, lang


def test_the_button_is_coloured_by_its_cell_and_filled_by_its_link(project: Path) -> None:
    for lang, message in messages(project).items():
        (cell,) = styles(message.html, "button-cell")
        (link,) = styles(message.html, "button")
        assert "background-color: #b3283d" in cell, lang
        # The padding is the link's, so all of the button is clickable; Outlook, which drops
        # a link's padding, gets its VML twin (tests/newsletter/test_outlook_button.py).
        assert "padding: 12px 24px" in link and "display: inline-block" in link, lang
        assert "padding" not in cell, lang


def test_the_quotation_is_drawn_on_a_cell(project: Path) -> None:
    for lang, message in messages(project).items():
        assert "<blockquote" not in message.html, lang
        (cell,) = styles(message.html, "quote-cell")
        assert "border-left: 4px solid #b3283d" in cell and "padding:" in cell, lang


def test_no_element_has_a_width_and_a_padding(project: Path) -> None:
    # Where box-sizing is unsupported (Orange, Yahoo) the two add up and the box sticks out.
    for lang, message in messages(project).items():
        for tag, classes, style in _STYLE.findall(message.html):
            rules = dict(r.split(":", 1) for r in style.split(";") if ":" in r)
            rules = {k.strip(): v.strip() for k, v in rules.items()}
            widths = {k for k in rules if k in ("width", "max-width")}
            paddings = {k for k, v in rules.items()
                        if k.startswith("padding") and set(v) - set("0px ")}
            assert not (widths and paddings), (lang, tag, classes, style)
        # Nor by an @media rule giving a width to what has a padding inlined.
        head = message.html.split("</style>", 1)[0]
        for selectors, body in re.findall(r"([^{}]+)\{([^{}]*)\}", head):
            if re.search(r"(^|[\s;])(max-)?width:", body):
                for css_class in re.findall(r"\.([\w-]+)", selectors):
                    padded = [st for st in styles(message.html, css_class)
                              if re.search(r"padding[\w-]*: [^;]*[1-9]", st)]
                    assert padded == [], (lang, css_class, body)


@pytest.mark.parametrize("lang", LANGS)
def test_the_preheader_is_hidden_without_a_colour(project: Path, lang: str) -> None:
    (style,) = styles(messages(project)[lang].html, "preheader")
    assert "display: none" in style and "mso-hide: all" in style
    assert "color" not in style  # same-colour text is what spam filters score


def test_the_quotation_reads_as_its_language_says(project: Path) -> None:
    sent = messages(project)
    fr, ja = sent["fr"], sent["ja"]
    assert "— Xavier Bertrand, Président de la Région Hauts-de-France" in fr.html
    assert "— Xavier Bertrand, Président de la Région Hauts-de-France" in fr.text
    attribution = "——グザヴィエ・ベルトラン（オー＝ド＝フランス地域圏議会議長）"
    assert attribution in without_phrase_breaks(ja.html) and attribution in ja.text
    assert "（フランス語からの翻訳です。）" in ja.text
    assert all("font-style: normal" in s for s in styles(ja.html, "quote-text"))
    assert all("font-style: italic" in s for s in styles(fr.html, "quote-text"))


def test_a_quotation_kept_in_japanese_is_marked_japanese_in_every_email(project: Path) -> None:
    said = "日本はオー＝ド＝フランスの誠実なパートナーです。"
    path = project / EDITION
    text = path.read_text(encoding="utf-8")
    start = text.index("  - type: quote")
    quote = text[start:text.index("  - type: cta")]
    kept = re.sub(r"    text:\n.*?    author:",
                  f"    text:\n      fr: {said}\n      en: {said}\n      ja: {said}\n    author:",
                  quote, flags=re.S).replace("original_language: fr", "original_language: ja")
    path.write_text(text.replace(quote, kept), encoding="utf-8")
    for lang, message in messages(project).items():
        assert f"「{said}」" in without_phrase_breaks(message.html), lang
        assert f"「{said}」" in message.text, lang
        table = re.search(r'<table[^>]*class="quote"[^>]*>', message.html)
        assert table is not None
        assert ('lang="ja"' in table.group(0)) == (lang != "ja"), lang
        assert all("font-style: normal" in s for s in styles(message.html, "quote-text")), lang
        # The original words, so not a translation.
        assert "Traduit" not in message.text and "Translated" not in message.text, lang


@pytest.mark.parametrize("lang", LANGS)
def test_the_charset_is_declared_in_the_first_1024_bytes(project: Path, lang: str) -> None:
    # The HTML sniffing window (WHATWG "prescan a byte stream to determine its encoding").
    html = messages(project)[lang].html.encode("utf-8")
    assert html.find(b'<meta charset="utf-8">') in range(0, 1024 - 22)
    assert b"@media" in html  # the @media rules are still there, after it


def test_the_footer_club_name_wins_over_the_footer_grey(project: Path) -> None:
    for lang, message in messages(project).items():
        (style,) = styles(message.html, "footer-club")
        assert "color: #1f3a5f" in style and "#4a4a4a" not in style, lang


def test_no_inlined_text_is_under_14px(project: Path) -> None:
    for lang, message in messages(project).items():
        sizes = [int(n) for n in re.findall(r"font-size: (\d+)px", message.html)]
        # font-size 0 on the figures' row removes the gaps between inline-blocks.
        assert sizes and min(s for s in sizes if s) >= 14, lang


def test_french_inside_japanese_is_marked_french(project: Path) -> None:
    sent = messages(project)
    # The name's hyphenated word is kept on one line (a span of its own).
    marked = ('<span lang="fr">Club Japon des <span class="nobr" style="white-space: nowrap;">'
              'Hauts-de-France</span></span>')
    assert sent["ja"].html.count(marked) == 2  # the masthead and the footer
    assert marked not in sent["fr"].html and marked not in sent["en"].html
