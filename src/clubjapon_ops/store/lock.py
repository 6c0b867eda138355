"""One scheduler per database, one sender per edition on SQLite: exclusive locks that die
with the process that holds them.

On SQLite the lock is an OS lock (flock) on a file next to the database: the kernel drops it
when the holder exits, however it exits, so a crashed scheduler never leaves it behind. The
file itself may stay; what counts is the lock on it, never its existence or its content (the
content only names the holder, for the message a second scheduler prints). The same kind of
file, one per edition, keeps a second `send` of an edition off a SQLite ledger.

On PostgreSQL the lock is a session advisory lock (``pg_try_advisory_lock``) taken on a
connection held open, outside any transaction, for the scheduler's lifetime: the server drops
it when that session ends, however the process ends, and it works across hosts. The key is
derived from the schema, so two stores in two schemas of one database have two locks. The
holder is named by the lock connection's ``application_name``.
"""

from __future__ import annotations

import fcntl
import os
import re
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
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
SEND_LOCK_SUFFIX = ".send-lock"


def _database_file(store: Store, needed_by: str) -> Path:
    database = sqlite_file(make_url(store.url))
    if database is None:
        raise ConfigError(f"{needed_by} needs a database file, not an in-memory database")
    # Resolved: two spellings of one database (a symlink, a relative path, a file: URI)
    # share one lock.
    return database.resolve()


def lock_path(store: Store) -> Path:
    """Return the lock file of a SQLite store: the database file's name plus a suffix."""
    real = _database_file(store, "the scheduler")
    return real.with_name(real.name + LOCK_SUFFIX)


def send_lock_path(store: Store, edition: str) -> Path:
    """Return the lock file of one edition's sends on a SQLite store, beside the database."""
    real = _database_file(store, "a send")
    # Slugs are file-name-safe already; anything else is replaced, never a path separator.
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", edition)
    return real.with_name(f"{real.name}{SEND_LOCK_SUFFIX}.{safe}")


@contextmanager
def _file_lock(path: Path, what: str, taken: str) -> Iterator[str]:
    """Hold an exclusive flock on ``path`` for the block, the file naming this process.

    ``what`` names the lock in messages; ``taken`` says what a refused holder is told.
    """
    try:
        # A non-inheritable descriptor: no child process can keep the lock alive.
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise StoreError(f"cannot open {what} lock file {path}: {exc.strerror}") from exc
    try:
        _take_or_name_holder(fd, path, taken)
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


# A holder writes its name just after it takes the lock and clears it just before it lets go:
# a contender that looks in between finds the file empty. It looks again for up to this long
# (taking the lock if it came free) before calling the holder unknown.
_NAME_WAIT_S, _NAME_POLL_S = 1.0, 0.01


def _take_or_name_holder(fd: int, path: Path, taken: str) -> None:
    """Take the flock on ``fd``, or raise AlreadyRunning naming the process that holds it."""
    deadline = time.monotonic() + _NAME_WAIT_S
    while True:
        try:
            # flock, not lockf: lockf locks belong to the process and vanish when any of its
            # descriptors on the file closes; flock belongs to this descriptor only.
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            holder = os.pread(fd, 300, 0).decode("utf-8", "replace").strip()
        if holder or time.monotonic() >= deadline:
            raise AlreadyRunning(f"{taken} ({holder or 'holder unknown'}); lock file {path}")
        time.sleep(_NAME_POLL_S)


def _sqlite_lock(store: Store) -> AbstractContextManager[str]:
    return _file_lock(lock_path(store), "the scheduler's",
                      "another scheduler is already running on this database")


@contextmanager
def _postgres_lock(store: Store, name: str = "scheduler",
                   taken: str = "another scheduler is already running on this database",
                   ) -> Iterator[str]:
    since = f"{utcnow():%Y-%m-%d %H:%M:%S} UTC"
    holder = f"clubjapon-ops {name} pid {os.getpid()} on {socket.gethostname()} since {since}"
    # A dedicated connection in autocommit: no transaction stays open for days on it, and
    # it never goes back to the pool while the lock is held.
    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        schema = current_schema(conn)
        key = lock_key(name, schema)
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
                f"{taken} ({named.removeprefix(f'clubjapon-ops {name} ') or 'holder unknown'});"
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


def send_lock(store: Store, edition: str) -> AbstractContextManager[str]:
    """Hold the lock of this edition's sends for a block; raise AlreadyRunning if another
    process holds it, naming that process.

    SQLite only: a ledger there has one sender at a time. On PostgreSQL several senders may
    share an edition (``send --worker``, SKIP LOCKED): no lock, the block runs at once.
    """
    if store.dialect != "sqlite":
        return nullcontext("no send lock on PostgreSQL: senders share the edition")
    if sqlite_file(make_url(store.url)) is None:
        return nullcontext("no send lock: an in-memory database has one process")
    return _file_lock(send_lock_path(store, edition), "the send",
                      f"another send of {edition} is running on this database")


BOUNCE_LOCK_SUFFIX = ".bounces-lock"


def bounce_lock(store: Store) -> AbstractContextManager[str]:
    """Hold the bounce mailbox's lock for a block; raise AlreadyRunning naming the holder.

    Two reads at once (the scheduler's job and an operator's command) would fetch the same
    messages and race to file them: the second's MOVE fails on what the first moved.
    """
    if store.dialect == "postgresql":
        return _postgres_lock(store, "bounces", _BOUNCES_TAKEN)
    if sqlite_file(make_url(store.url)) is None:
        return nullcontext("no bounce mailbox lock: an in-memory database has one process")
    real = _database_file(store, "the bounce mailbox")
    return _file_lock(real.with_name(real.name + BOUNCE_LOCK_SUFFIX), "the bounce mailbox's",
                      _BOUNCES_TAKEN)


_BOUNCES_TAKEN = "another read of the bounce mailbox is running on this database"
