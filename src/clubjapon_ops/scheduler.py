"""The scheduler: APScheduler 3 running the jobs declared in jobs/, one per database.

The only module that imports APScheduler. Its parts:

- triggers: crontab expressions and one-off dates in the job's time zone, with a cron trigger
  that fires a wall-clock time once on the night the clocks go back;
- start plans: what ran while no scheduler did. Job definitions live in jobs/, so APScheduler
  keeps them in memory; job_runs already says when each job last ran, which is all it takes to
  find the runs missed while the machine was down (see :func:`plan_start`);
- :class:`JobScheduler`: holds the database's scheduler lock, runs BlockingScheduler with
  ``max_instances=1`` and coalescing, and on request stops after the current batch.
"""

from __future__ import annotations

import logging
import math
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.events import EVENT_SCHEDULER_STARTED, SchedulerEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger

from clubjapon_ops.errors import ConfigError, Interrupted
from clubjapon_ops.jobfiles import JobSpec, load_job_files
from clubjapon_ops.jobs.registry import (
    REGISTRY,
    JobFunction,
    check_functions,
    execute,
    missing_settings,
)
from clubjapon_ops.settings import Settings
from clubjapon_ops.store import Store
from clubjapon_ops.store.lock import scheduler_lock
from clubjapon_ops.store.runs import abandon_unfinished, last_handled_start
from clubjapon_ops.store.types import utcnow

log = logging.getLogger(__name__)

TRIGGER = "scheduler"  # job_runs.trigger of the runs the scheduler starts
MAX_COUNTED_MISSES = 100_000  # a minutely job down for 69 days; an hourly one for 11 years
WORKERS = 4
Clock = Callable[[], datetime]


# --- triggers -------------------------------------------------------------------------------


class WallClockCron(CronTrigger):  # type: ignore[misc]  # APScheduler ships no type hints
    """A cron trigger that fires a wall-clock time once when the clocks go back.

    APScheduler 3 fires '30 2 * * *' twice on the autumn night in Europe/Paris (02:30 summer
    time, then 02:30 winter time, an hour later). Like Vixie cron, a job with a fixed hour runs
    only at the first of the two; a job whose hour field starts with '*' (every hour, every
    two hours) keeps running on real time. A time skipped in spring runs an hour later, at the
    same instant as it would have (02:30 becomes 03:30 summer time), once.
    """

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        """Return the next fire time after ``previous_fire_time`` (or from ``now``)."""
        fire: datetime | None = super().get_next_fire_time(previous_fire_time, now)
        while fire is not None and self._second_of_two(fire):
            fire = super().get_next_fire_time(fire, fire)
        # Through UTC and back: a time in the spring gap is shown as the instant it really is.
        return None if fire is None else fire.astimezone(UTC).astimezone(self.timezone)

    def _second_of_two(self, fire: datetime) -> bool:
        hour = str(self.fields[self.FIELD_NAMES.index("hour")])
        repeated = fire.fold == 1 and fire.utcoffset() != fire.replace(fold=0).utcoffset()
        return repeated and not hour.startswith("*")


# A weekday number in the crontab's last field; steps ("*/2") are not weekdays.
_WEEKDAY_NUMBER = re.compile(r"(?<![/\d])\d")


def make_trigger(spec: JobSpec) -> BaseTrigger:
    """Build the APScheduler trigger for a job; raise ConfigError naming the file and field."""
    if spec.date is not None:
        return DateTrigger(run_date=spec.date, timezone=spec.timezone)
    assert spec.cron is not None  # the parser guarantees one of the two
    fields = spec.cron.split()
    if len(fields) == 5 and _WEEKDAY_NUMBER.search(fields[4]):
        # APScheduler 3 counts 0 as Monday, crontab as Sunday: names leave no doubt.
        raise ConfigError(
            f"{spec.file}: trigger.cron: write the day of the week as mon, tue, ... sun, not a "
            f"number (crontab and APScheduler disagree on numbers), got {spec.cron!r}"
        )
    try:
        trigger: BaseTrigger = WallClockCron.from_crontab(spec.cron, timezone=spec.timezone)
    except ValueError as exc:
        raise ConfigError(
            f"{spec.file}: trigger.cron: {exc} (expected 'minute hour day month weekday', "
            f"such as '30 2 * * *'), got {spec.cron!r}"
        ) from None
    return trigger


