"""PostgreSQL advisory locks, keyed by purpose and schema, for what must happen one at a time."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

# pg_*advisory_lock(int, int): the first half says "clubjapon-ops", so our keys cannot collide
# with another application's single-bigint advisory locks in the same database.
LOCK_CLASS = 0x434A4F50  # "CJOP"


def lock_key(purpose: str, schema: str) -> int:
    """A stable signed 32-bit key (Python's hash() changes from one process to the next)."""
    digest = hashlib.sha256(f"{purpose}\0{schema}".encode()).digest()
    return int.from_bytes(digest[:4], "big", signed=True)


def current_schema(conn: Connection) -> str:
    """The schema unqualified table names resolve to: one store per schema."""
    return str(conn.execute(text("SELECT current_schema()")).scalar_one())


def xact_lock(conn: Connection, purpose: str) -> None:
    """Wait for, then hold until the end of this transaction, the lock for ``purpose``."""
    key = lock_key(purpose, current_schema(conn))
    conn.execute(text("SELECT pg_advisory_xact_lock(:c, :k)"), {"c": LOCK_CLASS, "k": key})


@contextmanager
def session_lock(engine: Engine, purpose: str) -> Iterator[None]:
    """Wait for, then hold for the block, the lock for ``purpose`` on a connection of its own."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        key = lock_key(purpose, current_schema(conn))
        params = {"c": LOCK_CLASS, "k": key}
        conn.execute(text("SELECT pg_advisory_lock(:c, :k)"), params)
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:c, :k)"), params)
