"""Shared fixtures: a project root in a temporary folder and a real store in it.

Tests that use the ``store``, ``settings`` or ``send_store`` fixtures run twice: on a SQLite
file and on a fresh schema of the PostgreSQL server that CLUBJAPON_TEST_POSTGRES_URL names
(left out, with one line at the end saying how to enable it, when it is not set). Mark a test
``sqlite_only`` when it is about SQLite itself (tests under tests/e2e, subprocesses reading
the SQLite file, are by default), ``postgres_only`` when it needs PostgreSQL.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from clubjapon_ops.settings import Settings, load_settings
from clubjapon_ops.store import Store, open_store
from tests.postgres import HOW_TO, fresh_schema, postgres_configured

# Every request to a vendor's (fake) API is checked against the vendor's spec: tests/specs.
pytest_plugins = ["tests.specs.plugin"]

REPO = Path(__file__).resolve().parents[1]
SAMPLE_CSV = REPO / "config" / "sample" / "contacts.csv"
ENGINES = ("sqlite", "postgresql")


def free_port() -> int:
    """A port on 127.0.0.1 that nobody listens on right now.

    Only for a process that binds it itself: another may take it in between, so a server of
    the test's own binds port 0 instead, and a port that must refuse is :func:`refused_port`.
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def refused_port() -> Iterator[int]:
    """A port on 127.0.0.1 that refuses connections for the whole block.

    Held bound but not listening: a connection is refused, and no other process (another
    test, another run on the machine) can start listening there meanwhile.
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield int(s.getsockname()[1])


@pytest.fixture
def closed_port() -> Iterator[int]:
    """:func:`refused_port` for the test's duration."""
    with refused_port() as port:
        yield port


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "sqlite_only: runs on SQLite only (about SQLite itself)")
    config.addinivalue_line("markers", "postgres_only: runs on PostgreSQL only")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "db_engine" not in metafunc.fixturenames:
        return
    engines: tuple[str, ...] = ENGINES
    if metafunc.definition.get_closest_marker("sqlite_only") or "e2e" in metafunc.module.__name__:
        engines = ("sqlite",)
    if metafunc.definition.get_closest_marker("postgres_only"):
        engines = ("postgresql",)
    metafunc.parametrize("db_engine", engines, indirect=True)


_left_out: list[str] = []


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Without a server the PostgreSQL half is left out and said once, not once per test.
    if postgres_configured():
        return
    kept, dropped = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        on_postgres = callspec is not None and callspec.params.get("db_engine") == "postgresql"
        (dropped if on_postgres else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
        _left_out.append(f"{len(dropped)} tests of the {HOW_TO}")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for line in _left_out:
        terminalreporter.write_line(line, yellow=True)


@pytest.fixture
def db_engine(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """The store's engine for this test: None for SQLite, else a URL into a fresh schema."""
    if request.param == "sqlite":
        yield None
        return
    with fresh_schema() as url:
        yield url


def use_database(home: Path, url: str | None) -> None:
    """Point every settings loaded from ``home`` (in-process or a subprocess) at ``url``."""
    if url is not None:
        with (home / ".env").open("a", encoding="utf-8") as env:
            env.write(f"CLUBJAPON_DATABASE_URL={url}\n")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """An empty project root (no config file, no .env)."""
    (tmp_path / "config").mkdir()
    return tmp_path


@pytest.fixture
def settings(root: Path, db_engine: str | None) -> Settings:
    """Settings with defaults only, anchored in the temporary root, on this test's engine."""
    use_database(root, db_engine)
    return load_settings(root, environ={"CLUBJAPON_CSV_PATH": str(SAMPLE_CSV)})


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    """A migrated store: a SQLite file in the temporary root, or a PostgreSQL schema."""
    opened = open_store(settings.database_url)
    yield opened
    opened.close()


@pytest.fixture(autouse=True)
def _project_logging_reset() -> Iterator[None]:
    """Undo setup_logging() after a test: its handler may hold a stream pytest has closed."""
    import logging

    logger = logging.getLogger("clubjapon_ops")
    handlers, level, propagate = list(logger.handlers), logger.level, logger.propagate
    yield
    for handler in list(logger.handlers):
        if handler not in handlers:
            logger.removeHandler(handler)
    logger.setLevel(level)
    logger.propagate = propagate
