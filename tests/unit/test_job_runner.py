"""The runner behind `run` and the scheduler: retries, attempt records, stop requests."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from clubjapon_ops import jobs
from clubjapon_ops.contacts import RawContact
from clubjapon_ops.crm.base import Page
from clubjapon_ops.errors import ConfigError, Interrupted, RetryableError, SourceError
from clubjapon_ops.jobfiles import JobSpec, RetryPolicy
from clubjapon_ops.jobs.registry import JobFunction, execute
from clubjapon_ops.processes import process_id
from clubjapon_ops.scheduler import JobScheduler, make_trigger
from clubjapon_ops.settings import Settings
from clubjapon_ops.store import Store
from clubjapon_ops.store.runs import finish_run, recent_runs, start_run
from clubjapon_ops.store.schema import contacts, job_runs
from clubjapon_ops.store.types import utcnow


@dataclass
class Done(jobs.Report):
    n: int

    def counts(self) -> dict[str, Any]:
        return {"n": self.n}


class Flaky:
    """A job function that raises the given errors, one per call, then succeeds."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls: list[dict[str, Any]] = []

    def __call__(self, settings: Settings, store: Store, *, trigger: str,
                 stop: threading.Event, **args: Any) -> Done:
        self.calls.append(args)

        def work() -> Done:
            if self.errors:
                raise self.errors.pop(0)
            return Done(len(self.calls))

        return jobs.run_recorded(store, "flaky", trigger, work)


def spec(attempts: int = 3, delay: float = 0.01, **kwargs: Any) -> JobSpec:
    values: dict[str, Any] = {
        "name": "flaky-job", "file": "jobs/flaky-job.toml", "function": "flaky",
        "enabled": True, "timezone": ZoneInfo("Europe/Paris"), "cron": "30 2 * * *",
        "retry": RetryPolicy(attempts, delay),
    }
    values.update(kwargs)
    return JobSpec(**values)


def runs(store: Store) -> list[tuple[str, str, int, str | None]]:
    with store.transaction() as conn:
        rows = recent_runs(conn, 50)
    return [(r["status"], r["trigger"], r["attempt"], r["declared_job"]) for r in reversed(rows)]


def registry(function: Callable[..., jobs.Report]) -> dict[str, JobFunction]:
    return {"flaky": JobFunction(function, {"size": int})}


def test_a_job_that_fails_then_succeeds_on_retry(settings: Settings, store: Store) -> None:
    flaky = Flaky(SourceError("CRM down"))
    waits: list[float] = []
    stop = threading.Event()

    def wait(seconds: float) -> bool:
        waits.append(seconds)
        return stop.wait(seconds)

    report = execute(spec(args={"size": 5}), settings, store, trigger="run", stop=stop,
                     registry=registry(flaky), wait=wait)
    assert report.counts() == {"n": 2}
    assert flaky.calls == [{"size": 5}, {"size": 5}]
    assert waits == [0.01]
    assert runs(store) == [("failed", "run", 1, "flaky-job"), ("success", "run", 2, "flaky-job")]


def test_every_attempt_is_recorded_and_logged_then_the_last_error_raised(
    settings: Settings, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="clubjapon_ops")
    flaky = Flaky(*(SourceError(f"down {i}") for i in range(3)))
    with pytest.raises(SourceError, match="down 2"):
        execute(spec(), settings, store, trigger="scheduler", stop=threading.Event(),
                registry=registry(flaky))
    assert [r[0] for r in runs(store)] == ["failed"] * 3
    assert [r[2] for r in runs(store)] == [1, 2, 3]
    messages = [(r.getMessage(), getattr(r, "attempt", None)) for r in caplog.records
                if r.name == "clubjapon_ops.jobs.registry"]
    assert messages == [
        ("job started", 1), ("job attempt failed", 1), ("job started", 2),
        ("job attempt failed", 2), ("job started", 3), ("job failed", 3),
    ]


def test_a_provider_retry_after_longer_than_the_delay_wins(
    settings: Settings, store: Store
) -> None:
    waits: list[float] = []
    flaky = Flaky(RetryableError("429", retry_after=0.05))
    execute(spec(), settings, store, trigger="run", stop=threading.Event(),
            registry=registry(flaky), wait=lambda s: waits.append(s) or False)
    assert waits == [0.05]


@pytest.mark.parametrize("error", [ConfigError("bad setting"), Interrupted("asked to stop")])
def test_settings_errors_and_stop_requests_are_not_retried(
    settings: Settings, store: Store, error: Exception
) -> None:
    flaky = Flaky(error)
    with pytest.raises(type(error)):
        execute(spec(), settings, store, trigger="run", stop=threading.Event(),
                registry=registry(flaky))
    assert len(flaky.calls) == 1


def test_a_stop_during_the_retry_wait_ends_the_retries(settings: Settings, store: Store) -> None:
    stop = threading.Event()
    flaky = Flaky(SourceError("down"))

    def stop_while_waiting(_seconds: float) -> bool:
        stop.set()
        return True

    with pytest.raises(SourceError):
        execute(spec(delay=600), settings, store, trigger="scheduler", stop=stop,
                registry=registry(flaky), wait=stop_while_waiting)
    assert len(flaky.calls) == 1


def test_a_job_whose_function_is_missing_cannot_run(settings: Settings, store: Store) -> None:
    with pytest.raises(ConfigError, match="'send_campaign' is not available"):
        execute(spec(function="send_campaign", enabled=False), settings, store, trigger="run",
                stop=threading.Event(), registry=registry(Flaky()))


# --- the stop flag in crm_sync --------------------------------------------------------------


