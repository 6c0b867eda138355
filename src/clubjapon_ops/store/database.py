"""Open the database named by a URL, tune it, and migrate it to the current schema."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import SQLAlchemyError

from clubjapon_ops.errors import StoreError
from clubjapon_ops.store.migrations import migrate

BUSY_TIMEOUT_MS = 30_000


class Store:
    """The project's database: an engine plus short transactions."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @property
    def dialect(self) -> str:
        """Return 'sqlite' or 'postgresql'."""
        return self.engine.dialect.name

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """Run the block in one transaction: committed on success, rolled back on error."""
        with self.engine.begin() as conn:
            yield conn

    def close(self) -> None:
        """Release every pooled connection."""
        self.engine.dispose()


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    # WAL lets the web app read while a send writes; the busy timeout makes writers wait
    # for each other instead of failing at once.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_engine(url: str) -> Engine:
    """Create an engine for a SQLite or PostgreSQL URL, creating a SQLite file's folder."""
    parsed = make_url(url)
    kwargs: dict[str, Any] = {"future": True}
    if parsed.drivername.startswith("sqlite"):
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"timeout": BUSY_TIMEOUT_MS / 1000}
    else:
        kwargs["pool_pre_ping"] = True
    engine = create_engine(url, **kwargs)
    if parsed.drivername.startswith("sqlite"):
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def open_store(url: str, *, migrate_schema: bool = True) -> Store:
    """Open (and by default migrate) the database; raise StoreError with a clear reason."""
    shown = make_url(url).render_as_string(hide_password=True)
    try:
        engine = make_engine(url)
        if migrate_schema:
            migrate(engine)
        else:
            with engine.connect():
                pass
    except OSError as exc:
        raise StoreError(f"cannot open database {shown}: {exc.strerror or exc}") from exc
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        raise StoreError(f"cannot open database {shown}: {reason}") from exc
    except ModuleNotFoundError as exc:
        raise StoreError(f"cannot open database {shown}: driver missing ({exc.name})") from exc
    return Store(engine)
