"""A token bucket kept in the store, so that parallel senders share one rate limit."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Connection

from clubjapon_ops.errors import StoreError

# The server's clock, not the workers': workers on several hosts agree on it. Tokens may go
# negative: that reserves them, and the caller waits -tokens/rate before using them.
_TAKE = text("""
INSERT INTO send_rate AS b (name, tokens, updated_at)
VALUES (:name, :capacity - :n, clock_timestamp())
ON CONFLICT (name) DO UPDATE SET
    tokens = LEAST(:capacity,
                   b.tokens + EXTRACT(EPOCH FROM clock_timestamp() - b.updated_at) * :rate)
             - :n,
    updated_at = clock_timestamp()
RETURNING tokens
""")


def take_tokens(conn: Connection, name: str, rate: float, capacity: float, n: float) -> float:
    """Take ``n`` tokens from the shared bucket ``name``; return the seconds to wait first."""
    if conn.dialect.name != "postgresql":
        raise StoreError("a shared rate limit needs PostgreSQL")
    left = float(conn.execute(
        _TAKE, {"name": name, "rate": rate, "capacity": capacity, "n": n}
    ).scalar_one())
    return -left / rate if left < 0 else 0.0
