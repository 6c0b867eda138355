"""A database password, in any form libpq or SQLAlchemy reads, is never shown (issue 26, 7).

Through the real CLI: 'config', a database that cannot be opened (nothing listens on the
port), with and without --debug; the JSON log of the same failure is in tests/web.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.conftest import free_port

pytestmark = pytest.mark.e2e

SECRET = "Pg-S3cret-9f1c"  # short on purpose: redaction of known values needs 16 characters
SSL_SECRET = "Ssl-K3y-Pass-77"


def urls(port: int) -> list[str]:
    """Every form of CLUBJAPON_DATABASE_URL that carries a password."""
    base = f"127.0.0.1:{port}/club"
    return [
        f"postgresql+psycopg://club@{base}?password={SECRET}",
        f"postgresql+psycopg://club@{base}?sslmode=prefer&password={SECRET}&sslpassword={SSL_SECRET}",
        f"postgresql://club:{SECRET}@{base}",
        f"postgresql+psycopg://club:{quote(SECRET + '@/?')}@{base}",
        f"postgresql+psycopg://club@{base}?password={quote(SECRET, safe='')}%21",
        f"postgresql+psycopg://club@{base}?pass%77ord={SECRET}",
        f"postgresql+psycopg://club:{SECRET}@{base}?sslpassword={SSL_SECRET}",
    ]


def run(home: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLUBJAPON_", "PG"))}
    env.update({"CLUBJAPON_HOME": str(home), "CLUBJAPON_DATABASE_URL": url})
    return subprocess.run([sys.executable, "-m", "clubjapon_ops", *args], capture_output=True,
                          text=True, env=env, timeout=60, check=False)


def assert_hidden(output: str) -> None:
    for secret in (SECRET, SSL_SECRET, quote(SECRET, safe=""), SECRET[3:], SSL_SECRET[4:]):
        assert secret not in output, output


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / "config").mkdir()
    return tmp_path


@pytest.mark.parametrize("form", range(7))
def test_config_masks_the_password_wherever_the_url_holds_it(home: Path, form: int) -> None:
    url = urls(free_port())[form]
    result = run(home, url, "--log-text", "config")
    assert result.returncode == 0, result.stderr
    line = next(x for x in result.stdout.splitlines() if x.startswith("CLUBJAPON_DATABASE_URL"))
    assert "***" in line and "127.0.0.1" in line and "/club" in line, line
    assert_hidden(result.stdout + result.stderr)


@pytest.mark.parametrize("form", range(7))
@pytest.mark.parametrize("debug", [[], ["--debug"]])
def test_a_database_that_cannot_be_opened_names_it_without_its_password(
    home: Path, form: int, debug: list[str]
) -> None:
    url = urls(free_port())[form]  # nothing listens there: connection refused
    result = run(home, url, "--log-json", *debug, "status")
    assert result.returncode == 1
    assert "127.0.0.1" in result.stderr and "***" in result.stderr, result.stderr
    if not debug:
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert_hidden(result.stdout + result.stderr)


@pytest.mark.parametrize("dsn", [
    f"host=127.0.0.1 dbname=club password={SECRET}",
    f"host=127.0.0.1 password = '{SECRET} x' dbname=club",
    f"dbname=club sslpassword={SSL_SECRET} password={SECRET}",
])
def test_libpq_key_value_form_is_refused_without_echoing_its_password(
    home: Path, dsn: str
) -> None:
    result = run(home, dsn, "--log-text", "config")
    assert result.returncode == 2
    assert "CLUBJAPON_DATABASE_URL=" in result.stderr and "password" in result.stderr
    assert "***" in result.stderr
    assert_hidden(result.stdout + result.stderr)
