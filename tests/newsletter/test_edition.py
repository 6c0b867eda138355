from __future__ import annotations

import os
import re
import shutil
from html import unescape
from pathlib import Path
from typing import Any

import pytest

from clubjapon_ops.errors import ConfigError
from clubjapon_ops.newsletter.content import Edition, load_edition
from clubjapon_ops.newsletter.service import SAMPLE_CONTACTS, load_newsletter
from clubjapon_ops.settings import Settings, load_settings
from tests.conftest import REPO
from tests.newsletter.conftest import SLUG, edit

# The Region's article that the edition's facts and quotations come from.
ARTICLE = REPO / "config" / "editions" / "sources" / f"{SLUG}.txt"
EDITION = REPO / "config" / "editions" / f"{SLUG}.yaml"


def squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def of_type(edition: Edition, kind: str) -> list[Any]:
    return [section for section in edition.sections if section.type == kind]


def rendered_french() -> str:
    """The French HTML part as a reader reads it: tags, styles and entities gone."""
    newsletter = load_newsletter(load_settings(REPO, environ={}), SLUG)
    html = newsletter.personalise(SAMPLE_CONTACTS["fr"]).html
    html = re.sub(r"<(style|head)\b.*?</\1>", " ", html, flags=re.S)
    html = re.sub(r'<p class="card-number".*?</p>', " ", html)  # the panels' numbering
    return squash(unescape(re.sub(r"<[^>]+>", " ", html)))


def test_the_edition_loads_with_its_slug_and_languages() -> None:
    edition = load_edition(EDITION)
    assert edition.slug == SLUG
    assert edition.number == 3
    assert str(edition.date) == "2025-11-04"
    assert edition.status == "ready"
    assert edition.languages == ["fr", "en", "ja"]
    assert edition.venue["fr"] == "Opéra de Lille"
    assert edition.city["fr"] == "Lille"
    [panels] = of_type(edition, "panels")
    assert len(panels.items) == 2
    assert [s.type for s in edition.sections] == [
        "figures", "list", "text", "panels", "text", "quote", "cta"]


def test_the_rendered_quotation_and_titles_are_the_articles() -> None:
    edition = load_edition(EDITION)
    [quote] = of_type(edition, "quote")
    [panels] = of_type(edition, "panels")
    article = squash(ARTICLE.read_text(encoding="utf-8"))
    rendered = rendered_french()
    assert squash(quote.text["fr"]) in article
    assert f"« {squash(quote.text['fr'])} »" in rendered
    assert f"» - {quote.author['fr']}, {quote.role['fr']}" in article
    assert f"— {quote.author['fr']}, {quote.role['fr']}" in rendered
    for table in panels.items:
        assert f"« {table.title['fr']} »" in article
        assert table.title["fr"] in rendered


def test_no_number_in_the_rendered_french_is_missing_from_the_article() -> None:
    article = ARTICLE.read_text(encoding="utf-8").replace("\u202f", " ").replace("\xa0", " ")
    allowed = set(re.findall(r"\d[\d ]*\d|\d", article)) | {"3"}  # 3 = "troisième" édition
    rendered = rendered_french().replace("\u202f", " ").replace("\xa0", " ")
    numbers = set(re.findall(r"\d[\d ]*\d|\d", rendered))
    assert {"80", "10 000", "2025"} <= numbers
    assert numbers - allowed == set()


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("number: 3\n", "", r":\d+: number: missing: add it \(a whole number\)"),
        ("  ja: リール・オペラ座\n", "  de: Lille-Oper\n",
         r":\d+: venue\.de: unknown language 'de'"),
        ("      ja: 主な分野\n", "", r":\d+: sections\[1\]\.heading\.ja: missing translation"),
        ("date: 2025-11-04", "date: 2025-13-45", r":\d+: date: expected a date written YYYY-MM-DD"),
        ("    items:\n      - title:", "    items:\n      - titel:",
         r":\d+: sections\[3\]\.items\[0\]\."),
    ],
    ids=["missing-field", "unknown-language", "missing-translation", "bad-date", "bad-key"],
)
def test_schema_errors_name_file_field_and_line(
    project: Path, old: str, new: str, expected: str
) -> None:
    path = project / "config" / "editions" / f"{SLUG}.yaml"
    edit(path, old, new)
    with pytest.raises(ConfigError) as info:
        load_edition(path)
    message = str(info.value)
    assert message.startswith(str(path))
    assert re.search(expected, message), message


