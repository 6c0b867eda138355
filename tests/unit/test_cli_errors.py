"""The CLI's last line of defence: a database error met outside the store's transactions."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy.exc import IntegrityError, OperationalError

from clubjapon_ops import cli, jobs

STATEMENT = "INSERT INTO suppressions (email) VALUES (?)"


def run_sync_failing_with(
    exc: Exception, root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[int, list[str]]:
    def fail(*_args: object, **_kwargs: object) -> None:
        raise exc

    monkeypatch.setenv("CLUBJAPON_HOME", str(root))
    monkeypatch.setattr(jobs, "crm_sync", fail)
    monkeypatch.setitem(cli._state, "app", cli.App())
    with pytest.raises(SystemExit) as info:
        cli.main(["--log-text", "-q", "sync"])
    return int(info.value.code or 0), capsys.readouterr().err.strip().splitlines()


def test_a_lock_met_on_a_raw_connection_is_one_clear_line(
    root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    locked = sqlite3.OperationalError("database is locked")
    locked.sqlite_errorcode = sqlite3.SQLITE_BUSY  # type: ignore[attr-defined]
    code, lines = run_sync_failing_with(
        OperationalError(STATEMENT, ("secret@example.com",), locked), root, monkeypatch, capsys)
    assert code == 1
    assert lines == [f"error: database {root / 'var' / 'clubjapon.sqlite3'} is locked: another "
                     "process kept it busy for more than 30 s; check for another clubjapon-ops "
                     "command or another program writing to it, then run again"]


def test_an_unexpected_database_error_shows_neither_sql_nor_data(
    root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clash = IntegrityError(STATEMENT, ("secret@example.com",),
                           sqlite3.IntegrityError("UNIQUE constraint failed: suppressions.email"))
    code, lines = run_sync_failing_with(clash, root, monkeypatch, capsys)
    assert code == 1
    assert lines == ["unexpected error: IntegrityError: UNIQUE constraint failed: "
                     "suppressions.email (run with --debug for details)"]
