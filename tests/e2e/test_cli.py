"""The CLI as a user runs it: a subprocess in a temporary project, a real SQLite file."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import SAMPLE_CSV

pytestmark = pytest.mark.e2e


def run(
    home: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items()
                if not k.startswith(("CLUBJAPON_", "HUBSPOT_", "BREVO_", "SMTP_", "SENDGRID_"))}
    full_env.update({"CLUBJAPON_HOME": str(home), "CLUBJAPON_CSV_PATH": str(SAMPLE_CSV)})
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "clubjapon_ops", *args],
        capture_output=True, text=True, env=full_env, timeout=60, check=False,
    )


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / "config").mkdir()
    return tmp_path


def test_sync_then_status_on_a_real_sqlite_file(home: Path) -> None:
    result = run(home, "sync")
    assert result.returncode == 0, result.stderr
    assert "57 fetched, 50 created, 0 updated, 0 unchanged, 1 merged duplicates, 6 skipped" in (
        result.stdout)
    assert "invalid email" in result.stdout
    # Not a terminal: logs are JSON lines, and skipped rows are named by line, not content.
    logs = [json.loads(line) for line in result.stderr.splitlines()]
    skipped = [entry for entry in logs if entry["msg"] == "contact skipped"]
    assert len(skipped) == 6 and all(entry["ref"].startswith("line ") for entry in skipped)

    db = home / "var" / "clubjapon.sqlite3"
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM contacts").fetchone() == (50,)
        assert conn.execute("SELECT status FROM job_runs").fetchall() == [("success",)]
        name = conn.execute(
            "SELECT first_name, last_name FROM contacts WHERE email = ?",
            ("camille.dubois@hokuto.example.com",)).fetchone()
    assert name == ("Camille", "Dubois-Martin")  # the later duplicate won

    status = run(home, "status")
    assert status.returncode == 0, status.stderr
    assert "Contacts: 50 in all" in status.stdout
    assert "crm_sync" in status.stdout and "success" in status.stdout


def test_sync_keeps_a_contact_with_an_over_long_name_and_says_so(home: Path) -> None:
    export = home / "export.csv"
    export.write_text("email,first_name,company\n"
                      f"long@example.com,{'N' * 201},ACME\nshort@example.com,Yui,\n",
                      encoding="utf-8")
    result = run(home, "sync", env={"CLUBJAPON_CSV_PATH": str(export)})
    assert result.returncode == 0, result.stderr
    assert "2 fetched, 2 created" in result.stdout and "0 skipped" in result.stdout
    assert "  dropped    1 × first name longer than 200 characters (contact kept)" in (
        result.stdout)


def test_config_masks_secrets_and_names_sources(home: Path) -> None:
    (home / ".env").write_text("SENDGRID_API_KEY=SG.very-secret-key\nSMTP_PORT=2525\n")
    (home / "config" / "clubjapon.toml").write_text('[settings]\nsmtp_host = "mail.local"\n')
    result = run(home, "config", env={"CLUBJAPON_SEND_RATE": "12"})
    assert result.returncode == 0, result.stderr
    assert "SG.very-secret-key" not in result.stdout + result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines()[1:]}
    assert lines["SENDGRID_API_KEY"].endswith("********  [.env]")
    assert lines["SMTP_PORT"].endswith("2525  [.env]")
    assert lines["SMTP_HOST"].endswith("mail.local  [config/clubjapon.toml]")
    assert lines["CLUBJAPON_SEND_RATE"].endswith("12.0  [environment]")


@pytest.mark.parametrize(
    ("env", "files", "code", "message"),
    [
        ({"CLUBJAPON_CSV_PATH": "/nonexistent/export.csv"}, {}, 1,
         "error: CSV export not found: /nonexistent/export.csv"),
        ({"CLUBJAPON_CSV_PATH": "{home}/nomail.csv"}, {"nomail.csv": "name;company\nA;B\n"}, 1,
         "has no email column"),
        ({"CLUBJAPON_DATABASE_URL": "sqlite:////proc/nope/db.sqlite3"}, {}, 1,
         "error: cannot open database"),
        ({}, {".env": "CLUBJAPON_TRANSPORT=carrier-pigeon\n"}, 2,
         "configuration error: CLUBJAPON_TRANSPORT='carrier-pigeon' (from .env) is invalid"),
    ],
    ids=["missing-csv", "no-email-column", "bad-database", "bad-dotenv"],
)
def test_bad_input_gives_one_clear_line_and_a_non_zero_exit(
    home: Path, env: dict[str, str], files: dict[str, str], code: int, message: str
) -> None:
    for name, content in files.items():
        (home / name).write_text(content, encoding="utf-8")
    env = {k: v.format(home=home) for k, v in env.items()}
    result = run(home, "--log-text", "-q", "sync", env=env)
    assert result.returncode == code
    last = result.stderr.strip().splitlines()[-1]
    assert message in last
    assert "Traceback" not in result.stderr


def test_debug_shows_the_traceback(home: Path) -> None:
    result = run(home, "--debug", "sync", env={"CLUBJAPON_CSV_PATH": "/nonexistent.csv"})
    assert result.returncode == 1
    assert "Traceback" in result.stderr


@pytest.mark.parametrize("command", [[], ["sync"], ["status"], ["config"]])
def test_help_everywhere_even_with_broken_config(home: Path, command: list[str]) -> None:
    (home / ".env").write_text("SMTP_PORT=not-a-port\n")
    result = run(home, *command, "--help")
    assert result.returncode == 0
    assert "Usage: clubjapon-ops" in result.stdout


def test_a_cp1252_export_syncs_and_the_run_says_how_it_was_read(home: Path) -> None:
    export = home / "excel.csv"
    export.write_bytes("email;first_name;last_name\r\nhelene@example.com;Hélène;Lefèvre\r\n"
                       .encode("cp1252"))
    result = run(home, "sync", env={"CLUBJAPON_CSV_PATH": str(export)})
    assert result.returncode == 0, result.stderr
    assert "excel.csv read as cp1252, ';'-separated" in result.stdout
    with sqlite3.connect(home / "var" / "clubjapon.sqlite3") as conn:
        assert conn.execute("SELECT first_name FROM contacts").fetchone() == ("Hélène",)
        counts = json.loads(conn.execute("SELECT counts FROM job_runs").fetchone()[0])
    assert counts["read_as"] == "read as cp1252, ';'-separated"
