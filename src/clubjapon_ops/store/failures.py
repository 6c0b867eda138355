"""A database failure as one line for a person: which database, what to check; no SQL, no data."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from clubjapon_ops.errors import StoreError
from clubjapon_ops.store.location import busy_timeout, is_sqlite, read_only, shown, sqlite_file

# SQLite's primary result codes (the low byte of an extended code).
_BUSY, _LOCKED, _READONLY, _CORRUPT, _FULL, _CANTOPEN, _NOTADB = 5, 6, 8, 11, 13, 14, 26


def first_line(exc: BaseException) -> str:
    """The driver's own message, first line only: SQLAlchemy appends the SQL and parameters."""
    orig = getattr(exc, "orig", None) or exc
    lines = str(orig).strip().splitlines()
    return lines[0] if lines else type(orig).__name__


def database_failure(exc: DBAPIError, url: str) -> StoreError:
    """Turn a driver error into a StoreError that says what to check."""
    parsed = make_url(url)
    where = shown(url)
    reason = first_line(exc)
    if not is_sqlite(parsed):
        return StoreError(f"database {where}: {reason}")
    path = sqlite_file(parsed)
    folder = str(Path(path).parent) if path is not None else "?"
    code = getattr(exc.orig, "sqlite_errorcode", 0) & 0xFF
    if code == _READONLY:
        if read_only(parsed):
            return StoreError(f"database {where} is read-only: CLUBJAPON_DATABASE_URL opens it "
                              "with mode=ro, which allows no change")
        return StoreError(f"database {where} is read-only: check that the user running "
                          f"clubjapon-ops may write it and its folder {folder}")
    if code in (_BUSY, _LOCKED):
        return StoreError(
            f"database {where} is locked: another process kept it busy for more than "
            f"{busy_timeout(parsed):g} s; check for another clubjapon-ops command or another "
            "program writing to it, then run again"
        )
    if code == _CANTOPEN:
        return StoreError(f"cannot open database {where}: check that its folder {folder} exists "
                          "and that the user running clubjapon-ops may write it")
    if code == _FULL:
        return StoreError(f"database {where}: the disk is full")
    if code in (_CORRUPT, _NOTADB):
        return StoreError(f"database {where} is damaged or not a SQLite database: {reason}")
    return StoreError(f"database {where}: {reason}")
