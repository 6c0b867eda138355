"""The preview shows a draft like any edition, under a DRAFT banner."""

from __future__ import annotations

from pathlib import Path

from flask.testing import FlaskClient

from tests.web.conftest import SLUG


def test_a_draft_is_shown_with_a_banner(preview: FlaskClient, home: Path) -> None:
    assert 'id="draft"' not in preview.get(f"/preview/{SLUG}?lang=fr").get_data(as_text=True)
    path = home / "config" / "editions" / f"{SLUG}.yaml"
    path.write_text(path.read_text("utf-8").replace("status: ready", "status: draft", 1),
                    encoding="utf-8")
    page = preview.get(f"/preview/{SLUG}?lang=fr")
    body = page.get_data(as_text=True)
    assert page.status_code == 200
    assert 'id="draft"' in body and "DRAFT" in body
    assert "Des liens toujours plus forts" in preview.get(
        f"/preview/{SLUG}/email.html?lang=fr").get_data(as_text=True)


def test_the_page_lists_the_placeholders_left(preview: FlaskClient, home: Path) -> None:
    path = home / "config" / "editions" / f"{SLUG}.yaml"
    path.write_text(path.read_text("utf-8").replace("  en: Two round tables", "  en: TO COMPLETE",
                                                    1), encoding="utf-8")
    body = preview.get(f"/preview/{SLUG}?lang=fr").get_data(as_text=True)
    assert "TO COMPLETE is still there" in body and "sections[3].heading.en" in body
