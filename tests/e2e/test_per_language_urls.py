"""Any URL may be given per language (issue 24, item 5): the button, the image and its link;
each reader gets their language's form, in both parts, through the real CLI."""

from __future__ import annotations

import email
import re
from email import policy
from pathlib import Path

import pytest

from tests.e2e.test_media import SLUG, cli, home  # noqa: F401

pytestmark = pytest.mark.e2e
FORMS = {"fr": "https://club.example.org/inscription",
         "en": "https://club.example.org/en/register",
         "ja": "https://club.example.org/ja/touroku"}
PHOTOS = {lang: f"https://club.example.org/{lang}/photo.png" for lang in FORMS}
ALBUMS = {lang: f"https://club.example.org/{lang}/album" for lang in FORMS}


def per_language(urls: dict[str, str], indent: str) -> str:
    return "".join(f"\n{indent}{lang}: {url}" for lang, url in urls.items())


def with_sections(home: Path, forms: dict[str, str]) -> None:  # noqa: F811
    path = home / "config" / "editions" / f"{SLUG}.yaml"
    text = path.read_text(encoding="utf-8")
    sections = (
        "  - type: image\n"
        f"    url:{per_language(PHOTOS, '      ')}\n"
        f"    link:{per_language(ALBUMS, '      ')}\n"
        "    alt: { fr: Photo, en: Photo, ja: 写真 }\n"
        "    width: 600\n    height: 300\n"
        "  - type: cta\n"
        "    label: { fr: S'inscrire, en: Register, ja: 申し込む }\n"
        f"    url:{per_language(forms, '      ')}\n"
    )
    path.write_text(text.replace("\nsections:\n", "\nsections:\n" + sections, 1),
                    encoding="utf-8")


@pytest.mark.parametrize("lang", ["fr", "en", "ja"])
def test_each_reader_gets_the_urls_of_their_language(home: Path, lang: str) -> None:  # noqa: F811
    with_sections(home, FORMS)
    result = cli(home, "preview", SLUG, "--lang", lang, "--out", str(home / "out"))
    assert result.returncode == 0, result.stderr
    (eml,) = (home / "out").glob("*.eml")
    message = email.message_from_bytes(eml.read_bytes(), policy=policy.default)
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert f'href="{FORMS[lang]}"' in html
    assert f'src="{PHOTOS[lang]}"' in html
    assert f'href="{ALBUMS[lang]}"' in html
    assert FORMS[lang] in text and ALBUMS[lang] in text
    for other in set(FORMS) - {lang}:
        for urls in (FORMS, PHOTOS, ALBUMS):
            assert urls[other] not in html and urls[other] not in text


def test_a_url_missing_in_one_language_is_an_error_naming_it(home: Path) -> None:  # noqa: F811
    with_sections(home, {"fr": FORMS["fr"], "en": FORMS["en"]})
    result = cli(home, "preview", SLUG, "--check")
    assert result.returncode == 2
    assert re.search(r"sections\[1\]\.url\.ja: missing translation", result.stderr), \
        result.stderr


def test_a_bad_url_in_one_language_names_that_language(home: Path) -> None:  # noqa: F811
    with_sections(home, {**FORMS, "en": "http://club.example.org/en/register"})
    result = cli(home, "preview", SLUG, "--check")
    assert result.returncode == 2
    assert "sections[1].url.en" in result.stderr, result.stderr
    assert "https://" in result.stderr


def test_a_new_edition_from_one_with_urls_per_language_keeps_them(home: Path) -> None:  # noqa: F811
    with_sections(home, FORMS)
    made = cli(home, "edition", "new", "2026-06-18-amiens", "--from", SLUG)
    assert made.returncode == 0, made.stderr
    # The draft loads (its placeholders are the lint's errors, exit 1, not a refusal, exit 2).
    check = cli(home, "preview", "2026-06-18-amiens", "--check")
    assert check.returncode == 1, check.stdout + check.stderr
    assert "[placeholder]" in check.stdout
    draft = (home / "config" / "editions" / "2026-06-18-amiens.yaml").read_text("utf-8")
    assert all(url in draft for url in FORMS.values())


def test_a_sent_edition_counts_the_links_given_per_language(home: Path) -> None:  # noqa: F811
    # Review of the merge: the click rewriter knew sections by identity, and making a URL
    # plain per language copied the section: those links went out straight, uncounted,
    # while the report listed them with 0 clicks.
    with_sections(home, FORMS)
    assert cli(home, "sync").returncode == 0
    result = cli(home, "send", SLUG, "--yes")
    assert result.returncode == 0, result.stderr
    sent = list((home / "var" / "outbox" / SLUG).glob("*.eml"))
    assert sent
    for eml in sent:
        message = email.message_from_bytes(eml.read_bytes(), policy=policy.default)
        html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
        text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        for url in [*FORMS.values(), *ALBUMS.values()]:
            assert url not in html and url not in text, (eml.name, url)
        assert html.count("/r/") >= 2 and text.count("/r/") >= 2, eml.name
