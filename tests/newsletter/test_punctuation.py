"""Keyboard punctuation made typographic in French and English (issue 24, item 8): curly
apostrophes and quotes, … for "...", an en dash for " - " between words, in the HTML, the text
part and the subject, never inside URLs, e-mail addresses or `code`; through the real CLI."""

from __future__ import annotations

import email
import shutil
from email.message import Message
from email.policy import default
from html import unescape
from pathlib import Path

import pytest

from clubjapon_ops.newsletter.typography import NNBSP, typeset
from tests.conftest import REPO
from tests.newsletter.cli import run_cli
from tests.newsletter.conftest import SLUG, edit

URL = "https://club.example/l'avenir-de-l'ia/x...y-z"
ADDRESS = "o'brien@club.example"
FR = (f"d'affaires, \"la suite\" - voir... {URL} ou {ADDRESS}, et `l'option \"-x\"`")
EN = (f"Japan's \"ties\" - and 'more'... {URL} or {ADDRESS}, and `it's \"-x\"`")
WANT = {
    "fr": f"d’affaires, «{NNBSP}la suite{NNBSP}» – voir… {URL} ou {ADDRESS}, et "
          "`l'option \"-x\"`",
    "en": f"Japan’s “ties” – and ‘more’… {URL} or {ADDRESS}, and `it's \"-x\"`",
}


@pytest.fixture
def home(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "config" / "editions", tmp_path / "config" / "editions")
    shutil.copytree(REPO / "templates", tmp_path / "templates")
    path = tmp_path / "config" / "editions" / f"{SLUG}.yaml"
    edit(path, 'fr: "Des liens toujours plus forts entre la Région et le Japon"',
         "fr: " + _yaml(FR))
    edit(path, 'en: "Ever stronger ties between the Region and Japan"', "en: " + _yaml(EN))
    edit(path, 'fr: "Club Japon des Hauts-de-France : retour sur la 3e édition à l’Opéra de '
         'Lille"', "fr: " + _yaml("l'Opéra... \"retour\" - Lille"))
    edit(path, 'en: "Club Japon des Hauts-de-France: looking back on the 3rd edition in Lille"',
         "en: " + _yaml("Lille's \"3rd\" - back..."))
    return tmp_path


def _yaml(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _visible(html: str) -> str:
    return unescape(html.replace("<wbr>", ""))


def _parts(home: Path, lang: str) -> tuple[str, str, str]:
    out = home / "out"
    result = run_cli(home, "preview", SLUG, "--lang", lang, "--out", str(out))
    assert result.returncode == 0, result.stderr
    [eml] = out.glob(f"{lang}-*.eml")
    message: Message = email.message_from_bytes(eml.read_bytes(), policy=default)
    html = next(out.glob(f"{lang}-*.html")).read_text("utf-8")
    text = next(out.glob(f"{lang}-*.txt")).read_text("utf-8")
    return _visible(html), " ".join(text.split()), str(message["Subject"])


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_punctuation_is_set_in_html_text_and_subject(home: Path, lang: str) -> None:
    html, text, subject = _parts(home, lang)
    assert WANT[lang] in html
    assert " ".join(WANT[lang].split()) in " ".join(text.split())  # the title, underlined
    assert subject == {"fr": f"l’Opéra… «{NNBSP}retour{NNBSP}» – Lille",
                       "en": "Lille’s “3rd” – back…"}[lang]
    assert f'href="{URL}"' not in html  # the URL is text here, no link: kept as typed


def test_setting_twice_changes_nothing() -> None:
    for lang, text in (("fr", FR), ("en", EN)):
        once = typeset(text, lang)
        assert typeset(once, lang) == once
