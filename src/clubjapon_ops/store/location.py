"""Where a SQLite URL keeps its file: the store's name for clubjapon_ops.database_location.

The functions live on the ground floor, so that settings.py can anchor the database URL
without importing store/.
"""

from __future__ import annotations

from clubjapon_ops.database_location import (
    BUSY_TIMEOUT_S,
    anchor_sqlite,
    busy_timeout,
    check_sqlite_url,
    creates_file,
    is_sqlite,
    is_uri,
    read_only,
    shown,
    sqlite_file,
)

__all__ = [
    "BUSY_TIMEOUT_S", "anchor_sqlite", "busy_timeout", "check_sqlite_url", "creates_file",
    "is_sqlite", "is_uri", "read_only", "shown", "sqlite_file",
]