def load_jobs(folder: Path, registry: Mapping[str, JobFunction] = REGISTRY) -> list[JobSpec]:
    """Read and check every job file: structure, functions of enabled jobs, triggers."""
    specs = load_job_files(folder)
    check_functions(specs, registry)
    for spec in specs:
        make_trigger(spec)
    return specs


def fire_times(trigger: BaseTrigger, after: datetime, until: datetime) -> Iterator[datetime]:
    """Yield the trigger's fire times strictly after ``after`` and up to ``until``."""
    fire: datetime | None = trigger.get_next_fire_time(None, after + timedelta(microseconds=1))
    while fire is not None and fire <= until:
        if fire > after:
            yield fire
        fire = trigger.get_next_fire_time(fire, fire)


# --- start plans ----------------------------------------------------------------------------


@dataclass(frozen=True)
class StartPlan:
    """Where a job starts when a scheduler starts."""

    next_run: datetime | None  # None: nothing left to run (a one-off date done or too late)
    missed: int = 0  # fire times that passed while no scheduler ran this job
    catch_up: bool = False  # next_run is the latest missed time, run once at start
    latest_missed: datetime | None = None


def plan_start(
    spec: JobSpec, trigger: BaseTrigger, last_handled: datetime | None, now: datetime
) -> StartPlan:
    """Decide where a job starts, from the start time of its last handled run.

    Fire times after that run and up to now were missed: they coalesce into one run, now, if
    the latest is within the job's misfire grace time; older ones are only counted. A job
    that never ran has missed nothing (a new cron job does not fire at start), except a
    one-off date that is already past, which runs if it is still within its grace time.
    """
    # In UTC: subtracting two times of one zone would ignore a DST change between them.
    now = now.astimezone(UTC)
    if last_handled is None:
        first = trigger.get_next_fire_time(None, now)
    else:
        first = trigger.get_next_fire_time(None, last_handled + timedelta(microseconds=1))
        if first is not None and first <= last_handled:
            first = None  # a one-off date that already ran
    if first is None or first > now:
        return StartPlan(next_run=first)
    latest, missed, fire = first, 0, first
    while fire is not None and fire <= now and missed < MAX_COUNTED_MISSES:
        latest, missed = fire, missed + 1
        fire = trigger.get_next_fire_time(fire, fire)
    if fire is not None and fire <= now:
        # Counting stopped short of now (a cron job down for months): start from now on.
        return StartPlan(next_run=trigger.get_next_fire_time(None, now), missed=missed)
    if now - latest.astimezone(UTC) <= spec.misfire_grace:
        return StartPlan(next_run=latest, missed=missed, catch_up=True, latest_missed=latest)
    upcoming = trigger.get_next_fire_time(latest, now)
    return StartPlan(next_run=upcoming, missed=missed, latest_missed=latest)


def plans(
    specs: Iterable[JobSpec], store: Store, now: datetime
) -> list[tuple[JobSpec, StartPlan]]:
    """Return the start plan of every enabled job, as a scheduler starting now would make."""
    result = []
    for spec in specs:
        if not spec.enabled:
            continue
        with store.transaction() as conn:
            last = last_handled_start(conn, spec.name, TRIGGER)
        result.append((spec, plan_start(spec, make_trigger(spec), last, now)))
    return result


# --- the scheduler --------------------------------------------------------------------------


