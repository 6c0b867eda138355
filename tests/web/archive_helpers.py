"""Helpers for the public archive tests: mark an edition sent, copy one under another name."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import insert

from clubjapon_ops.store import Store
from clubjapon_ops.store.schema import deliveries
from clubjapon_ops.store.types import utcnow
from tests.web.conftest import SLUG


def mark_sent(store: Store, slug: str, state: str = "sent", email: str = "a@example.com") -> None:
    """Write one ledger row of ``slug`` in ``state``, as a send would have."""
    now = utcnow()
    with store.transaction() as conn:
        conn.execute(insert(deliveries).values(
            edition=slug, email=email, lang="fr", state=state, attempts=1,
            created_at=now, updated_at=now))


def copy_edition(home: Path, slug: str, *, number: int, status: str = "ready") -> Path:
    """Copy the real edition as ``slug`` with another number, date and status."""
    source = (home / "config/editions" / f"{SLUG}.yaml").read_text(encoding="utf-8")
    text = (source.replace("number: 3\n", f"number: {number}\n")
            .replace("date: 2025-11-04", f"date: {slug[:10]}")
            .replace("status: ready", f"status: {status}"))
    path = home / "config/editions" / f"{slug}.yaml"
    path.write_text(text, encoding="utf-8")
    return path
