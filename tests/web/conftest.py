"""Fixtures for the two web apps: a project with the real editions, templates and contacts."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from clubjapon_ops import jobs
from clubjapon_ops.settings import Settings, load_settings
from clubjapon_ops.store import Store, open_store
from clubjapon_ops.web import create_app, create_preview_app
from tests.conftest import REPO, SAMPLE_CSV, use_database

SLUG = "2025-11-04-lille"
SECRET = "web-test-secret-5b0d1f7e9c2a4e6b8d0f"
STORED = "haruto.sato@hokuto.example.com"  # a contact of the sample CSV
# Absolute paths a page could leak: the project root is under one of these.
_ABSOLUTE = re.compile(r"(?<![\w.:/])/(?:tmp|home|root|usr|opt|work|var|etc|srv)/")


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A project root with the real config and templates."""
    shutil.copytree(REPO / "config", tmp_path / "config")
    shutil.copytree(REPO / "templates", tmp_path / "templates")
    return tmp_path


def make_settings(home: Path, **env: str) -> Settings:
    """Settings for the temporary project (sample CSV, a signing key)."""
    base = {"CLUBJAPON_CSV_PATH": str(SAMPLE_CSV), "CLUBJAPON_SECRET": SECRET}
    return load_settings(home, environ={**base, **env})


@pytest.fixture
def web_store(home: Path, db_engine: str | None) -> Iterator[Store]:
    """A store holding the sample contacts."""
    use_database(home, db_engine)
    store = open_store(make_settings(home).database_url)
    jobs.crm_sync(make_settings(home), store)
    yield store
    store.close()


@pytest.fixture
def public(home: Path, web_store: Store) -> FlaskClient:
    """The internet-facing app."""
    return create_app(make_settings(home), lambda: web_store).test_client()


@pytest.fixture
def preview(home: Path, web_store: Store) -> FlaskClient:
    """The marketing preview app (no password set)."""
    return create_preview_app(make_settings(home), lambda: web_store).test_client()


def assert_no_absolute_path(body: str, root: Path) -> None:
    """No page may show where the project is installed."""
    assert str(root) not in body
    assert _ABSOLUTE.search(body) is None, _ABSOLUTE.search(body)
