"""Load errors for the mistakes people make typing an edition: keys and dates."""

from __future__ import annotations

from pathlib import Path

import pytest

from clubjapon_ops.errors import ConfigError
from clubjapon_ops.newsletter.content import load_edition
from tests.newsletter.conftest import SLUG, edit


def error_of(path: Path) -> tuple[int, str]:
    with pytest.raises(ConfigError) as info:
        load_edition(path)
    rest = str(info.value)[len(str(path)) + 1:]
    line, message = rest.split(":", 1)
    return int(line), message.strip()


def line_of(path: Path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text("utf-8").splitlines(), 1)
                if line.strip().startswith(text))


@pytest.mark.parametrize(
    ("old", "new", "key", "meant"),
    [
        ("preheader:", "preheadr:", "preheadr", "preheader"),
        ("    paragraphs:", "    paragraph:", "sections[2].paragraph", "paragraphs"),
        ("    original_language: fr", "    original_langage: fr",
         "sections[5].original_langage", "original_language"),
    ],
    ids=["top-level", "in-a-section", "in-the-quote"],
)
def test_an_unknown_key_is_named_on_its_line_with_a_did_you_mean(
    project: Path, old: str, new: str, key: str, meant: str
) -> None:
    path = project / "config" / "editions" / f"{SLUG}.yaml"
    edit(path, old, new)
    line, message = error_of(path)
    assert line == line_of(path, new.strip())
    assert message.startswith(f"{key}: unknown key"), message
    assert f"did you mean '{meant}'?" in message


def test_an_unknown_key_without_a_close_name_lists_the_keys(project: Path) -> None:
    path = project / "config" / "editions" / f"{SLUG}.yaml"
    edit(path, "number: 3\n", "number: 3\nfoo: bar\n")
    line, message = error_of(path)
    assert line == line_of(path, "foo:")
    assert message.startswith("foo: unknown key") and "preheader" in message


@pytest.mark.parametrize("written", ["12/03/2026", "2026-3-12", "12 mars 2026", "2026-13-12"])
def test_a_date_in_another_format_says_what_is_expected(project: Path, written: str) -> None:
    path = project / "config" / "editions" / f"{SLUG}.yaml"
    edit(path, "date: 2025-11-04", f"date: {written}")
    line, message = error_of(path)
    assert line == line_of(path, "date:")
    assert message.startswith("date: expected a date written YYYY-MM-DD, like 2026-03-12"), message
