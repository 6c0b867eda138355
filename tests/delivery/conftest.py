"""Fixtures for sending: a project with editions, templates and a synced store."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from clubjapon_ops.settings import Settings, load_settings
from clubjapon_ops.store import Store, open_store
from tests.conftest import REPO, use_database

SLUG = "2025-11-04-lille"
SECRET = "test-secret-0123456789abcdef"
# Required for a send through smtp, brevo or sendgrid (CLUBJAPON_POSTAL_ADDRESS).
POSTAL_ADDRESS = "Club Japon des Hauts-de-France; 151 boulevard Hoover; 59000 Lille"


def write_contacts(path: Path, emails: list[str]) -> Path:
    """A CSV export with these addresses (languages in turn fr, en, ja)."""
    langs = ("fr", "en", "ja")
    lines = ["email;first_name;last_name;language"]
    lines += [f"{e};Prénom{i};Nom{i};{langs[i % 3]}" for i, e in enumerate(emails)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A project root with the real editions and templates."""
    shutil.copytree(REPO / "config" / "editions", tmp_path / "config" / "editions")
    shutil.copytree(REPO / "templates", tmp_path / "templates")
    return tmp_path


def make_settings(home: Path, **env: str) -> Settings:
    """Settings for the temporary project, with a signing key, the club's postal address
    (a real send needs it) and fast retries."""
    base = {"CLUBJAPON_SECRET": SECRET, "CLUBJAPON_SEND_RETRY_WAIT": "0.01",
            "CLUBJAPON_CSV_PATH": str(home / "contacts.csv"),
            "CLUBJAPON_POSTAL_ADDRESS": POSTAL_ADDRESS}
    return load_settings(home, environ={**base, **env})


@pytest.fixture
def send_store(home: Path, db_engine: str | None) -> Iterator[Store]:
    """A migrated store in the temporary project, on this test's engine."""
    use_database(home, db_engine)
    store = open_store(make_settings(home).database_url)
    yield store
    store.close()
