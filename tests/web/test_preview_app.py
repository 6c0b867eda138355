"""The preview app: unknown editions are a 404, and no page shows an absolute path."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask.testing import FlaskClient

from clubjapon_ops.web.preview import relative
from tests.web.conftest import SLUG, STORED, assert_no_absolute_path

PARTS = ("", "/email.html", "/email.txt")


@pytest.mark.parametrize("part", PARTS)
@pytest.mark.parametrize("name", ["2031-01-01-nowhere", "..", "2025-11-04-LILLE", "%2e%2e%5cx",
                                  "a" * 300])
def test_an_unknown_edition_is_a_404_without_a_path(
    preview: FlaskClient, home: Path, name: str, part: str
) -> None:
    answer = preview.get(f"/preview/{name}{part}?lang=fr")
    assert answer.status_code == 404
    assert_no_absolute_path(answer.get_data(as_text=True), home)


def test_the_preview_lists_the_stored_contacts(preview: FlaskClient) -> None:
    page = preview.get(f"/preview/{SLUG}?lang=ja&contact={STORED}")
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    assert STORED in body and "佐藤様" in body


@pytest.mark.parametrize("part", PARTS)
def test_a_broken_edition_says_why_with_a_relative_path(
    preview: FlaskClient, home: Path, part: str
) -> None:
    path = home / "config" / "editions" / f"{SLUG}.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("number: 3\n", ""),
                    encoding="utf-8")
    answer = preview.get(f"/preview/{SLUG}{part}?lang=en")
    body = answer.get_data(as_text=True)
    assert answer.status_code == 500
    assert f"config/editions/{SLUG}.yaml:" in body and "number: missing: add it" in body
    assert_no_absolute_path(body, home)


@pytest.mark.parametrize("part", PARTS)
def test_a_broken_template_names_it_with_a_relative_path(
    preview: FlaskClient, home: Path, part: str
) -> None:
    template = home / "templates" / "newsletter" / "email.html.j2"
    template.write_text(template.read_text(encoding="utf-8").replace(
        "{{ L(edition.title) }}", "{{ L(edition.title) ", 1), encoding="utf-8")
    answer = preview.get(f"/preview/{SLUG}{part}?lang=fr")
    body = answer.get_data(as_text=True)
    assert answer.status_code == 500
    assert "templates/newsletter/email.html.j2" in body
    assert_no_absolute_path(body, home)


@pytest.mark.parametrize(("text", "shown"), [
    ("ROOT/config/editions/x.yaml:3: number: Field required",
     "config/editions/x.yaml:3: number: Field required"),
    ("no edition 'x' in ROOT/config/editions (editions: a, b)",
     "no edition 'x' in config/editions (editions: a, b)"),
    ("/usr/lib/python3/site-packages/jinja2/x.py:12: boom", "x.py:12: boom"),
    ("see https://example.org/a/b/c", "see https://example.org/a/b/c"),
])
def test_messages_lose_their_absolute_paths(home: Path, text: str, shown: str) -> None:
    assert relative(text.replace("ROOT", str(home)), home) == shown
    assert relative("/etc/x/y.yaml: bad", Path("/")) == "y.yaml: bad"
