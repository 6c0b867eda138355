"""A fresh PostgreSQL schema per test, on the server CLUBJAPON_TEST_POSTGRES_URL names."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote

import pytest
from sqlalchemy import create_engine, text

URL_VARIABLE = "CLUBJAPON_TEST_POSTGRES_URL"
HOW_TO = (
    f"PostgreSQL half skipped: set {URL_VARIABLE}=postgresql+psycopg://USER@127.0.0.1:PORT/DB "
    "(a server the tests may create schemas on), or run .ci/run, which starts one"
)


def postgres_configured() -> bool:
    """Whether the tests have a PostgreSQL server to use."""
    return bool(os.environ.get(URL_VARIABLE, "").strip())


def server_url() -> str:
    """The test server's URL, or skip the test saying how to enable PostgreSQL."""
    url = os.environ.get(URL_VARIABLE, "").strip()
    if not url:
        pytest.skip(HOW_TO)
    return url


def with_search_path(url: str, schema: str) -> str:
    """The same URL, every connection placed in ``schema`` (libpq's ``options``)."""
    joiner = "&" if "?" in url else "?"
    return f"{url}{joiner}options={quote(f'-csearch_path={schema}')}"


@contextmanager
def fresh_schema() -> Iterator[str]:
    """Create an empty schema for one test, yield a URL into it, then drop it."""
    url = server_url()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        yield with_search_path(url, schema)
    finally:
        with admin.connect() as conn:
            # A test that leaked a connection in a transaction must not hang the suite.
            conn.execute(text("SET lock_timeout = '10s'"))
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()
