"""Open the database named by a URL, tune it, and migrate it to the current schema."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.pool import SingletonThreadPool

from clubjapon_ops.errors import StoreError
from clubjapon_ops.files import make_private, private_folder
from clubjapon_ops.masking import mask_secrets
from clubjapon_ops.store.failures import database_failure, first_line
from clubjapon_ops.store.location import busy_timeout, creates_file, is_sqlite, sqlite_file
from clubjapon_ops.store.migrations import migrate

if TYPE_CHECKING:
    from clubjapon_ops.store.pending import PendingUnsubscribes


class Store:
    """The project's database: an engine plus short transactions."""

    def __init__(self, engine: Engine, url: str | None = None) -> None:
        self.engine = engine
        self.url = url or engine.url.render_as_string(hide_password=False)
        # Unsubscribes the public app kept aside while the store was held (store/pending.py):
        # set by whoever knows the project's folder; a send applies them at each hand-over.
        self.pending: PendingUnsubscribes | None = None

    @property
    def dialect(self) -> str:
        """Return 'sqlite' or 'postgresql'."""
        return self.engine.dialect.name

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """Run the block in one transaction: committed on success, rolled back on error."""
        try:
            with self.engine.begin() as conn:
                yield conn
        except OperationalError as exc:
            # Read-only, locked, gone: one line saying what to check, not the SQL and its data.
            raise database_failure(exc, self.url) from exc

    def close(self) -> None:
        """Release every pooled connection."""
        self.engine.dispose()


def _sqlite_pragmas(timeout_s: float) -> Any:
    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        # WAL lets the web app read while a send writes; the busy timeout makes writers wait
        # for each other instead of failing at once.
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
        except sqlite3.OperationalError as exc:
            # A read-only file (or mode=ro) cannot switch modes, and reading needs no WAL:
            # let it open, and let a write say clearly why it is refused.
            if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_READONLY:
                raise
        cursor.execute(f"PRAGMA busy_timeout={int(timeout_s * 1000)}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return on_connect


_SIDECARS = ("-wal", "-shm", "-journal")


def _create_private(url: URL) -> None:
    """Create a new SQLite file owner-only (0600) in an owner-only folder (0700).

    An existing file (and its -wal, -shm, -journal) that others may read is made owner-only.

    SQLite would create it 0644 less the umask; it gives the -wal, -shm and -journal files
    the main file's mode, so creating the main file first is enough for all of them.
    """
    path = sqlite_file(url)
    if path is None or not creates_file(url):
        return
    if path.exists():
        # A file an older version created readable by others holds every reader's address.
        for file in (path, *(path.with_name(path.name + s) for s in _SIDECARS)):
            make_private(file)
        return
    private_folder(path.parent)
    # FileExistsError: another process created it first, and made the same choice.
    with suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def make_engine(url: str) -> Engine:
    """Create an engine for a SQLite or PostgreSQL URL, creating a SQLite file owner-only."""
    parsed = make_url(url)
    kwargs: dict[str, Any] = {"future": True}
    timeout = busy_timeout(parsed)
    if is_sqlite(parsed):
        _create_private(parsed)
        kwargs["connect_args"] = {"timeout": timeout}
        if sqlite_file(parsed) is None:
            # In memory: one connection holds the whole database, so keep one per thread
            # (SQLAlchemy's choice today, which it will stop guessing for file: URIs).
            kwargs["poolclass"] = SingletonThreadPool
    else:
        kwargs["pool_pre_ping"] = True
    engine = create_engine(url, **kwargs)
    if is_sqlite(parsed):
        event.listen(engine, "connect", _sqlite_pragmas(timeout))
    return engine


def open_store(url: str, *, migrate_schema: bool = True) -> Store:
    """Open (and by default migrate) the database; raise StoreError with a clear reason."""
    shown = mask_secrets(url)  # the password in any form libpq and SQLAlchemy read
    try:
        engine = make_engine(url)
        if migrate_schema:
            migrate(engine)
        else:
            with engine.connect():
                pass
    except OSError as exc:
        raise StoreError(f"cannot open database {shown}: {exc.strerror or exc}") from exc
    except OperationalError as exc:
        if is_sqlite(make_url(url)):
            raise database_failure(exc, url) from exc  # read-only, locked, no folder ...
        raise StoreError(f"cannot open database {shown}: {first_line(exc)}") from exc
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot open database {shown}: {first_line(exc)}") from exc
    except ModuleNotFoundError as exc:
        raise StoreError(f"cannot open database {shown}: driver missing ({exc.name})") from exc
    return Store(engine, url)
