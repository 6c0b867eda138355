"""Trigger computation with an injected clock: no scheduler runs, no time passes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest

from clubjapon_ops.jobfiles import JobSpec
from clubjapon_ops.scheduler import fire_times, make_trigger, plan_start

PARIS = ZoneInfo("Europe/Paris")


def job(cron: str | None = "30 2 * * *", *, grace: timedelta = timedelta(hours=20),
        date: datetime | None = None) -> JobSpec:
    return JobSpec(name="nightly", file="jobs/nightly.toml", function="crm_sync", enabled=True,
                   timezone=PARIS, cron=None if date else cron, date=date, misfire_grace=grace)


def paris(*args: int, fold: int = 0) -> datetime:
    return datetime(*args, tzinfo=PARIS, fold=fold)  # type: ignore[misc]


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def in_utc(moment: datetime | None) -> datetime | None:
    # == between time zones is always False for an ambiguous local time (PEP 495): compare UTC.
    return None if moment is None else moment.astimezone(UTC)


@pytest.mark.parametrize(
    ("night", "fires_at_utc"),
    [
        # Spring: 02:00 -> 03:00, so 02:30 does not exist; it runs once, at 03:30 summer time.
        ((2025, 3, 30), utc(2025, 3, 30, 1, 30)),
        ((2026, 3, 29), utc(2026, 3, 29, 1, 30)),
        # Autumn: 03:00 -> 02:00, so 02:30 happens twice; it runs once, at the first.
        ((2025, 10, 26), utc(2025, 10, 26, 0, 30)),
        ((2026, 10, 25), utc(2026, 10, 25, 0, 30)),
    ],
)
def test_the_nightly_0230_runs_exactly_once_on_dst_nights(
    night: tuple[int, int, int], fires_at_utc: datetime
) -> None:
    trigger = make_trigger(job())
    day = paris(*night)
    fires = list(fire_times(trigger, day - timedelta(days=1), day + timedelta(days=2)))
    on_the_night = [in_utc(f) for f in fires if f.astimezone(PARIS).date() == day.date()]
    assert on_the_night == [fires_at_utc]
    # and one on each night around it
    assert [f.astimezone(PARIS).date() for f in fires] == [
        (day + timedelta(days=d)).date() for d in (-1, 0, 1)
    ]


def test_one_run_a_day_all_year_at_0230_local_time() -> None:
    trigger = make_trigger(job())
    fires = list(fire_times(trigger, utc(2024, 12, 31, 12), utc(2026, 12, 31, 12)))
    days = [f.astimezone(PARIS).date() for f in fires]
    assert len(fires) == 730 and len(set(days)) == 730
    local_times = {f.astimezone(PARIS).strftime("%H:%M") for f in fires}
    assert local_times == {"02:30", "03:30"}  # 03:30 only on the two spring nights
    assert sum(f.astimezone(PARIS).hour == 3 for f in fires) == 2


def test_an_hourly_job_keeps_real_time_through_the_autumn_night() -> None:
    trigger = make_trigger(job("0 * * * *"))
    fires = list(fire_times(trigger, paris(2025, 10, 26) - timedelta(seconds=1),
                            paris(2025, 10, 27) - timedelta(seconds=1)))
    assert len(fires) == 25  # the day has 25 hours, each gets its run
    instants = [f.astimezone(UTC) for f in fires]  # same-zone subtraction ignores the offset
    gaps = {b - a for a, b in pairwise(instants)}
    assert gaps == {timedelta(hours=1)}


def test_cron_in_another_time_zone() -> None:
    spec = JobSpec(name="t", file="jobs/t.toml", function="crm_sync", enabled=True,
                   timezone=ZoneInfo("Asia/Tokyo"), cron="0 9 * * mon-fri")
    fires = list(fire_times(make_trigger(spec), utc(2026, 11, 27), utc(2026, 12, 1, 23)))
    assert fires == [utc(2026, 11, 30, 0), utc(2026, 12, 1, 0)]  # Mon, Tue; Sat/Sun skipped


# --- where a scheduler starts: missed runs, coalescing, grace -------------------------------


def test_a_job_that_never_ran_does_not_fire_at_start() -> None:
    now = paris(2026, 11, 26, 9, 0)
    plan = plan_start(job(), make_trigger(job()), None, now)
    assert (plan.next_run, plan.missed, plan.catch_up) == (paris(2026, 11, 27, 2, 30), 0, False)


def test_no_downtime_over_a_fire_time_means_nothing_missed() -> None:
    last = paris(2026, 11, 26, 2, 30, 1)
    plan = plan_start(job(), make_trigger(job()), last, paris(2026, 11, 26, 9, 0))
    assert (plan.next_run, plan.missed, plan.catch_up) == (paris(2026, 11, 27, 2, 30), 0, False)


def test_a_sync_missed_while_down_runs_once_on_return() -> None:
    # Ran last night; the machine was down from 01:00 to 09:00 tonight.
    last = paris(2026, 11, 25, 2, 30, 2)
    plan = plan_start(job(), make_trigger(job()), last, paris(2026, 11, 26, 9, 0))
    assert plan.catch_up and plan.missed == 1
    assert plan.next_run == paris(2026, 11, 26, 2, 30)


def test_several_missed_runs_coalesce_into_one() -> None:
    last = paris(2026, 11, 20, 2, 30, 2)
    plan = plan_start(job(), make_trigger(job()), last, paris(2026, 11, 26, 9, 0))
    assert plan.catch_up and plan.missed == 6
    assert plan.next_run == paris(2026, 11, 26, 2, 30)  # only the latest, once


def test_a_run_missed_beyond_the_grace_time_is_skipped() -> None:
    spec = job(grace=timedelta(hours=1))
    last = paris(2026, 11, 25, 2, 30, 2)
    plan = plan_start(spec, make_trigger(spec), last, paris(2026, 11, 26, 9, 0))
    assert (plan.catch_up, plan.missed) == (False, 1)
    assert plan.next_run == paris(2026, 11, 27, 2, 30)
    assert plan.latest_missed == paris(2026, 11, 26, 2, 30)


def test_downtime_over_the_autumn_night_misses_one_run_not_two() -> None:
    last = paris(2025, 10, 25, 2, 30, 2)
    plan = plan_start(job(), make_trigger(job()), last, paris(2025, 10, 26, 12, 0))
    assert (plan.missed, in_utc(plan.next_run)) == (1, utc(2025, 10, 26, 0, 30))


def test_a_catch_up_run_counts_as_that_nights_run() -> None:
    # The 02:30 run was caught up at 09:00: the next start plans for tomorrow, not again.
    plan = plan_start(job(), make_trigger(job()), paris(2026, 11, 26, 9, 0, 1),
                      paris(2026, 11, 26, 18, 0))
    assert (plan.next_run, plan.missed) == (paris(2026, 11, 27, 2, 30), 0)


@pytest.mark.parametrize(
    ("last", "now", "expected"),
    [
        (None, paris(2026, 12, 10, 17, 0), (paris(2026, 12, 10, 18, 0), 0, False)),
        (None, paris(2026, 12, 10, 19, 0), (paris(2026, 12, 10, 18, 0), 1, True)),
        (None, paris(2026, 12, 10, 21, 0), (None, 1, False)),  # 3 h late: grace is 2 h
        (paris(2026, 12, 10, 18, 0, 1), paris(2026, 12, 11, 9, 0), (None, 0, False)),  # done
    ],
    ids=["ahead", "late-within-grace", "too-late", "already-ran"],
)
def test_a_one_off_date(
    last: datetime | None, now: datetime, expected: tuple[datetime | None, int, bool]
) -> None:
    spec = job(date=paris(2026, 12, 10, 18, 0), grace=timedelta(hours=2))
    plan = plan_start(spec, make_trigger(spec), last, now)
    assert (plan.next_run, plan.missed, plan.catch_up) == expected


def test_counting_missed_runs_stops_somewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("clubjapon_ops.scheduler.MAX_COUNTED_MISSES", 10)
    spec = job("* * * * *")
    plan = plan_start(spec, make_trigger(spec), paris(2026, 11, 26, 8, 0),
                      paris(2026, 11, 26, 9, 0, 30))
    assert (plan.missed, plan.catch_up, plan.next_run) == (10, False, paris(2026, 11, 26, 9, 1))


def test_the_autumn_night_as_apscheduler_walks_it_after_each_run() -> None:
    # After a run APScheduler asks for the next fire time given the last one and the clock.
    trigger = make_trigger(job())
    fire = trigger.get_next_fire_time(None, utc(2026, 10, 24, 12))
    seen = []
    while fire is not None and fire < utc(2026, 10, 27, 12):
        seen.append(in_utc(fire))
        fire = trigger.get_next_fire_time(fire, fire.astimezone(UTC) + timedelta(minutes=5))
    assert seen == [utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30), utc(2026, 10, 27, 1, 30)]
