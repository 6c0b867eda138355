"""A copy of the project's editions and templates in a temporary root, to break on purpose."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from clubjapon_ops.settings import Settings, load_settings
from tests.conftest import REPO

SLUG = "2025-11-04-lille"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project root with copies of config/editions and templates."""
    shutil.copytree(REPO / "config" / "editions", tmp_path / "config" / "editions")
    shutil.copytree(REPO / "templates", tmp_path / "templates")
    return tmp_path


@pytest.fixture
def project_settings(project: Path) -> Settings:
    """Settings rooted in the copied project."""
    return load_settings(project, environ={})


def edit(path: Path, old: str, new: str) -> None:
    """Replace text in a file, failing if the text is not there."""
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
