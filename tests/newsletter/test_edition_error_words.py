"""The edition file's mistakes in plain words, through the real CLI: a table of broken files
and the exact line each gets (issue 24, item 4). No PyYAML or pydantic words reach anyone."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.newsletter.cli import run_cli
from tests.newsletter.conftest import SLUG

TITLE_EN = '  en: "Ever stronger ties between the Region and Japan"'
TITLE_FR = '  fr: "Des liens toujours plus forts entre la Région et le Japon"'
CTA_END = "    # No url: the button"
QUOTE_IT = "put this text in quotes"

# (id, text in the file, what replaces it, the line the message names (its text), message)
CASES = [
    ("colon-in-french", TITLE_FR, "  fr: Et maintenant ? La suite : nos engagements",
     "fr: Et maintenant",
     QUOTE_IT + ": a colon followed by a space starts a new field in YAML "
     "(line {n}: fr: Et maintenant ? La suite : nos engagements)"),
    ("indent-3-spaces", TITLE_EN, "   " + TITLE_EN.lstrip(), 'en: "Ever',
     "wrong indentation: this key should start in column 3 (2 spaces before it), like 'fr' "
     "on line {above} (line {n}: " + TITLE_EN.strip() + ")"),
    ("indent-1-space", TITLE_EN, " " + TITLE_EN.lstrip(), 'en: "Ever',
     "wrong indentation: this key should start in column 3 (2 spaces before it), like 'fr' "
     "on line {above} (line {n}: " + TITLE_EN.strip() + ")"),
    ("tab", TITLE_EN, "\t" + TITLE_EN.lstrip(), 'en: "Ever',
     "a tab in the indentation: YAML indents with spaces only, replace it by spaces "
     "(line {n}: " + TITLE_EN.strip() + ")"),
    ("quote-not-closed", TITLE_EN, TITLE_EN[:-1], 'en: "Ever',
     "the quotation mark opened on line {n} is not closed on its line: close it at the end of "
     "the text (line {n}: " + TITLE_EN.strip()[:-1] + ")"),
    ("apostrophe-in-single-quotes", TITLE_EN, "  en: 'l'avenir'", "en: 'l'",
     QUOTE_IT + " from its first character to its last: text goes on after the closing quote "
     "(inside 'single quotes' write an apostrophe twice: 'l''avenir', or use \"double quotes\") "
     "(line {n}: en: 'l'avenir')"),
    ("starts-with-at", TITLE_EN, "  en: @club news", "en: @club",
     QUOTE_IT + ": in YAML a text cannot start with '@' (line {n}: en: @club news)"),
    ("colon-missing", "title:\n", "title\n", "title",
     "a colon is missing after the field name on line {n}: write 'title:' (line {n}: title)"),
    ("bracket-not-closed", "languages: [fr, en, ja]", "languages: [fr, en, ja", "languages:",
     "a '{{' or '[' opened on this line is not closed on it: close it, or write the fields one "
     "per line (line {n}: languages: [fr, en, ja)"),
    ("typo-key", "preheader:", "preheadr:", "preheadr:",
     "preheadr: unknown key: did you mean 'preheader'?"),
    ("per-language-url", CTA_END, "    url: {fr: 'https://a.fr', en: 'https://a.com'}\n"
     + CTA_END, "url: {fr",
     "sections[6].url.ja: missing translation: write the text in ja, or take ja out of "
     "languages"),
    ("text-not-per-language", "venue:\n  fr: Opéra de Lille\n  en: Opéra de Lille\n"
     "  ja: リール・オペラ座\n", "venue: Opéra de Lille\n", "venue:",
     "venue: expected one text per language: fr, en, ja (found the text 'Opéra de Lille')"),
    ("number-as-text", "number: 3", "number: trois", "number:",
     "number: expected a whole number (found the text 'trois')"),
    ("section-type", "  - type: figures", "  - type: figure", "- type: figure",
     "sections[0]: unknown section type 'figure': did you mean 'figures'?"),
    ("a-number-for-a-text", "  fr: Lille", "  fr: 3", "fr: 3",
     "city.fr: expected a text (found the number 3): put it in quotes"),
    ("unknown-language", "  fr: Opéra de Lille", "  de: Opéra de Lille", "de: Opéra",
     "venue.de: unknown language 'de': expected one of fr, en, ja"),
    # A check of a whole section speaks its own words (not "expected a group of fields").
    ("image-url-without-size", "\nsections:\n",
     "\nsections:\n  - type: image\n    url: https://club.example.org/a.png\n"
     "    alt: { fr: Photo, en: Photo, ja: 写真 }\n", "- type: image",
     "sections[0]: an image given by url needs its width and height in pixels"),
]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A project with the editions and templates, nothing else."""
    shutil.copytree(REPO / "config" / "editions", tmp_path / "config" / "editions")
    shutil.copytree(REPO / "templates", tmp_path / "templates")
    return tmp_path


def _break(home: Path, old: str, new: str) -> tuple[Path, list[str]]:
    path = home / "config" / "editions" / f"{SLUG}.yaml"
    text = path.read_text("utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), "utf-8")
    return path, path.read_text("utf-8").splitlines()


def _line(lines: list[str], start: str) -> int:
    return next(i for i, line in enumerate(lines, 1) if line.strip().startswith(start))


@pytest.mark.parametrize(("old", "new", "marker", "message"),
                         [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_each_broken_file_gets_its_plain_message(
    home: Path, old: str, new: str, marker: str, message: str
) -> None:
    path, lines = _break(home, old, new)
    n = _line(lines, marker)
    said = message.format(n=n, above=n - 1)
    result = run_cli(home, "edition", "check", SLUG)
    assert result.returncode == 2, result.stdout
    assert result.stderr.splitlines() == [f"edition error: {path}:{n}: {said}"]


def test_every_unknown_key_gets_its_own_line_and_did_you_mean(home: Path) -> None:
    path, lines = _break(home, "number: 3\n", "number: 3\nsumary: x\nfoo: bar\n")
    result = run_cli(home, "edition", "check", SLUG)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"edition error: {path}:{_line(lines, 'sumary')}: sumary: unknown key: did you mean "
        "'summary'?",
        f"edition error: {path}:{_line(lines, 'foo')}: foo: unknown key: expected one of "
        "number, date, status, public, languages, venue, city, subject, preheader, title, "
        "summary, opening, closing, sections, audience",
    ]
    assert "more)" not in result.stderr


@pytest.mark.parametrize("command", [["preview", SLUG, "--check"], ["preview", SLUG],
                                     ["send", SLUG, "--dry-run"], ["edition", "check", SLUG]],
                         ids=["preview-check", "preview", "send", "edition-check"])
def test_every_command_says_it_the_same_way(home: Path, command: list[str]) -> None:
    path, lines = _break(home, TITLE_FR, "  fr: Et maintenant ? La suite : nos engagements")
    result = run_cli(home, *command)
    assert result.returncode == 2
    n = _line(lines, "fr: Et maintenant")
    assert result.stderr.splitlines() == [
        f"edition error: {path}:{n}: {QUOTE_IT}: a colon followed by a space starts a new field "
        f"in YAML (line {n}: fr: Et maintenant ? La suite : nos engagements)"]
    for words in ("mapping values", "Input should", "configuration error", "pydantic"):
        assert words not in result.stderr
