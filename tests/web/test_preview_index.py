"""The preview's front page: every edition, newest first, drafts marked, broken files listed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from clubjapon_ops.errors import StoreError
from clubjapon_ops.store import Store
from clubjapon_ops.store import deliveries as ledger
from clubjapon_ops.web import create_preview_app
from tests.web.conftest import SLUG, assert_no_absolute_path, make_settings
from tests.web.payload import ESCAPED, PAYLOAD, injected, poison_edition

DRAFT = "2026-03-12-tokyo"
BROKEN = "2026-01-20-roubaix"


def _editions(home: Path) -> Path:
    return home / "config" / "editions"


def add_draft(home: Path) -> None:
    """A second, newer edition that is still a draft (English and Japanese only)."""
    text = (_editions(home) / f"{SLUG}.yaml").read_text(encoding="utf-8")
    text = text.replace("date: 2025-11-04", "date: 2026-03-12").replace(
        "status: ready", "status: draft").replace("number: 3", "number: 4")
    (_editions(home) / f"{DRAFT}.yaml").write_text(text, encoding="utf-8")


def add_broken(home: Path, line: str = "number: [\n") -> None:
    """An edition file that does not load."""
    (_editions(home) / f"{BROKEN}.yaml").write_text(line, encoding="utf-8")


def index(client: FlaskClient) -> str:
    answer = client.get("/")
    assert answer.status_code == 200
    assert answer.mimetype == "text/html"
    body = answer.get_data(as_text=True)
    assert injected(body) == []
    return body


def test_the_index_lists_every_edition_newest_first(preview: FlaskClient, home: Path) -> None:
    add_draft(home)
    add_broken(home)
    body = index(preview)
    rows = re.findall(r'<li class="edition[^"]*" id="edition-([^"]+)"', body)
    assert rows == [DRAFT, BROKEN, SLUG]
    assert f'href="/preview/{SLUG}?lang=ja"' in body
    assert f'href="/preview/{DRAFT}?lang=en"' in body


def test_a_draft_is_marked(preview: FlaskClient, home: Path) -> None:
    add_draft(home)
    body = index(preview)
    draft = body.split(f'id="edition-{DRAFT}"')[1].split("</li>")[0]
    ready = body.split(f'id="edition-{SLUG}"')[1].split("</li>")[0]
    assert 'class="status draft">DRAFT<' in draft and "2026-03-12" in draft
    assert 'class="status ready">ready<' in ready and "2025-11-04" in ready


def test_a_malformed_edition_is_listed_with_its_error(preview: FlaskClient, home: Path) -> None:
    add_broken(home)
    body = index(preview)
    broken = body.split(f'id="edition-{BROKEN}"')[1].split("</li>")[0]
    assert "invalid" in broken and f"config/editions/{BROKEN}.yaml:" in broken
    assert "is not closed on it" in broken
    assert f'href="/preview/{BROKEN}' not in broken  # nothing to preview
    assert f'id="edition-{SLUG}"' in body  # the others are still listed
    assert_no_absolute_path(body, home)


def test_no_edition_is_a_page_saying_so(preview: FlaskClient, home: Path) -> None:
    (_editions(home) / f"{SLUG}.yaml").unlink()
    body = index(preview)
    assert "No edition yet" in body and "clubjapon-ops edition new" in body


def test_the_ledger_counts_show_when_the_store_has_them(
    preview: FlaskClient, home: Path, web_store: Store
) -> None:
    with web_store.transaction() as conn:
        planned = ledger.plan(conn, SLUG)
    assert planned > 0
    body = index(preview)
    row = body.split(f'id="edition-{SLUG}"')[1].split("</li>")[0]
    assert f"{planned} planned, 0 sent" in row


def test_the_index_works_without_a_store(home: Path) -> None:
    def no_store() -> Store:
        raise StoreError("database unavailable")

    client = create_preview_app(make_settings(home), no_store).test_client()
    body = index(client)
    assert f'id="edition-{SLUG}"' in body and "planned" not in body


def test_the_preview_page_links_back_to_the_index(preview: FlaskClient) -> None:
    body = preview.get(f"/preview/{SLUG}?lang=fr").get_data(as_text=True)
    assert 'href="/" id="to-index"' in body
    error = preview.get("/preview/2031-01-01-nowhere").get_data(as_text=True)
    assert 'href="/" id="to-index"' in error


def test_edition_fields_are_escaped_in_the_index(preview: FlaskClient, home: Path) -> None:
    poison_edition(_editions(home) / f"{SLUG}.yaml")
    body = index(preview)
    assert PAYLOAD not in body
    assert f'id="edition-{SLUG}"' in body


@pytest.mark.parametrize("line", [
    f"number: 4\n'{PAYLOAD}': 1\n",  # an unknown key: named in the error
    f"number: [{PAYLOAD}\n",  # not YAML: the parser quotes what it read
])
def test_an_error_message_is_escaped_in_the_index(
    preview: FlaskClient, home: Path, line: str
) -> None:
    add_broken(home, line)
    body = index(preview)
    assert PAYLOAD not in body
    broken = body.split(f'id="edition-{BROKEN}"')[1].split("</li>")[0]
    assert f"config/editions/{BROKEN}.yaml:" in broken
    if "': 1" in line:
        assert ESCAPED in broken


@pytest.mark.parametrize(("text", "why"), [
    ("number: " + "[" * 5000 + "]" * 5000 + "\n", "nested too deeply"),
    ("number: 3\nvenue: &v [*v]\n", ":2: YAML anchors and aliases"),
])
def test_a_pathological_file_is_listed_as_invalid(
    preview: FlaskClient, home: Path, text: str, why: str
) -> None:
    add_broken(home, text)
    body = index(preview)
    broken = body.split(f'id="edition-{BROKEN}"')[1].split("</li>")[0]
    assert "invalid" in broken and why in broken
    assert f'id="edition-{SLUG}"' in body


def test_an_unreadable_file_is_listed_without_its_absolute_path(
    preview: FlaskClient, home: Path
) -> None:
    (_editions(home) / f"{BROKEN}.yaml").mkdir()  # the OS error names it in full
    body = index(preview)
    broken = body.split(f'id="edition-{BROKEN}"')[1].split("</li>")[0]
    assert "cannot be read" in broken and f"config/editions/{BROKEN}.yaml" in broken
    assert_no_absolute_path(body, home)
