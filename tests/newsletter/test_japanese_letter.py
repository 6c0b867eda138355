"""A letter as a Japanese business reader expects it (issue 23 item 6, issue 24 item 8):
an opening and a closing, 様 spaced after a romanised name, Japanese dates and separators;
and greetings in French and English that never use a kanji given name alone."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from clubjapon_ops.contacts import Contact
from clubjapon_ops.newsletter.service import Newsletter, load_newsletter
from clubjapon_ops.newsletter.typography import without_phrase_breaks
from clubjapon_ops.settings import Settings
from tests.newsletter.conftest import SLUG, edit

OPENING = "平素より大変お世話になっております。クラブ・ジャポン事務局でございます。"
CLOSING = "今後ともどうぞよろしくお願い申し上げます。"


@pytest.fixture
def newsletter(project_settings: Settings) -> Newsletter:
    return load_newsletter(project_settings, SLUG)


def reader(lang: str, first: str | None, last: str | None) -> Contact:
    return Contact(email="reader@example.com", source="csv", first_name=first, last_name=last,
                   language=lang)


def first_lines(newsletter: Newsletter, contact: Contact, count: int) -> list[str]:
    return newsletter.personalise(contact).text.split("\n")[:count]


@pytest.mark.parametrize(("lang", "first", "last", "greeting"), [
    ("ja", "陽翔", "佐藤", "佐藤様"),
    ("ja", "Kenji", "Takahashi", "Takahashi\u00a0様"),  # a space (no-break) before 様
    ("ja", None, "Watanabe", "Watanabe\u00a0様"),
    ("ja", "健二", None, "健二様"),
    ("ja", None, None, "ご担当者様"),
    # A kanji given name is never used alone: the family name with 様, or no name.
    ("en", "健二", "高橋", "Dear 高橋様,"),
    ("en", "健二", "Takahashi", "Dear Takahashi\u00a0様,"),
    ("en", "健二", None, "Hello,"),
    ("fr", "けんじ", "高橋", "Bonjour 高橋様,"),
    # A formal English greeting names the family name too where the CRM has both (issue 24).
    ("en", "Emily", "Clarke", "Dear Emily Clarke,"),
    ("en", "Kenji", "Takahashi", "Dear Kenji Takahashi,"),
    ("en", "Emily", None, "Dear Emily,"),
    ("en", None, "Clarke", "Hello,"),
    ("fr", "Camille", "Martin", "Bonjour Camille,"),
    ("en", "Marie-Christine", "佐藤", "Dear Marie-Christine 佐藤,"),
])
def test_the_greeting_names_the_reader_as_the_language_does(
    newsletter: Newsletter, lang: str, first: str | None, last: str | None, greeting: str
) -> None:
    message = newsletter.personalise(reader(lang, first, last))
    assert message.text.split("\n")[0] == greeting
    shown = re.search(r'<p class="greeting"[^>]*>(.*?)</p>', message.html, flags=re.S)
    assert shown is not None and shown.group(1).strip() == greeting


def test_the_japanese_letter_opens_and_closes_as_a_business_letter(
    newsletter: Newsletter,
) -> None:
    message = newsletter.personalise(reader("ja", "陽翔", "佐藤"))
    assert first_lines(newsletter, reader("ja", "陽翔", "佐藤"), 6) == [
        "佐藤様", OPENING, "", "地域圏と日本の絆、さらに強く", "=" * 28,
        "第3回\u30002025年11月4日（火）\u3000リール・オペラ座"]
    text = message.text
    assert text.index(CLOSING) > text.index("クラブ・ジャポンへのお問い合わせ")
    assert text.index(CLOSING) < text.index("-- \n")
    html = without_phrase_breaks(message.html)
    assert f">{OPENING}</p>" in html and '<p class="closing"' in html
    assert f">{CLOSING}</p>" in html
    # The masthead: Japanese separators and the weekday, no Latin "·".
    assert ">第3回\u30002025年11月4日（火）\u3000リール・オペラ座</p>" in html
    assert "·" not in html.split('class="masthead"')[1].split("</td>")[0]


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_french_and_english_have_no_opening_and_a_title_in_lower_case(
    newsletter: Newsletter, lang: str
) -> None:
    first = {"fr": "Camille", "en": "Emily"}[lang]
    title = {"fr": "Des liens toujours plus forts entre la Région et le Japon",
             "en": "Ever stronger ties between the Region and Japan"}[lang]
    message = newsletter.personalise(reader(lang, first, "Martin"))
    lines = message.text.split("\n")
    # The title as written, underlined (issue 23: not ALL-CAPS in the text part).
    assert lines[:4] == [lines[0], "", title, "=" * len(title)] and lines[0].endswith(",")
    assert 'class="opening"' not in message.html and 'class="closing"' not in message.html
    date = {"fr": "4 novembre 2025", "en": "4 November 2025"}[lang]
    assert date in lines[4]


def test_an_edition_gives_its_own_opening_and_an_empty_one_gets_the_house_s(
    project: Path, project_settings: Settings
) -> None:
    path = project / "config" / "editions" / f"{SLUG}.yaml"
    edit(path, "\nsections:\n",
         '\nopening:\n  ja: "いつもご支援を賜り、誠にありがとうございます。"\n'
         '  fr: "Chers membres du Club,"\nclosing:\n  ja: ""\n\nsections:\n')
    newsletter = load_newsletter(project_settings, SLUG)
    ja = newsletter.personalise(reader("ja", "陽翔", "佐藤")).text.split("\n")
    assert ja[1] == "いつもご支援を賜り、誠にありがとうございます。"
    assert CLOSING in ja  # left empty: the house's closing, never nothing
    fr = newsletter.personalise(reader("fr", "Camille", "Martin")).text.split("\n")
    assert fr[:2] == ["Bonjour Camille,", "Chers membres du Club,"]
    # Not a missing translation: en has no opening of its own, and gets none.
    en = newsletter.personalise(reader("en", "Emily", "Clarke")).text.split("\n")
    assert en[:2] == ["Dear Emily Clarke,", ""]


def test_the_lille_edition_reads_as_written_not_translated(newsletter: Newsletter) -> None:
    """Issue 23's review of the Lille file: translationese out, official names in."""
    text = {lang: newsletter.personalise(reader(lang, "A", "B")).text for lang in ("fr", "en")}
    text = {lang: re.sub(r"\s+", " ", part) for lang, part in text.items()}
    text["ja"] = newsletter.personalise(reader("ja", "A", "B")).text.replace("\n", "")
    for lang, flagged in {"ja": ["経済・公式ミッション", "意志という共通の志", "誠実なパートナー"],
                          "fr": ["la Keidanren", "data centers", "Osaka-Kansai"],
                          "en": ["Osaka-Kansai", "data centers"]}.items():
        assert [f for f in flagged if f in text[lang]] == [], lang
    assert "Expo 2025 Osaka, Kansai, Japan" in text["en"]
    assert "le Keidanren" in text["fr"] and "centres de données" in text["fr"]
    assert "2025年日本国際博覧会（大阪・関西万博）" in text["ja"]
    # The quotation stays the president's words, exactly as the Region published them.
    assert "Le Japon est un partenaire fidèle des Hauts-de-France." in text["fr"]
