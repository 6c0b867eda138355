"""Which edition is ready: the newest marked status: ready that loads and passes the lint."""

from __future__ import annotations

import shutil
from pathlib import Path

from clubjapon_ops.delivery.newsletter_check import newest_ready_edition
from clubjapon_ops.settings import Settings
from tests.newsletter.conftest import SLUG, edit


def _copy(project: Path, slug: str) -> Path:
    """The Lille edition as the next one: its date the file name's, its number the next."""
    editions = project / "config" / "editions"
    path = Path(shutil.copy(editions / f"{SLUG}.yaml", editions / f"{slug}.yaml"))
    edit(path, "date: 2025-11-04", f"date: {slug[:10]}")
    edit(path, "number: 3", "number: 4")
    return path


def test_the_newest_edition_that_passes_the_lint_is_ready(
    project: Path, project_settings: Settings
) -> None:
    assert newest_ready_edition(project_settings) == SLUG
    _copy(project, "2026-03-12-lyon")
    assert newest_ready_edition(project_settings) == "2026-03-12-lyon"


def test_drafts_that_fail_the_lint_or_do_not_load_are_passed_over(
    project: Path, project_settings: Settings
) -> None:
    edit(_copy(project, "2026-03-12-draft"), "Club Japon des Hauts-de-France : retour",
         "Brouillon " * 20)
    (project / "config" / "editions" / "2027-01-01-broken.yaml").write_text(
        "number: [unclosed\n", encoding="utf-8")
    assert newest_ready_edition(project_settings) == SLUG


def test_no_ready_edition(project: Path, project_settings: Settings) -> None:
    for path in (project / "config" / "editions").glob("*.yaml"):
        path.unlink()
    assert newest_ready_edition(project_settings) is None
