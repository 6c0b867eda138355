"""Unsubscribes the database could not take at once: kept in a file, applied when it can.

A reader answered 200 must stay unsubscribed whatever held the store then (a long write on
SQLite, PostgreSQL down). The public app appends such an unsubscribe to an append-only file
under var/ (owner-only, fsync'd before the answer), and whoever next reaches the database
applies it: the app itself (a retry every few seconds, and at start), and every send, in the
transaction that hands its next row over, so the reader is skipped, never mailed.

Appends and removals take an exclusive flock on the file; a removal rewrites the file under
a new inode (written, fsync'd, renamed), so an appender checks, once it holds the lock, that
its file is still the one at the path.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import SQLAlchemyError

from clubjapon_ops.errors import StoreError
from clubjapon_ops.files import private_folder
from clubjapon_ops.store.database import Store
from clubjapon_ops.store.location import busy_timeout
from clubjapon_ops.store.schema import deliveries, suppressions
from clubjapon_ops.store.types import utcnow

log = logging.getLogger(__name__)
FILE_NAME = "pending-unsubscribes.jsonl"


def pending_path(root: Path) -> Path:
    """The file of a project: var/pending-unsubscribes.jsonl under its root."""
    return Path(root) / "var" / FILE_NAME


def _fsync_folder(folder: Path) -> None:
    """Make a file's creation, rename or removal durable, not only its content."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class PendingUnsubscribes:
    """The append-only file of unsubscribes waiting for the database."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextmanager
    def _locked(self, flags: int) -> Iterator[int]:
        """The file open and exclusively locked, the one at the path (not a replaced one)."""
        while True:
            fd = os.open(self.path, flags, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                try:
                    current = os.stat(self.path).st_ino
                except FileNotFoundError:
                    current = -1
                if current == os.fstat(fd).st_ino:
                    yield fd
                    return
            finally:
                os.close(fd)  # releases the lock

    def add(self, email: str | None, reason: str, source: str, *,
            row: int | None = None) -> None:
        """Keep one unsubscribe, on disk (fsync'd) before this returns: of an address, or
        of the reader of ledger row ``row`` (a link's token names the row, not the address:
        the address is found when the database answers again)."""
        folder = private_folder(self.path.parent)
        item: dict[str, Any] = {"email": email} if row is None else {"row": row}
        line = json.dumps({**item, "reason": reason, "source": source,
                           "at": utcnow().isoformat()}, ensure_ascii=False) + "\n"
        with self._locked(os.O_WRONLY | os.O_APPEND | os.O_CREAT) as fd:
            os.fchmod(fd, 0o600)  # a list of addresses, whatever the umask
            os.write(fd, line.encode("utf-8"))
            os.fsync(fd)
        _fsync_folder(folder)

    def waiting(self) -> bool:
        """True when unsubscribes wait in the file (one stat: cheap enough per hand-over)."""
        try:
            return self.path.stat().st_size > 0
        except FileNotFoundError:
            return False

    def _read(self) -> bytes:
        try:
            with self._locked(os.O_RDONLY) as fd:
                return _read_all(fd)
        except FileNotFoundError:
            return b""

    def apply(self, conn: Connection) -> int:
        """Suppress, in the caller's transaction, every address waiting; return how many were
        new. The file keeps them (see :meth:`drain`): applying twice changes nothing."""
        return _insert(conn, _entries(self._read()))

    def drain(self, store: Store, wait_s: float) -> int:
        """Apply the waiting unsubscribes in a transaction of their own, waiting at most
        ``wait_s`` for the store, then remove them from the file; return how many were new.

        Raise the store's error if it still cannot take them: they stay in the file.
        """
        if not self.waiting():
            return 0
        seen = self._read()
        rows = _entries(seen)
        with quick_transaction(store, wait_s) as conn:
            added = _insert(conn, rows)
        self._forget(seen)
        if rows:
            log.info("kept unsubscribes applied", extra={"applied": len(rows), "new": added})
        return added

    def try_drain(self, store: Store, wait_s: float) -> bool:
        """:meth:`drain`, answering False instead of raising when the store does not take
        them within ``wait_s``: the caller then applies them in its own transaction."""
        try:
            self.drain(store, wait_s)
        except (StoreError, SQLAlchemyError) as exc:
            log.info("kept unsubscribes not drained yet (%s)", type(exc).__name__)
            return False
        return True

    def _forget(self, seen: bytes) -> None:
        """Remove from the file what was applied: the lines ``seen``, kept before any later."""
        try:
            with self._locked(os.O_RDONLY) as fd:
                content = _read_all(fd)
                if not content.startswith(seen):
                    return  # another drain removed them already
                rest = content[len(seen):]
                if not rest:
                    self.path.unlink()
                else:
                    tmp = self.path.with_name(self.path.name + ".tmp")
                    out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                    try:
                        os.write(out, rest)
                        os.fsync(out)
                    finally:
                        os.close(out)
                    os.replace(tmp, self.path)
                _fsync_folder(self.path.parent)
        except FileNotFoundError:
            return


def _insert(conn: Connection, rows: list[dict[str, Any]]) -> int:
    """Insert the suppressions not stored yet (by email and source); return how many."""
    rows = _with_addresses(conn, rows)
    if not rows:
        return 0
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(suppressions).values(rows).on_conflict_do_nothing(
        index_elements=["email", "source"]).returning(suppressions.c.id)
    # Counted from RETURNING (the rows inserted): psycopg gives no rowcount for this form.
    return len(conn.execute(stmt).all())


def _with_addresses(conn: Connection, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The entries that name a ledger row, given the row's address (and edition in the
    reason); an entry whose row is not there is left out, said once in the log."""
    wanted = {int(r["row"]) for r in rows if "row" in r}
    if not wanted:
        return rows
    found = {r.id: r for r in conn.execute(
        select(deliveries.c.id, deliveries.c.email, deliveries.c.edition)
        .where(deliveries.c.id.in_(sorted(wanted))))}
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for entry in rows:
        if "row" in entry:
            ledger = found.get(int(entry["row"]))
            if ledger is None:
                log.warning("a kept unsubscribe names a ledger row that is not there: "
                            "left out")
                continue
            entry = {"email": ledger.email, "source": entry["source"],
                     "reason": f"unsubscribe link, edition {ledger.edition}",
                     "created_at": entry["created_at"]}
        out.setdefault((entry["email"], entry["source"]), entry)
    return list(out.values())


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 16):
        chunks.append(chunk)
    return b"".join(chunks)