class JobScheduler:
    """BlockingScheduler running the enabled jobs, under the database's scheduler lock."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        specs: Sequence[JobSpec],
        *,
        registry: Mapping[str, JobFunction] = REGISTRY,
        clock: Clock = utcnow,
    ) -> None:
        self.settings = settings
        self.store = store
        self.registry = registry
        self.specs = [s for s in specs if s.enabled and not self._waits(s)]
        self.clock = clock
        # Set once: jobs see it between batches, retry waits wake on it, the loop ends on it.
        self.stop = threading.Event()
        self._lock = threading.RLock()  # re-entrant: a signal handler runs in the main thread
        self._aps: BlockingScheduler | None = None

    def _waits(self, spec: JobSpec) -> bool:
        """True (and logged) when the job lacks settings it needs: it is left out."""
        missing = missing_settings(spec, self.settings, self.registry)
        if missing:
            log.info("job left out: settings it needs are not set",
                     extra={"job": spec.name, "missing": missing})
        return bool(missing)

    def run(self) -> None:
        """Run until :meth:`request_stop`; return once the running jobs have stopped."""
        with scheduler_lock(self.store) as lock:
            log.info("scheduler lock taken", extra={"lock": lock})
            with self.store.transaction() as conn:
                lost = abandon_unfinished(
                    conn, TRIGGER, "the scheduler stopped before this run ended (killed?)"
                )
            if lost:
                log.warning("runs of a previous scheduler never ended", extra={"runs": lost})
            executor = ThreadPoolExecutor(max_workers=WORKERS)
            with self._lock:
                self._aps = BlockingScheduler(timezone=ZoneInfo("UTC"))
                self._aps.add_executor(executor)
                self._aps.add_listener(self._started, EVENT_SCHEDULER_STARTED)
                self._add_jobs(self._aps)
            if not self.specs:
                log.warning("no enabled job in jobs/: the scheduler will only wait")
            _route_apscheduler_logs()
            self._aps.start()  # blocks until request_stop() shuts it down
            log.info("scheduler stopping: waiting for running jobs to end their batch")
            executor.shutdown(wait=True)
        log.info("scheduler stopped")

    def request_stop(self) -> None:
        """Ask running jobs to stop after their batch and the scheduler to exit (any thread)."""
        self.stop.set()
        with self._lock:
            if self._aps is not None and self._aps.running:
                self._aps.shutdown(wait=False)

    def _started(self, _event: SchedulerEvent) -> None:
        # A stop requested while the scheduler was starting found nothing to shut down yet.
        if self.stop.is_set():
            self.request_stop()
        else:
            log.info("scheduler started", extra={"jobs": [s.name for s in self.specs]})

    def _add_jobs(self, aps: BlockingScheduler) -> None:
        for spec, plan in plans(self.specs, self.store, self.clock()):
            context: dict[str, Any] = {"job": spec.name, "schedule": spec.schedule}
            if plan.catch_up:
                log.warning(
                    "missed runs while no scheduler ran: running the latest once now",
                    extra={**context, "missed": plan.missed, "latest": plan.latest_missed},
                )
            elif plan.missed:
                log.warning(
                    "missed runs beyond the misfire grace time: skipped",
                    extra={**context, "missed": plan.missed, "latest": plan.latest_missed,
                           "grace": str(spec.misfire_grace)},
                )
            if plan.next_run is None:
                log.info("job has nothing left to run", extra=context)
                continue
            aps.add_job(
                self._run_job,
                trigger=make_trigger(spec),
                args=[spec],
                id=spec.name,
                name=spec.name,
                next_run_time=plan.next_run,
                misfire_grace_time=max(1, math.ceil(spec.misfire_grace.total_seconds())),
                coalesce=True,
                max_instances=1,
            )
            log.info("job scheduled", extra={**context, "next_run": plan.next_run.isoformat()})

    def _run_job(self, spec: JobSpec) -> None:
        if self.stop.is_set():
            return  # submitted just before the stop request: leave it for the next start
        try:
            execute(
                spec, self.settings, self.store, trigger=TRIGGER, stop=self.stop,
                registry=self.registry,
            )
        except Interrupted as exc:
            log.info("job stopped; it runs again when the scheduler starts",
                     extra={"job": spec.name, "detail": str(exc)})
        except Exception:
            # Already logged and recorded by the runner; the scheduler carries on.
            log.debug("job failed", extra={"job": spec.name}, exc_info=True)


def _route_apscheduler_logs() -> None:
    """Send APScheduler's warnings (missed runs, overlaps) through the project's log handler."""
    ours = logging.getLogger("clubjapon_ops")
    if not ours.handlers:
        return  # not set up by the CLI (tests): leave logging as the caller has it
    aps = logging.getLogger("apscheduler")
    for handler in ours.handlers:
        if handler not in aps.handlers:
            aps.addHandler(handler)
    aps.setLevel(logging.WARNING)
    aps.propagate = False
