from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from clubjapon_ops import jobs
from clubjapon_ops.contacts import RawContact
from clubjapon_ops.crm.base import Page
from clubjapon_ops.errors import SourceError
from clubjapon_ops.settings import Settings
from clubjapon_ops.store import Store
from clubjapon_ops.store.runs import get_sync_state, recent_runs
from clubjapon_ops.store.schema import contacts


class ScriptedSource:
    """A source that yields given pages, then optionally fails."""

    name = "scripted"

    def __init__(self, pages: list[Page], fail_after: int | None = None) -> None:
        self._pages = pages
        self.fail_after = fail_after

    def pages(self, bookmark: str | None, *, full: bool) -> Iterator[Page]:
        for i, page in enumerate(self._pages):
            if self.fail_after is not None and i == self.fail_after:
                raise SourceError("page 2 is not JSON")
            yield page


def rec(email: object, ref: str = "r") -> RawContact:
    return RawContact(ref=ref, source="scripted", email=email)


def emails(store: Store) -> set[str]:
    with store.transaction() as conn:
        return set(conn.execute(select(contacts.c.email)).scalars())


def test_sample_csv_sync_reports_counts_and_records_the_run(
    settings: Settings, store: Store
) -> None:
    report = jobs.crm_sync(settings, store)
    c = report.counts()
    assert c["fetched"] == c["created"] + c["merged"] + c["skipped"]
    assert c["skipped"] == 6 and c["merged"] == 1 and c["created"] == 50
    with store.transaction() as conn:
        (run,) = recent_runs(conn)
    assert run["job"] == "crm_sync" and run["status"] == "success"
    assert run["counts"]["created"] == 50
    again = jobs.crm_sync(settings, store).counts()
    assert (again["created"], again["updated"], again["unchanged"]) == (0, 0, 50)


def test_bad_records_are_skipped_and_valid_ones_kept(settings: Settings, store: Store) -> None:
    page = Page(records=[rec("ok1@x.org"), rec("broken", "id-7"), rec(None, "id-8"),
                         rec("ok2@x.org")], bookmark="b1")
    report = jobs.crm_sync(settings, store, source=ScriptedSource([page]))
    assert emails(store) == {"ok1@x.org", "ok2@x.org"}
    assert report.skipped == 2
    assert report.skip_reasons == {"invalid email": 1, "no email address": 1}


def test_an_over_long_name_is_dropped_counted_and_the_contact_stored(
    settings: Settings, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    long_one = RawContact(ref="crm 9", source="scripted", email="long@x.org",
                          first_name="Secret" * 40, company="ACME" * 60, last_name="Kept")
    other = RawContact(ref="crm 10", source="scripted", email="other@x.org",
                       first_name="Yui" * 70)
    report = jobs.crm_sync(settings, store, source=ScriptedSource([Page([long_one, other])]))
    assert emails(store) == {"long@x.org", "other@x.org"}
    assert report.skipped == 0
    assert report.dropped_fields == {"first name longer than 200 characters": 2,
                                     "company longer than 200 characters": 1}
    assert report.counts()["dropped_fields"] == 3
    with store.transaction() as conn:
        row = conn.execute(select(contacts.c.first_name, contacts.c.last_name,
                                  contacts.c.company).where(contacts.c.email == "long@x.org")).one()
    assert tuple(row) == (None, "Kept", None)
    noted = [r for r in caplog.records if r.getMessage() == "contact field dropped"]
    assert sorted(getattr(r, "ref", "") for r in noted) == ["crm 10", "crm 9", "crm 9"]
    assert "Secret" not in caplog.text


def test_a_failed_sync_keeps_committed_pages_and_their_bookmark_only(
    settings: Settings, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    pages = [Page([rec("a@x.org")], bookmark="b1"), Page([rec("b@x.org")], bookmark="b2")]
    with pytest.raises(SourceError):
        jobs.crm_sync(settings, store, source=ScriptedSource(pages, fail_after=1))
    with store.transaction() as conn:
        assert get_sync_state(conn, "scripted").bookmark == "b1"
        (run,) = recent_runs(conn)
    assert emails(store) == {"a@x.org"}
    assert run["status"] == "failed" and "not JSON" in run["error"]
    jobs.crm_sync(settings, store, source=ScriptedSource(pages))
    assert emails(store) == {"a@x.org", "b@x.org"}


def test_skipped_records_are_logged_by_reference_not_content(
    settings: Settings, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    bad = RawContact(ref="crm 42", source="scripted", email="nope", first_name="Secret Name")
    jobs.crm_sync(settings, store, source=ScriptedSource([Page([bad])]))
    skipped = [r for r in caplog.records if r.getMessage() == "contact skipped"]
    assert [getattr(r, "ref", None) for r in skipped] == ["crm 42"]
    assert "Secret Name" not in caplog.text


def test_sync_of_missing_csv_fails_cleanly(
    settings: Settings, store: Store, tmp_path: Path
) -> None:
    missing = settings.with_overrides(csv_path=tmp_path / "nope.csv")
    with pytest.raises(SourceError, match="not found"):
        jobs.crm_sync(missing, store)
    assert emails(store) == set()


def test_progress_is_told_after_each_committed_batch(settings: Settings, store: Store) -> None:
    pages = [Page([rec(f"r{p}-{i}@example.com") for i in range(10)], bookmark=str(p))
             for p in range(5)]
    seen: list[tuple[int, int]] = []
    report = jobs.crm_sync(settings, store, source=ScriptedSource(pages), batch_size=20,
                           progress=lambda r: seen.append((r.fetched, r.upserts.created)))
    assert seen == [(20, 20), (40, 40)]  # after each batch of 20; the last 10 end the run
    assert report.fetched == 50 and len(emails(store)) == 50
