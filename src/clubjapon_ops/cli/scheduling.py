"""Scheduling commands: scheduler, jobs, run."""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any
from zoneinfo import ZoneInfo

import click

from clubjapon_ops.cli import EXIT_INTERRUPTED, EXIT_OK, App, cli
from clubjapon_ops.errors import ConfigError, Interrupted
from clubjapon_ops.jobfiles import JobSpec
from clubjapon_ops.jobs.registry import REGISTRY, execute, missing_settings
from clubjapon_ops.scheduler import JobScheduler, StartPlan, load_jobs, plans
from clubjapon_ops.store.runs import last_run_of
from clubjapon_ops.store.types import utcnow

log = logging.getLogger(__name__)

JOBS_FOLDER = "jobs"


def _folder(app: App) -> Path:
    return app.settings.root / JOBS_FOLDER


@contextmanager
def _stop_on_signals(request_stop: Callable[[], None]) -> Iterator[None]:
    """Turn SIGTERM and SIGINT into a stop request for the block, then restore the handlers.

    A second signal stops the process at once, as if unhandled: for a job that never looks
    at its stop flag. Its open transaction rolls back; the next scheduler marks the run
    abandoned and runs it again.
    """
    asked: list[str] = []

    def handle(signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if asked:
            log.warning("second stop request: stopping at once", extra={"signal": name})
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        asked.append(name)
        log.info("stop requested: the running job ends its current batch",
                 extra={"signal": name})
        request_stop()

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@cli.command()
@click.pass_obj
def scheduler(app: App) -> int:
    """Run the jobs declared in jobs/ on their schedules, in the foreground.

    \b
    One scheduler per database: a second one exits at once. Runs missed while no
    scheduler ran are run once at start (within each job's misfire grace time).
    SIGTERM or Ctrl-C lets a running job finish its current batch, then exits 0.

    \b
    Examples:
      clubjapon-ops scheduler
      clubjapon-ops --log-json scheduler      # under systemd: JSON lines to the journal
    """
    specs = load_jobs(_folder(app))
    job_scheduler = JobScheduler(app.settings, app.store, specs)
    with _stop_on_signals(job_scheduler.request_stop):
        job_scheduler.run()
    return EXIT_OK


@cli.command("jobs")
@click.pass_obj
def list_jobs(app: App) -> int:
    """List the jobs declared in jobs/ with their next and last runs.

    \b
    Next runs are where a scheduler starting now would start each job (a run
    missed while no scheduler ran shows as 'at start'); times are in each job's
    time zone. Checks every job file, like the scheduler does at start.

    \b
    Example:
      clubjapon-ops jobs
    """
    folder = _folder(app)
    specs = load_jobs(folder)
    if not specs:
        click.echo(f"No job files in {folder}.")
        return EXIT_OK
    now = utcnow()
    planned = dict((spec.name, plan) for spec, plan in plans(specs, app.store, now))
    rows = [("job", "function", "schedule", "next run", "last run")]
    for spec in specs:
        with app.store.transaction() as conn:
            last = last_run_of(conn, spec.name)
        waiting = _waiting(app, spec)
        rows.append((
            spec.name + ("" if spec.enabled else " (disabled)") + waiting,
            spec.function,
            spec.schedule,
            "-" if waiting else _next(spec, planned.get(spec.name)),
            _last(spec, last),
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False))
                   + "  " + row[-1])
    return EXIT_OK


def _waiting(app: App, spec: JobSpec) -> str:
    missing = missing_settings(spec, app.settings) if spec.enabled else []
    return f" (left out: {', '.join(missing)} not set)" if missing else ""


def _local(moment: datetime, zone: ZoneInfo) -> str:
    return f"{moment.astimezone(zone):%Y-%m-%d %H:%M %Z}"


def _next(spec: JobSpec, plan: StartPlan | None) -> str:
    if plan is None:
        if spec.function not in REGISTRY:
            return f"- ({spec.function} is not in this version)"
        return "-"
    if plan.next_run is None:
        return "missed (beyond its grace time)" if plan.missed else "done"
    if plan.catch_up:
        return f"at start (missed {_local(plan.next_run, spec.timezone)})"
    return _local(plan.next_run, spec.timezone)


def _last(spec: JobSpec, run: dict[str, Any] | None) -> str:
    if run is None:
        return "never"
    attempt = f", attempt {run['attempt']}" if (run["attempt"] or 1) > 1 else ""
    return f"{_local(run['started_at'], spec.timezone)} {run['status']} ({run['trigger']}{attempt})"


@cli.command("run")
@click.argument("job")
@click.option("--force", is_flag=True, help="Run the job even if its file says enabled = false.")
@click.pass_obj
def run_job(app: App, job: str, force: bool) -> int:
    """Run one job from jobs/ once, now, exactly as the scheduler would.

    \b
    Same arguments, retries and records as a scheduled run (job_runs shows
    trigger 'run'). For ops staff, and for cron or systemd timers instead of
    the scheduler. SIGTERM or Ctrl-C ends the current batch and exits 130.

    \b
    Examples:
      clubjapon-ops run nightly-crm-sync
      clubjapon-ops run send-edition-example --force
    """
    specs = {spec.name: spec for spec in load_jobs(_folder(app))}
    spec = specs.get(job)
    if spec is None:
        known = ", ".join(sorted(specs)) or "none"
        raise click.UsageError(f"no job named {job!r} in {JOBS_FOLDER}/ (known: {known})")
    if not spec.enabled and not force:
        raise click.UsageError(f"{spec.file} says enabled = false; add --force to run it anyway")
    missing = missing_settings(spec, app.settings)
    if missing:
        raise ConfigError(f"{spec.file}: {spec.function} needs {', '.join(missing)}, not set")
    stop = threading.Event()
    try:
        with _stop_on_signals(stop.set):
            report = execute(spec, app.settings, app.store, trigger="run", stop=stop)
    except Interrupted as exc:
        click.echo(f"{spec.name}: stopped: {exc}; run it again to finish", err=True)
        return EXIT_INTERRUPTED
    counts = ", ".join(
        f"{k} {v}" for k, v in report.counts().items() if isinstance(v, int | float | str)
    )
    click.echo(f"{spec.name}: {report.status}: {counts}")
    return EXIT_OK