class Pages:
    name = "paged"

    def __init__(self, count: int, on_page: Callable[[int], None] = lambda i: None) -> None:
        self.count = count
        self.on_page = on_page

    def pages(self, bookmark: str | None, *, full: bool) -> Any:
        for i in range(self.count):
            self.on_page(i)
            yield Page([RawContact(ref=f"r{i}-{j}", source="paged", email=f"p{i}-{j}@x.org")
                        for j in range(10)], bookmark=f"b{i}")


def count_contacts(store: Store) -> int:
    with store.transaction() as conn:
        return len(conn.execute(select(contacts.c.email)).all())


def test_a_stopped_sync_ends_after_its_current_page_and_a_rerun_completes_it(
    settings: Settings, store: Store
) -> None:
    stop = threading.Event()
    source = Pages(5, on_page=lambda i: stop.set() if i == 1 else None)  # SIGTERM on page 2
    with pytest.raises(Interrupted, match=r"after page \d") as info:
        jobs.crm_sync(settings, store, source=source, stop=stop)
    # The next page is read ahead while one is stored, so the stop lands after page 1 or 2;
    # either way only whole pages are kept, and the record says which.
    pages = int(str(info.value).rsplit(" ", 1)[-1])
    assert pages in (1, 2)
    assert count_contacts(store) == 10 * pages
    assert info.value.counts["created"] == 10 * pages
    with store.transaction() as conn:
        (run,) = recent_runs(conn)
    assert (run["status"], run["counts"]["pages"]) == ("stopped", pages)
    report = jobs.crm_sync(settings, store, source=Pages(5))
    assert count_contacts(store) == 50
    assert (report.upserts.created, report.upserts.unchanged) == (50 - 10 * pages, 10 * pages)


# --- the scheduler in this process, with APScheduler's real clock -----------------------------


def wait_for(condition: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_the_scheduler_retries_a_failing_job_and_stops_on_request(
    settings: Settings, store: Store
) -> None:
    flaky = Flaky(SourceError("CRM down"), SourceError("still down"))
    due = spec(date=utcnow() - timedelta(seconds=1), cron=None, retry=RetryPolicy(3, 0.01))
    scheduler = JobScheduler(settings, store, [due], registry=registry(flaky))
    thread = threading.Thread(target=scheduler.run)
    thread.start()
    try:
        wait_for(lambda: any(r[0] == "success" for r in runs(store)))
    finally:
        scheduler.request_stop()
        thread.join(10)
    assert not thread.is_alive()
    assert runs(store) == [
        ("failed", "scheduler", 1, "flaky-job"),
        ("failed", "scheduler", 2, "flaky-job"),
        ("success", "scheduler", 3, "flaky-job"),
    ]


def test_a_scheduler_coalesces_the_runs_missed_while_down_into_one(
    settings: Settings, store: Store
) -> None:
    # Hourly, at the minute half an hour from now; the last run was three hours ago, so two
    # or three fire times passed (the latest 30 minutes ago) and the next is 30 minutes away.
    now = utcnow()
    with store.transaction() as conn:
        run_id = start_run(conn, "flaky", "scheduler", declared_job="flaky-job")
        finish_run(conn, run_id, "success", {})
        conn.execute(job_runs.update().values(started_at=now - timedelta(hours=3)))
    flaky = Flaky()
    hourly = spec(cron=f"{(now.minute + 30) % 60} * * * *", misfire_grace=timedelta(hours=1))
    scheduler = JobScheduler(settings, store, [hourly], registry=registry(flaky))
    thread = threading.Thread(target=scheduler.run)
    thread.start()
    upcoming = make_trigger(hourly).get_next_fire_time(None, now)

    def next_run() -> Any:
        job = scheduler._aps.get_job(hourly.name) if scheduler._aps is not None else None
        return job.next_run_time if job is not None else None

    try:
        # Once the catch-up ran, the job's next start is the upcoming hour's: no second
        # catch-up is queued behind it (a sleep could only hope to see one start).
        wait_for(lambda: len(runs(store)) == 2 and runs(store)[1][0] == "success"
                 and next_run() is not None and next_run() > utcnow())
        assert next_run() == upcoming
    finally:
        scheduler.request_stop()
        thread.join(10)
    assert len(flaky.calls) == 1


def test_a_stop_requested_before_start_ends_the_scheduler_at_once(
    settings: Settings, store: Store
) -> None:
    scheduler = JobScheduler(settings, store, [spec()], registry=registry(Flaky()))
    scheduler.request_stop()
    thread = threading.Thread(target=scheduler.run)
    thread.start()
    thread.join(10)
    assert not thread.is_alive()
    assert runs(store) == []


def test_a_run_whose_process_was_killed_is_marked_abandoned_by_the_next_run(
    store: Store,
) -> None:
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)
    dead = f"{socket.gethostname()}:{int(ended.stdout)}"
    with store.transaction() as conn:
        killed = start_run(conn, "sync", "cli", runner=dead)
        alive = start_run(conn, "sync", "cli", runner=process_id())  # this very process
        elsewhere = start_run(conn, "sync", "cli", runner=f"other-host.example:{os.getpid()}")
        older = start_run(conn, "sync", "cli")  # before migration 9: nobody to ask
    jobs.run_recorded(store, "flaky", "cli", lambda: Done(1))
    with store.transaction() as conn:
        rows = {r.id: r for r in conn.execute(select(job_runs)).all()}
    assert rows[killed].status == "abandoned" and "killed" in (rows[killed].error or "")
    assert rows[killed].finished_at is not None
    assert [rows[i].status for i in (alive, elsewhere, older)] == ["running"] * 3
    newest = max(rows)
    assert (rows[newest].status, rows[newest].runner) == ("success", process_id())
