"""One scheduler per database: an exclusive lock that dies with the process that holds it.

On SQLite the lock is an OS lock (flock) on a file next to the database: the kernel drops it
when the holder exits, however it exits, so a crashed scheduler never leaves it behind. The
file itself may stay; what counts is the lock on it, never its existence or its content (the
content only names the holder, for the message a second scheduler prints).

The same context manager is where a PostgreSQL session advisory lock will go
(``pg_try_advisory_lock`` on a connection held for the scheduler's lifetime): add a function
to ``_LOCKS``; callers do not change.
"""

from __future__ import annotations

import fcntl
import os
import socket
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from sqlalchemy.engine import make_url

from clubjapon_ops.errors import AlreadyRunning, ConfigError, StoreError
from clubjapon_ops.store.database import Store
from clubjapon_ops.store.types import utcnow

LOCK_SUFFIX = ".scheduler-lock"


def lock_path(store: Store) -> Path:
    """Return the lock file of a SQLite store: the database file's name plus a suffix."""
    database = make_url(str(store.engine.url)).database
    if not database or database == ":memory:":
        raise ConfigError("the scheduler needs a database file, not an in-memory database")
    # Resolved: two spellings of one database (a symlink, a relative path) share one lock.
    real = Path(database).resolve()
    return real.with_name(real.name + LOCK_SUFFIX)


@contextmanager
def _sqlite_lock(store: Store) -> Iterator[str]:
    path = lock_path(store)
    try:
        # A non-inheritable descriptor: no child process can keep the lock alive.
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
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


_LOCKS: dict[str, Callable[[Store], AbstractContextManager[str]]] = {
    "sqlite": _sqlite_lock,
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
