"""Every message links to its page in the public archive, in both parts, near the top."""

from __future__ import annotations

from pathlib import Path

import pytest

from clubjapon_ops.delivery.newsletter_check import check_newsletter
from clubjapon_ops.newsletter.service import SAMPLE_CONTACTS, load_newsletter
from clubjapon_ops.newsletter.typography import without_phrase_breaks
from clubjapon_ops.settings import load_settings

SLUG = "2025-11-04-lille"
LABELS = {"fr": "Voir la version en ligne", "en": "View online", "ja": "ブラウザで見る"}
REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("lang", ["fr", "en", "ja"])
def test_both_parts_link_to_the_archive_page(lang: str) -> None:
    settings = load_settings(REPO, environ={"CLUBJAPON_PUBLIC_URL": "https://club.example.org"})
    message = load_newsletter(settings, SLUG).personalise(SAMPLE_CONTACTS[lang])
    url = f"https://club.example.org/editions/{SLUG}/{lang}"
    link = f'href="{url}"'
    assert link in message.html and LABELS[lang] in without_phrase_breaks(message.html)
    # Near the top: before the masthead, as mail clients place it.
    assert message.html.index(link) < message.html.index('class="masthead"')
    assert url in message.text and LABELS[lang] in message.text
    assert message.text.index(url) < message.text.index("\n\n", message.text.index(url) - 1) + 2
    assert message.text.index(url) < len(message.text) // 4


def test_the_lint_accepts_the_link() -> None:
    settings = load_settings(REPO, environ={})
    problems = check_newsletter(settings, SLUG)
    assert [p for p in problems if p.level == "error"] == []