def test_error_line_points_at_the_field(project: Path) -> None:
    path = project / "config" / "editions" / f"{SLUG}.yaml"
    edit(path, "  ja: リール・オペラ座\n", "  xx: ?\n")
    lines = path.read_text(encoding="utf-8").splitlines()
    with pytest.raises(ConfigError) as info:
        load_edition(path)
    line = int(str(info.value).split(":")[1])
    assert lines[line - 1].strip() == "xx: ?"


def test_invalid_yaml_names_the_line(project: Path) -> None:
    path = project / "config" / "editions" / f"{SLUG}.yaml"
    path.write_text("number: 3\nvenue: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError,
                       match=r":2: a '\{' or '\[' opened on this line is not closed on it"):
        load_edition(path)


def test_a_file_too_deep_is_a_config_error(project: Path) -> None:
    path = project / "config" / "editions" / f"{SLUG}.yaml"
    path.write_text("number: " + "[" * 5000 + "]" * 5000 + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"nested too deeply"):
        load_edition(path)


@pytest.mark.parametrize(("text", "line"), [
    ("number: 3\nvenue: &v [*v]\n", 2),  # an alias inside itself: a list that holds itself
    ("number: 3\nvenue: &v {fr: *v}\n", 2),
    ("number: 3\ntitle: {fr: a}\n\nvenue: {fr: b, en: &x b}\n", 4),  # an anchor alone
    ("number: 3\nbase: {fr: a}\nvenue:\n  <<: *base\n", 4),  # a merge key is an alias too
])
def test_an_anchor_or_alias_is_refused_naming_its_line(
    project: Path, text: str, line: int
) -> None:
    path = project / "config" / "editions" / f"{SLUG}.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_edition(path)
    assert str(info.value).startswith(f"{path}:{line}: YAML anchors and aliases")


@pytest.mark.parametrize(
    ("inserted", "code"),
    [("Opéra\ue000foo\ue001 de Lille", "U+E000"), ("Opéra\ue001 de Lille", "U+E001"),
     ("Opéra\ue000greeting\ue001 de Lille", "U+E000"), ('"Opéra\\uE000 de Lille"', "U+E000")],
    ids=["unknown-slot", "lone-close", "real-slot", "yaml-escape"],
)
def test_slot_marker_characters_are_refused_with_file_and_line(
    project: Path, project_settings: Settings, inserted: str, code: str
) -> None:
    # The renderer marks a contact's slots with these two private-use characters: in an
    # edition they raised KeyError (unknown slot) or pulled in the reader's greeting.
    path = project / "config" / "editions" / f"{SLUG}.yaml"
    edit(path, "  fr: Opéra de Lille", f"  fr: {inserted}")
    line = next(i for i, text in enumerate(path.read_text("utf-8").splitlines(), 1)
                if inserted in text)
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(path))}:{line}: .*{re.escape(code)}"):
        load_edition(path)
    with pytest.raises(ConfigError, match=re.escape(code)):
        load_newsletter(project_settings, SLUG)


def test_an_edited_edition_is_read_anew_even_with_the_same_size_and_time(tmp_path: Path) -> None:
    # Long-running apps (the preview, the archive) keep parsed editions: never a stale one.
    path = tmp_path / "2025-11-04-lille.yaml"
    shutil.copy(REPO / "config" / "editions" / "2025-11-04-lille.yaml", path)
    before = path.stat()
    first = load_edition(path)
    text = path.read_text(encoding="utf-8")
    assert "Opéra de Lille" in text
    path.write_text(text.replace("Opéra de Lille", "Opéra de Lyon!"), encoding="utf-8")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_size == before.st_size
    again = load_edition(path)
    assert "Opéra de Lille" in first.venue["fr"] and "Opéra de Lyon!" in again.venue["fr"]
    assert load_edition(path) is again  # unchanged since: parsed once
