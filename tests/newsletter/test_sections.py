"""Every section type loads, renders in both parts, and refuses what it must."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from clubjapon_ops.errors import ConfigError
from clubjapon_ops.newsletter.content import load_edition
from clubjapon_ops.newsletter.service import SAMPLE_CONTACTS, load_newsletter
from clubjapon_ops.newsletter.typography import without_phrase_breaks
from clubjapon_ops.settings import Settings

SLUG = "2026-06-18-amiens"


def loc(text: str) -> dict[str, str]:
    return {"fr": f"{text} (fr)", "en": f"{text} (en)", "ja": f"{text}（ja）"}


def every_section() -> dict[str, Any]:
    return {
        "number": 4, "date": "2026-06-18", "status": "ready", "languages": ["fr", "en", "ja"],
        "venue": loc("Citadelle"), "city": loc("Amiens"), "subject": loc("Sujet"),
        "preheader": loc("Chapeau"), "title": loc("Titre"), "summary": loc("Résumé"),
        "sections": [
            {"type": "image", "url": "https://club.example.org/a.png", "alt": loc("Photo"),
             "width": 600, "height": 240, "link": "https://club.example.org/album"},
            {"type": "text", "heading": loc("Texte"),
             "paragraphs": [loc("Premier paragraphe"), loc("Second paragraphe")]},
            {"type": "figures", "heading": loc("Chiffres"),
             "items": [{"value": loc("42"), "label": loc("Réponses")}]},
            {"type": "quote", "text": loc("Une citation"), "author": loc("Auteur"),
             "role": loc("Rôle"), "original_language": "en"},
            {"type": "panels", "items": [
                {"title": loc("Débat"), "speakers": [{"name": loc("Oratrice"),
                                                      "role": loc("Directrice")}]}]},
            {"type": "list", "heading": loc("Étapes"), "items": [loc("Tokyo"), loc("Osaka")]},
            {"type": "cta", "label": loc("S’inscrire"), "url": "https://club.example.org/in"},
        ],
    }


def write(project: Path, data: dict[str, Any]) -> Path:
    path = project / "config" / "editions" / f"{SLUG}.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), "utf-8")
    return path


def test_every_section_type_renders_in_both_parts(
    project: Path, project_settings: Settings
) -> None:
    write(project, every_section())
    newsletter = load_newsletter(project_settings, SLUG)
    for lang in ("fr", "en", "ja"):
        message = newsletter.personalise(SAMPLE_CONTACTS[lang])
        for part in (without_phrase_breaks(message.html), message.text):
            for text in ("Premier paragraphe", "Second paragraphe", "42", "Réponses",
                         "Une citation", "Débat", "Oratrice", "Directrice", "Étapes",
                         "Tokyo", "Osaka", "S’inscrire", "Photo"):
                suffix = "（ja）" if lang == "ja" else f" ({lang})"
                expected = text if text == "42" else f"{text}{suffix}"
                assert expected in part, (lang, text)
            assert "https://club.example.org/in" in part
            assert "https://club.example.org/album" in part
    html = newsletter.personalise(SAMPLE_CONTACTS["fr"]).html
    [img] = re.findall(r"<img [^>]*>", html)
    for attribute in ('src="https://club.example.org/a.png"', 'alt="Photo (fr)"',
                      'width="600"', 'height="240"'):
        assert attribute in img
    assert html.index("Photo (fr)") < html.index("Premier paragraphe") < html.index("Étapes")
    assert 'class="quote-note"' in html  # said in English: the French says it is translated
    assert "Traduit de l’anglais." in html  # not "du anglais"


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ({"type": "image", "url": "https://x.example/a.png", "width": 10, "height": 10},
         r"sections\[0\]\.alt: missing: add it \(one text per language: fr, en, ja\)"),
        ({"type": "image", "url": "http://x.example/a.png", "alt": loc("a"), "width": 10,
          "height": 10}, r"sections\[0\]\.url: .*https://"),
        ({"type": "cta", "label": loc("a"), "url": "javascript:alert(1)"},
         r"sections\[0\]\.url: .*mailto:"),
        ({"type": "text", "heading": loc("a"), "paragraphs": [{"fr": "x", "en": "y"}]},
         r"sections\[0\]\.paragraphs\[0\]\.ja: missing translation"),
        ({"type": "list", "heading": loc("a"), "items": [loc("b"), {"fr": "c"}]},
         r"sections\[0\]\.items\[1\]\.en: missing translation"),
        ({"type": "gallery"}, r"sections\[0\]: .*'gallery'"),
    ],
    ids=["image-without-alt", "image-over-http", "cta-javascript", "paragraph-untranslated",
         "list-item-untranslated", "unknown-type"],
)
def test_bad_sections_are_named_with_file_and_line(
    project: Path, section: dict[str, Any], expected: str
) -> None:
    data = every_section()
    data["sections"] = [section]
    path = write(project, data)
    with pytest.raises(ConfigError) as info:
        load_edition(path)
    message = str(info.value)
    assert re.match(rf"{re.escape(str(path))}:\d+: ", message), message
    assert re.search(expected, message), message
    line = int(message[len(str(path)) + 1:].split(":")[0])
    assert line > path.read_text("utf-8").splitlines().index("sections:")


def test_a_mailto_button_and_a_button_without_url(
    project: Path, project_settings: Settings
) -> None:
    data = every_section()
    data["sections"] = [{"type": "cta", "label": loc("Écrire"), "url": "mailto:a@example.org"},
                        {"type": "cta", "label": loc("Écrire au club")}]
    write(project, data)
    html = load_newsletter(project_settings, SLUG).personalise(SAMPLE_CONTACTS["fr"]).html
    assert 'href="mailto:a@example.org"' in html
    assert f"?subject=Club%20Japon%20{SLUG}" in html
