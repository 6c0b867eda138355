"""One scheduler per database: an exclusive lock that dies with the process that holds it.

On SQLite the lock is an OS lock (flock) on a file next to the database: the kernel drops it
when the holder exits, however it exits, so a crashed scheduler never leaves it behind. The
file itself may stay; what counts is the lock on it, never its existence or its content (the
content only names the holder, for the message a second scheduler prints).

On PostgreSQL the lock is a session advisory lock (``pg_try_advisory_lock``) taken on a
connection held open, outside any transaction, for the scheduler's lifetime: the server drops
it when that session ends, however the process ends, and it works across hosts. The key is
derived from the schema, so two stores in two schemas of one database have two locks. The
holder is named by the lock connection's ``application_name``.
"""

from __future__ import annotations

import fcntl
import os
import socket
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from clubjapon_ops.errors import AlreadyRunning, ConfigError, StoreError
from clubjapon_ops.store.advisory import LOCK_CLASS, current_schema, lock_key
from clubjapon_ops.store.database import Store
from clubjapon_ops.store.location import sqlite_file
from clubjapon_ops.store.types import utcnow

LOCK_SUFFIX = ".scheduler-lock"


def lock_path(store: Store) -> Path:
    """Return the lock file of a SQLite store: the database file's name plus a suffix."""
    database = sqlite_file(make_url(store.url))
    if database is None:
        raise ConfigError("the scheduler needs a database file, not an in-memory database")
    # Resolved: two spellings of one database (a symlink, a relative path, a file: URI)
    # share one lock.
    real = database.resolve()
    return real.with_name(real.name + LOCK_SUFFIX)


@contextmanager
def _sqlite_lock(store: Store) -> Iterator[str]:
    path = lock_path(store)
    try:
        # A non-inheritable descriptor: no child process can keep the lock alive.
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise StoreError(f"cannot open the scheduler's lock file {path}: {exc.strerror}") from exc
    try:
        try:
            # flock, not lockf: lockf locks belong to the process and vanish when any of its
            # descriptors on the file closes; flock belongs to this descriptor only.
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 300, 0).decode("utf-8", "replace").strip()
            raise AlreadyRunning(
                f"another scheduler is already running on this database"
                f" ({holder or 'holder unknown'}); lock file {path}"
            ) from None
        since = f"{utcnow():%Y-%m-%d %H:%M:%S} UTC"
        holder = f"pid {os.getpid()} on {socket.gethostname()} since {since}"
        os.ftruncate(fd, 0)
        os.pwrite(fd, holder.encode(), 0)
        try:
            yield f"{path} ({holder})"
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextmanager
def _postgres_lock(store: Store) -> Iterator[str]:
    since = f"{utcnow():%Y-%m-%d %H:%M:%S} UTC"
    holder = f"clubjapon-ops scheduler pid {os.getpid()} on {socket.gethostname()} since {since}"
    # A dedicated connection in autocommit: no transaction stays open for days on it, and
    # it never goes back to the pool while the lock is held.
    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        schema = current_schema(conn)
        key = lock_key("scheduler", schema)
        got = conn.execute(text("SELECT pg_try_advisory_lock(:c, :k)"),
                           {"c": LOCK_CLASS, "k": key}).scalar_one()
        if not got:
            other = conn.execute(text(
                "SELECT a.application_name, a.client_addr FROM pg_locks l"
                " JOIN pg_stat_activity a ON a.pid = l.pid"
                " WHERE l.locktype = 'advisory' AND l.granted AND l.classid = CAST(:c AS oid)"
                " AND l.objid = CAST(:k AS oid) AND l.objsubid = 2"
                " AND l.database = (SELECT oid FROM pg_database"
                "                   WHERE datname = current_database())"
            ), {"c": LOCK_CLASS, "k": key & 0xFFFFFFFF}).first()
            named = other.application_name if other and other.application_name else ""
            raise AlreadyRunning(
                "another scheduler is already running on this database"
                f" ({named.removeprefix('clubjapon-ops scheduler ') or 'holder unknown'});"
                f" PostgreSQL advisory lock on schema {schema}"
            )
        try:
            # application_name is at most 63 bytes; what is cut off only shortens the message.
            conn.execute(text("SELECT set_config('application_name', :n, false)"),
                         {"n": holder[:63]})
            yield f"PostgreSQL advisory lock on schema {schema} ({holder})"
        finally:
            try:
                conn.execute(text("SELECT pg_advisory_unlock(:c, :k)"),
                             {"c": LOCK_CLASS, "k": key})
                conn.execute(text("RESET application_name"))
            except SQLAlchemyError:
                conn.invalidate()  # the session is gone, and its lock with it


_LOCKS: dict[str, Callable[[Store], AbstractContextManager[str]]] = {
    "sqlite": _sqlite_lock,
    "postgresql": _postgres_lock,
}


def scheduler_lock(store: Store) -> AbstractContextManager[str]:
    """Hold this database's scheduler lock for a block; raise AlreadyRunning if it is taken.

    The block receives a one-line description of the lock, for logs.
    """
    make = _LOCKS.get(store.dialect)
    if make is None:
        raise StoreError(
            f"the scheduler's lock is not implemented for {store.dialect} yet (SQLite only); "
            "use `clubjapon-ops run` from cron or a systemd timer meanwhile"
        )
    return make(store)
