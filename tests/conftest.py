"""Shared fixtures: a project root in a temporary folder and a real SQLite store in it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from clubjapon_ops.settings import Settings, load_settings
from clubjapon_ops.store import Store, open_store

REPO = Path(__file__).resolve().parents[1]
SAMPLE_CSV = REPO / "config" / "sample" / "contacts.csv"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """An empty project root (no config file, no .env)."""
    (tmp_path / "config").mkdir()
    return tmp_path


@pytest.fixture
def settings(root: Path) -> Settings:
    """Settings with defaults only, anchored in the temporary root."""
    return load_settings(root, environ={"CLUBJAPON_CSV_PATH": str(SAMPLE_CSV)})


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    """A migrated SQLite file in the temporary root."""
    opened = open_store(settings.database_url)
    yield opened
    opened.close()