def _entries(data: bytes) -> list[dict[str, Any]]:
    """The complete lines, deduplicated by (email, source); a torn last line (a crash in the
    middle of an append, never answered) is left out."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    now = utcnow()
    for line in data.splitlines(keepends=True):
        if not line.endswith(b"\n"):
            continue
        try:
            item = json.loads(line)
            source = str(item["source"])
            if "row" in item:  # the reader of a ledger row: found when applied
                row = int(item["row"])
                rows.setdefault((f"row {row}", source), {"row": row, "source": source,
                                                          "created_at": now})
                continue
            key = (str(item["email"]), source)
        except (ValueError, KeyError, TypeError):
            log.warning("a line of the kept unsubscribes cannot be read: left out")
            continue
        rows.setdefault(key, {"email": key[0], "source": key[1],
                              "reason": str(item.get("reason") or "unsubscribe"),
                              "created_at": now})
    return list(rows.values())


@contextmanager
def quick_transaction(store: Store, wait_s: float) -> Iterator[Connection]:
    """A transaction that waits at most ``wait_s`` for another writer's locks, then fails
    (SQLite's busy timeout, PostgreSQL's lock and statement timeouts), instead of 30 s."""
    with store.engine.connect() as conn:
        sqlite_db = conn.dialect.name == "sqlite"
        if sqlite_db:
            conn.exec_driver_sql(f"PRAGMA busy_timeout = {int(wait_s * 1000)}")
            conn.commit()  # ends SQLAlchemy's autobegun transaction (no BEGIN was sent)
        try:
            with conn.begin():
                if not sqlite_db:
                    ms = int(wait_s * 1000)
                    conn.exec_driver_sql(f"SET LOCAL lock_timeout = {ms}")
                    conn.exec_driver_sql(f"SET LOCAL statement_timeout = {ms}")
                yield conn
        finally:
            if sqlite_db:
                conn.exec_driver_sql(
                    f"PRAGMA busy_timeout = {int(_busy_timeout(store) * 1000)}")
                conn.commit()


def _busy_timeout(store: Store) -> float:
    return busy_timeout(make_url(store.url))
