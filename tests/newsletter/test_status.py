"""An edition is a draft until its file says status: ready; a draft is shown, never sent."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from clubjapon_ops import jobs
from clubjapon_ops.delivery.newsletter_check import newest_ready_edition
from clubjapon_ops.errors import ConfigError
from clubjapon_ops.settings import Settings
from clubjapon_ops.store import Store
from tests.conftest import REPO
from tests.newsletter.cli import run_cli
from tests.newsletter.conftest import SLUG, edit

DRAFT = "2026-06-18-amiens"


def make_draft(root: Path) -> Path:
    """A copy of the Lille edition, dated and numbered as the next one, marked draft."""
    editions = root / "config" / "editions"
    path = Path(shutil.copy(editions / f"{SLUG}.yaml", editions / f"{DRAFT}.yaml"))
    edit(path, "status: ready", "status: draft")
    edit(path, "number: 3", "number: 4")
    edit(path, "date: 2025-11-04", "date: 2026-06-18")
    return path


@pytest.fixture
def cli_home(tmp_path: Path) -> Path:
    for name in ("config", "templates"):
        shutil.copytree(REPO / name, tmp_path / name)
    return tmp_path


def test_send_refuses_a_draft_with_exit_2(cli_home: Path) -> None:
    make_draft(cli_home)
    for args in ((), ("--dry-run",)):
        result = run_cli(cli_home, "send", DRAFT, "--yes", *args)
        assert result.returncode == 2, result.stdout + result.stderr
        assert f"{DRAFT} is a draft: set status: ready" in result.stderr
        assert "to send now" not in result.stdout  # refused before any plan
    assert not (cli_home / "var" / "outbox" / DRAFT).exists()


def test_a_scheduled_send_refuses_a_draft(settings: Settings, store: Store) -> None:
    for name in ("config", "templates"):
        shutil.copytree(REPO / name, settings.root / name, dirs_exist_ok=True)
    make_draft(settings.root)
    with pytest.raises(ConfigError, match=f"{DRAFT} is a draft: set status: ready"):
        jobs.send_campaign(settings, store, DRAFT)


def test_a_draft_is_never_the_ready_edition_even_when_it_passes_the_lint(
    project: Path, project_settings: Settings
) -> None:
    path = make_draft(project)
    assert newest_ready_edition(project_settings) == SLUG
    edit(path, "status: draft", "status: ready")
    assert newest_ready_edition(project_settings) == DRAFT


def test_preview_writes_a_draft_and_says_it_is_one(cli_home: Path) -> None:
    make_draft(cli_home)
    result = run_cli(cli_home, "preview", DRAFT, "--lang", "fr")
    assert result.returncode == 0, result.stderr
    assert "DRAFT" in result.stdout
    ready = run_cli(cli_home, "preview", SLUG, "--lang", "fr")
    assert ready.returncode == 0 and "DRAFT" not in ready.stdout
