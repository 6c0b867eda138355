"""Job runs and sync bookmarks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Connection

from clubjapon_ops.store.schema import job_runs, sync_state
from clubjapon_ops.store.types import utcnow


@dataclass(frozen=True)
class SyncState:
    """Where the last sync of one source stopped."""

    source: str
    bookmark: str | None
    updated_at: datetime | None
    last_full_sync_at: datetime | None
    full_sync_started_at: datetime | None = None


def get_sync_state(conn: Connection, source: str) -> SyncState:
    """Return the saved state of a source, empty if it never synced."""
    row = conn.execute(select(sync_state).where(sync_state.c.source == source)).first()
    if row is None:
        return SyncState(source, None, None, None)
    return SyncState(
        source, row.bookmark, row.updated_at, row.last_full_sync_at, row.full_sync_started_at
    )


def save_bookmark(
    conn: Connection, source: str, bookmark: str | None, *, full_sync_done: bool = False
) -> None:
    """Record the bookmark, in the caller's transaction, beside the rows it stands for."""
    now = utcnow()
    values: dict[str, Any] = {"bookmark": bookmark, "updated_at": now}
    if full_sync_done:
        values["last_full_sync_at"] = now
        values["full_sync_started_at"] = None
    _upsert_state(conn, source, values)


def start_full_sync(conn: Connection, source: str, started_at: datetime) -> None:
    """Record that a full sync began; it stays 'under way' until save_bookmark(full_sync_done)."""
    state = get_sync_state(conn, source)
    _upsert_state(
        conn, source,
        {"bookmark": state.bookmark, "updated_at": utcnow(), "full_sync_started_at": started_at},
    )


def _upsert_state(conn: Connection, source: str, values: dict[str, Any]) -> None:
    done = conn.execute(update(sync_state).where(sync_state.c.source == source).values(**values))
    if done.rowcount == 0:
        conn.execute(insert(sync_state).values(source=source, **values))


# A scheduled occurrence counts as handled once a run for it ends in one of these; a run that
# was interrupted ("stopped") or never finished ("running", "abandoned") is run again.
HANDLED = ("success", "failed")


def start_run(
    conn: Connection,
    job: str,
    trigger: str,
    *,
    attempt: int = 1,
    declared_job: str | None = None,
    runner: str | None = None,
) -> int:
    """Record that a job started (in process ``runner``, 'host:pid'); return the run id."""
    result = conn.execute(
        insert(job_runs).values(
            job=job, trigger=trigger, started_at=utcnow(), status="running", counts={},
            attempt=attempt, declared_job=declared_job, runner=runner,
        )
    )
    key = result.inserted_primary_key
    assert key is not None  # an INSERT into a table with a primary key always has one
    return int(key[0])


def finish_run(
    conn: Connection, run_id: int, status: str, counts: dict[str, Any], error: str | None = None
) -> None:
    """Record a job's outcome, counts, duration and error."""
    query = select(job_runs.c.started_at).where(job_runs.c.id == run_id)
    started = conn.execute(query).scalar_one()
    now = utcnow()
    conn.execute(
        update(job_runs)
        .where(job_runs.c.id == run_id)
        .values(
            status=status,
            counts=counts,
            error=error,
            finished_at=now,
            duration_s=(now - started).total_seconds(),
        )
    )


def recent_runs(conn: Connection, limit: int = 10) -> list[dict[str, Any]]:
    """Return the latest job runs, newest first."""
    rows = conn.execute(select(job_runs).order_by(job_runs.c.id.desc()).limit(limit))
    return [dict(r._mapping) for r in rows]


def last_handled_start(conn: Connection, declared_job: str, trigger: str) -> datetime | None:
    """Return when the latest handled run of a declared job by ``trigger`` started, if any."""
    query = select(func.max(job_runs.c.started_at)).where(
        job_runs.c.declared_job == declared_job,
        job_runs.c.trigger == trigger,
        job_runs.c.status.in_(HANDLED),
    )
    value: datetime | None = conn.execute(query).scalar()  # max() keeps the column's UTC type
    return value


def last_run_of(conn: Connection, declared_job: str) -> dict[str, Any] | None:
    """Return the latest run of a declared job, whatever started it."""
    row = conn.execute(
        select(job_runs)
        .where(job_runs.c.declared_job == declared_job)
        .order_by(job_runs.c.id.desc())
        .limit(1)
    ).first()
    return dict(row._mapping) if row else None


def abandon_dead_runs(conn: Connection, is_gone: Callable[[str], bool]) -> int:
    """Mark 'running' runs whose process has ended as 'abandoned'; return how many.

    Such a run was killed (SIGKILL, a crash, the machine stopped) before it could record its
    end. What it committed is kept; like any unfinished run, its job runs again."""
    rows = conn.execute(
        select(job_runs.c.id, job_runs.c.runner)
        .where(job_runs.c.status == "running", job_runs.c.runner.is_not(None))
    ).all()
    dead = [row.id for row in rows if is_gone(row.runner)]
    if dead:
        conn.execute(
            update(job_runs).where(job_runs.c.id.in_(dead), job_runs.c.status == "running")
            .values(status="abandoned", finished_at=utcnow(),
                    error="its process ended without recording the end (killed?)")
        )
    return len(dead)


def abandon_unfinished(conn: Connection, trigger: str, reason: str) -> int:
    """Mark runs by ``trigger`` still 'running' as 'abandoned'; return how many there were."""
    result = conn.execute(
        update(job_runs)
        .where(job_runs.c.trigger == trigger, job_runs.c.status == "running")
        .values(status="abandoned", error=reason, finished_at=utcnow())
    )
    return int(result.rowcount)


def last_success(conn: Connection, job: str) -> dict[str, Any] | None:
    """The latest successful run of a job function, if any."""
    row = conn.execute(
        select(job_runs).where(job_runs.c.job == job, job_runs.c.status == "success")
        .order_by(job_runs.c.id.desc()).limit(1)
    ).first()
    return None if row is None else dict(row._mapping)
