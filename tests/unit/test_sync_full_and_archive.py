"""The sync job with a CRM-like source: full-sync cadence, resumption, archiving, batches."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from clubjapon_ops import jobs
from clubjapon_ops.contacts import RawContact
from clubjapon_ops.crm.base import Page
from clubjapon_ops.errors import SourceError
from clubjapon_ops.settings import Settings
from clubjapon_ops.store import Store
from clubjapon_ops.store.runs import get_sync_state
from clubjapon_ops.store.schema import contacts, suppressions, sync_state

NAME = "crmlike"


def rec(n: int, **fields: object) -> RawContact:
    return RawContact(ref=f"{NAME} {n}", source=NAME, email=f"c{n}@example.org",
                      crm_id=str(n), **fields)  # type: ignore[arg-type]


class CrmLike:
    """A CRM-shaped source: full passes list everyone, incremental ones the changes."""

    name = NAME
    archives_missing = True
    full_sync_every = timedelta(days=7)

    def __init__(self, everyone: list[RawContact], changes: list[RawContact] | None = None,
                 *, per_page: int = 2, fail_at: int | None = None) -> None:
        self.everyone = everyone
        self.changes = changes or []
        self.per_page = per_page
        self.fail_at = fail_at
        self.calls: list[tuple[str | None, bool]] = []

    def pages(self, bookmark: str | None, *, full: bool) -> Iterator[Page]:
        self.calls.append((bookmark, full))
        records = self.everyone if full else self.changes
        resume = full and bookmark is not None and bookmark.startswith("full:")
        start = int(bookmark.split(":")[1]) if resume and bookmark else 0
        for i in range(start, len(records), self.per_page):
            if self.fail_at is not None and i >= self.fail_at:
                raise SourceError("connection lost")
            end = i + self.per_page
            mark = f"full:{end}" if full and end < len(records) else "since:now"
            yield Page(records[i:end], bookmark=mark)


def rows(store: Store) -> dict[str, datetime | None]:
    with store.transaction() as conn:
        return dict(conn.execute(select(contacts.c.email, contacts.c.archived_at)).all())


def active(store: Store) -> set[str]:
    return {email for email, archived in rows(store).items() if archived is None}


def test_a_complete_full_sync_archives_what_the_crm_no_longer_returns(
    settings: Settings, store: Store
) -> None:
    jobs.crm_sync(settings, store, source=CrmLike([rec(1), rec(2), rec(3, opted_out="yes")]))
    report = jobs.crm_sync(settings, store, full=True, source=CrmLike([rec(1), rec(2)]))
    assert report.archived == 1
    assert active(store) == {"c1@example.org", "c2@example.org"}
    assert set(rows(store)) == {"c1@example.org", "c2@example.org", "c3@example.org"}
    with store.transaction() as conn:  # history kept: the CRM opt-out still suppresses
        assert conn.execute(select(suppressions.c.email)).scalars().all() == ["c3@example.org"]
    jobs.crm_sync(settings, store, full=True, source=CrmLike([rec(1), rec(2), rec(3)]))
    assert len(active(store)) == 3  # returned again: no longer archived


def test_an_incremental_sync_never_archives(settings: Settings, store: Store) -> None:
    jobs.crm_sync(settings, store, source=CrmLike([rec(1), rec(2), rec(3)]))
    report = jobs.crm_sync(settings, store, source=CrmLike([rec(1)], changes=[rec(1)]))
    assert not report.full and report.archived == 0
    assert len(active(store)) == 3


def test_a_full_sync_that_fails_archives_nothing_and_resumes_with_its_stamp(
    settings: Settings, store: Store
) -> None:
    jobs.crm_sync(settings, store, source=CrmLike([rec(n) for n in range(1, 8)]))
    still_there = [rec(n) for n in (1, 2, 3, 4, 6)]
    with pytest.raises(SourceError):
        jobs.crm_sync(settings, store, full=True,
                      source=CrmLike(still_there, per_page=2, fail_at=4))
    assert len(active(store)) == 7
    with store.transaction() as conn:
        state = get_sync_state(conn, NAME)
    assert state.full_sync_started_at is not None and state.bookmark == "full:4"
    # The next run, even unasked, resumes the full pass from its cursor...
    again = CrmLike(still_there, per_page=2)
    report = jobs.crm_sync(settings, store, source=again)
    assert again.calls == [("full:4", True)] and report.full
    # ... and archives exactly what the whole pass (both runs) did not see.
    assert active(store) == {f"c{n}@example.org" for n in (1, 2, 3, 4, 6)}
    with store.transaction() as conn:
        state = get_sync_state(conn, NAME)
    assert state.full_sync_started_at is None and state.last_full_sync_at is not None


@pytest.mark.parametrize(
    ("days_ago", "full"),
    [(1, False), (6.9, False), (7, True), (30, True)],
    ids=["yesterday", "almost-a-week", "a-week", "a-month"],
)
def test_a_full_sync_runs_on_its_own_every_n_days(
    settings: Settings, store: Store, days_ago: float, full: bool
) -> None:
    jobs.crm_sync(settings, store, source=CrmLike([rec(1)]))
    with store.transaction() as conn:
        conn.execute(update(sync_state).values(
            last_full_sync_at=datetime.now(UTC) - timedelta(days=days_ago)))
    source = CrmLike([rec(1)], changes=[rec(1)])
    assert jobs.crm_sync(settings, store, source=source).full is full
    assert source.calls[0][1] is full


def test_an_empty_full_sync_archives_nothing(settings: Settings, store: Store) -> None:
    jobs.crm_sync(settings, store, source=CrmLike([rec(1), rec(2)]))
    report = jobs.crm_sync(settings, store, full=True, source=CrmLike([]))
    assert report.archived == 0 and len(active(store)) == 2


def test_a_record_that_fails_validation_keeps_its_stored_row_active(
    settings: Settings, store: Store
) -> None:
    jobs.crm_sync(settings, store, source=CrmLike([rec(1), rec(2)]))
    broken = rec(2, first_name={"not": "text"})
    report = jobs.crm_sync(settings, store, full=True, source=CrmLike([rec(1), broken]))
    assert report.skipped == 1 and report.archived == 0
    assert len(active(store)) == 2


def test_pages_commit_in_batches_and_a_failure_keeps_the_whole_pages_received(
    settings: Settings, store: Store
) -> None:
    source = CrmLike([rec(n) for n in range(1, 10)], per_page=1, fail_at=5)
    with pytest.raises(SourceError):
        jobs.crm_sync(settings, store, source=source, batch_size=2)
    with store.transaction() as conn:
        assert get_sync_state(conn, NAME).bookmark == "full:5"
    assert len(rows(store)) == 5
