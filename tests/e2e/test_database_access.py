"""The SQLite file as ops meet it: URIs, read-only files and folders, locks, permissions."""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest

from tests.conftest import REPO, SAMPLE_CSV

pytestmark = pytest.mark.e2e

def run(home: Path, *args: str, env: dict[str, str] | None = None,
        preexec: Callable[[], None] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items()
                if not k.startswith(("CLUBJAPON_", "HUBSPOT_", "BREVO_", "SMTP_", "SENDGRID_"))}
    full_env.update({"CLUBJAPON_HOME": str(home), "CLUBJAPON_CSV_PATH": str(SAMPLE_CSV)})
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "clubjapon_ops", "--log-text", "-q", *args],
        capture_output=True, text=True, env=full_env, timeout=60, check=False,
        preexec_fn=preexec,
    )


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / "config").mkdir()
    return tmp_path


@contextmanager
def unwritable(path: Path) -> Iterator[None]:
    """Make a file or folder unwritable for this user; root ignores modes, so chattr +i then."""
    if os.geteuid() != 0:
        mode = stat.S_IMODE(path.stat().st_mode)
        path.chmod(0o555 if path.is_dir() else 0o444)
        try:
            yield
        finally:
            path.chmod(mode)
        return
    if subprocess.run(["chattr", "+i", str(path)], capture_output=True, check=False).returncode:
        pytest.skip("root cannot make a file immutable here (chattr +i)")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def synced(home: Path) -> Path:
    result = run(home, "sync")
    assert result.returncode == 0, result.stderr
    db = home / "var" / "clubjapon.sqlite3"
    assert suppressions(db) == OPTED_OUT_IN_SAMPLE
    return db


OPTED_OUT_IN_SAMPLE = 4  # the sample export's opt-outs: suppressions the sync itself adds


def suppressions(db: Path) -> int:
    # Closed, not only committed: an open connection keeps -wal and -shm files in place.
    with closing(sqlite3.connect(db)) as conn:
        count: int = conn.execute("SELECT count(*) FROM suppressions").fetchone()[0]
    return count


def files_under(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def one_clean_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for leak in ("[SQL", "INSERT", "sqlalche.me", "parameters", "Traceback", "unexpected"):
        assert leak not in lines[0]
    return lines[0]


def test_a_sqlite_uri_opens_the_file_it_names_read_only(home: Path) -> None:
    db = synced(home)
    before = files_under(home)
    for url in ("sqlite:///file:var/clubjapon.sqlite3?mode=ro&uri=true",
                f"sqlite:///file:{db}?mode=ro&uri=true"):
        status = run(home, "status", env={"CLUBJAPON_DATABASE_URL": url})
        assert status.returncode == 0, status.stderr
        assert "Contacts: 50 in all" in status.stdout

        refused = run(home, "unsubscribe", "someone@example.com", "--anyway",
                      env={"CLUBJAPON_DATABASE_URL": url})
        assert refused.returncode == 1
        assert "unsubscribed" not in refused.stdout
        line = one_clean_line(refused)
        assert f"database {db} is read-only" in line and "mode=ro" in line
    assert suppressions(db) == OPTED_OUT_IN_SAMPLE
    assert files_under(home) == before  # no new database anywhere under the root


def test_a_uri_flag_without_a_file_uri_is_a_configuration_error(home: Path) -> None:
    result = run(home, "status",
                 env={"CLUBJAPON_DATABASE_URL": "sqlite:///var/db.sqlite3?mode=ro&uri=true"})
    assert result.returncode == 2
    assert "CLUBJAPON_DATABASE_URL" in one_clean_line(result)
    assert not (home / "var").exists()


def test_a_read_only_database_file_gives_one_clear_line(home: Path) -> None:
    db = synced(home)
    with unwritable(db):  # its folder stays writable
        result = run(home, "unsubscribe", "someone@example.com", "--anyway")
    assert result.returncode == 1
    line = one_clean_line(result)
    assert f"database {db} is read-only" in line
    assert "may write it and its folder" in line
    assert "someone@example.com" not in result.stderr
    assert suppressions(db) == OPTED_OUT_IN_SAMPLE


def test_a_read_only_folder_gives_one_clear_line(home: Path) -> None:
    db = synced(home)
    with unwritable(home / "var"):
        result = run(home, "unsubscribe", "someone@example.com", "--anyway")
    assert result.returncode == 1
    line = one_clean_line(result)
    assert f"cannot open database {db}: check that its folder {home / 'var'} exists" in line
    assert suppressions(db) == OPTED_OUT_IN_SAMPLE


def test_a_database_locked_past_the_busy_timeout_gives_one_clear_line(home: Path) -> None:
    db = synced(home)
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process writing, and not letting go
    try:
        result = run(home, "unsubscribe", "someone@example.com", "--anyway",
                     env={"CLUBJAPON_DATABASE_URL": "sqlite:///var/clubjapon.sqlite3?timeout=0.5"})
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert result.returncode == 1
    line = one_clean_line(result)
    assert f"database {db} is locked" in line and "0.5 s" in line
    assert suppressions(db) == OPTED_OUT_IN_SAMPLE


def test_the_store_is_private_to_its_owner(home: Path) -> None:
    result = run(home, "sync", preexec=lambda: os.umask(0o022) and None)
    assert result.returncode == 0, result.stderr
    var, db = home / "var", home / "var" / "clubjapon.sqlite3"
    assert stat.S_IMODE(var.stat().st_mode) == 0o700
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    # SQLite gives its companions the main file's mode: open one to see them.
    with sqlite3.connect(db) as conn:
        conn.execute("SELECT count(*) FROM contacts").fetchone()
        companions = [p for p in var.iterdir() if p.name.startswith(db.name + "-")]
        assert companions
        assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in companions)


def test_a_store_an_older_version_left_readable_by_others_is_made_private(home: Path) -> None:
    assert run(home, "sync").returncode == 0
    db = home / "var" / "clubjapon.sqlite3"
    wal = db.with_name(db.name + "-wal")
    wal.write_bytes(b"")
    for path in (db, wal):
        path.chmod(0o644)  # as a version before the store was created private left it
    result = run(home, "sync")
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    assert not wal.exists() or stat.S_IMODE(wal.stat().st_mode) == 0o600


@pytest.mark.parametrize("first", [
    ["preview", "2025-11-04-lille", "--lang", "fr"],  # writes var/preview/, signs nothing
    ["send", "2025-11-04-lille", "--test-to", "me@example.org"],  # var/secret.key, outbox
])
def test_var_is_private_whichever_command_makes_it(home: Path, first: list[str]) -> None:
    shutil.copytree(REPO / "config" / "editions", home / "config" / "editions")
    shutil.copytree(REPO / "templates", home / "templates")
    result = run(home, *first, preexec=lambda: os.umask(0o022) and None)
    assert result.returncode == 0, result.stdout + result.stderr
    folders = [p for p in (home / "var").rglob("*") if p.is_dir()]
    assert folders  # the command wrote below var/
    for folder in [home / "var", *folders]:
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
