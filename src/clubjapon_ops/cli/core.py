"""Core commands: sync, status, config."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click

from clubjapon_ops import jobs
from clubjapon_ops.cli import EXIT_FAILED, EXIT_OK, App, cli, complete_edition
from clubjapon_ops.cli.audience import print_by_list, print_unplanned_audience
from clubjapon_ops.cli.reporting import edition_for_reading
from clubjapon_ops.jobs.push import PushReport
from clubjapon_ops.jobs.sync_lists import ListsReport
from clubjapon_ops.localtime import shown
from clubjapon_ops.settings import CONFIG_FILE
from clubjapon_ops.store import deliveries as ledger
from clubjapon_ops.store.contacts import contact_counts
from clubjapon_ops.store.runs import recent_runs


@cli.command()
@click.option("--full", is_flag=True, help="Re-read everything, not only what changed.")
@click.option("--push", is_flag=True,
              help="Only write local suppressions back to the CRM, now (no pull).")
@click.pass_obj
def sync(app: App, full: bool, push: bool) -> int:
    """Pull contacts from the configured CRM (CLUBJAPON_CRM) into the store, then write
    unsubscribes, bounces and complaints back to it.

    \b
    Examples:
      clubjapon-ops sync
      clubjapon-ops sync --full
      clubjapon-ops sync --push
      CLUBJAPON_CSV_PATH=export.csv clubjapon-ops sync

    \b
    HubSpot and Brevo syncs are incremental; a full sync (which also archives
    contacts the CRM no longer has) runs with --full and on its own every
    HUBSPOT_FULL_SYNC_DAYS / BREVO_FULL_SYNC_DAYS days. A sync that was stopped
    resumes where its last committed page left it. Each suppression is written
    back once; a contact the CRM does not have is listed, never created.
    """
    if push:
        return _show_push(jobs.crm_push(app.settings, app.store, trigger="cli"))
    with _counter() as progress:
        report = jobs.crm_sync(app.settings, app.store, full=full, trigger="cli",
                               progress=progress)
    c = report.counts()
    mode = "full" if report.full else "incremental"
    click.echo(
        f"Synced from {c['source']} ({mode}): {c['fetched']} fetched, {c['created']} created, "
        f"{c['updated']} updated, {c['unchanged']} unchanged, {c['merged']} merged duplicates, "
        f"{c['skipped']} skipped" + (f", {c['archived']} archived" if c["archived"] else "")
    )
    if report.read_as:
        click.echo(f"  {app.settings.csv_path.name} {report.read_as}")
    for reason, n in sorted(report.skip_reasons.items(), key=lambda kv: (-kv[1], kv[0])):
        click.echo(f"  skipped {n:>4} × {reason}")
    for reason, n in sorted(report.dropped_fields.items(), key=lambda kv: (-kv[1], kv[0])):
        click.echo(f"  dropped {n:>4} × {reason} (contact kept)")
    _show_lists(report.lists)
    if report.push is not None:
        return _show_push(report.push)
    return EXIT_OK


def _show_lists(lists: ListsReport) -> None:
    """The lists a sync saw, the cells it could not read, and the lists the CRM lost."""
    if lists.seen:
        click.echo(f"  lists: {len(lists.seen)} synced ('clubjapon-ops lists' shows them)")
    for skipped in lists.cells_skipped:
        click.echo(f"  {skipped} (contact kept, its lists unchanged)")
    for warning in lists.warnings:
        click.echo(f"  warning: {warning}")


@contextmanager
def _counter() -> Iterator[Callable[[jobs.SyncReport], None] | None]:
    """A live count of the sync on a terminal (sources say no total in advance); elsewhere
    none, since the log already has a line per committed batch."""
    if not sys.stderr.isatty():
        yield None
        return
    started = time.monotonic()

    def show(report: jobs.SyncReport) -> None:
        rate = report.fetched / max(time.monotonic() - started, 1e-6)
        click.echo(f"\r  syncing: {report.fetched:,} fetched, {report.skipped:,} skipped, "
                   f"{rate:,.0f}/s", nl=False, err=True)

    try:
        yield show
    finally:
        click.echo("\r\033[K", nl=False, err=True)  # the summary line takes its place


def _show_push(report: PushReport) -> int:
    c = report.counts()
    click.echo(f"Written back to {c['crm']}: {c['pushed']} pushed, {c['already_known']} known "
               f"already, {c['not_found']} not in the CRM, {c['failed']} failed")
    for email in report.not_found:
        click.echo(f"  not in {c['crm']} (not created): {email}")
    for error in report.errors[:5]:
        click.echo(f"  failed: {error}")
    return EXIT_FAILED if report.failed else EXIT_OK


@cli.command()
@click.argument("edition", required=False, shell_complete=complete_edition)
@click.option("--runs", "limit", default=10, show_default=True, help="How many job runs to show.")
@click.pass_obj
def status(app: App, edition: str | None, limit: int) -> int:
    """Show contact counts and the latest job runs, or with EDITION its ledger.

    \b
    Examples:
      clubjapon-ops status --runs 20
      clubjapon-ops status 2025-11-04-lille
    """
    if edition:
        return _edition_status(app, edition_for_reading(app, edition))
    with app.store.transaction() as conn:
        counts = contact_counts(conn)
        runs = recent_runs(conn, limit)
    click.echo(f"Database: {app.settings.masked_database_url()}")
    click.echo(
        f"Contacts: {counts.get('contacts', 0)} in all; "
        + ", ".join(
            f"{k.removeprefix('language_')} {v}"
            for k, v in sorted(counts.items())
            if k.startswith("language_")
        )
        + f"; opted out {counts.get('opted_out', 0)}; archived {counts.get('archived', 0)}; "
        f"suppressed addresses {counts.get('suppressed_emails', 0)}"
    )
    if not runs:
        click.echo("No job has run yet.")
        return EXIT_OK
    click.echo(
        f"\n{'#':>5}  {'job':<20} {'trigger':<13} {'started':<23}  {'status':<9} "
        f"{'took':>7}  details"
    )
    for run in runs:
        took = f"{run['duration_s']:.1f}s" if run["duration_s"] is not None else "-"
        details = run["error"] or _summary(run["counts"])
        # A run from a jobs/ file shows under that file's name; a retry shows its attempt.
        job = run["declared_job"] or run["job"]
        trigger = run["trigger"] + (f" #{run['attempt']}" if (run["attempt"] or 1) > 1 else "")
        click.echo(
            f"{run['id']:>5}  {job:<20} {trigger:<13} "
            f"{shown(run['started_at'], app.settings.timezone, date=True):<23}  "
            f"{run['status']:<9} {took:>7}  {details}"
        )
    return EXIT_OK


def _summary(counts: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items() if isinstance(v, int | float | str))


@cli.command("config")
@click.pass_obj
def show_config(app: App) -> int:
    """Print the effective settings, secrets masked, and where each value came from.

    A value from .env or the environment that overrides a different one in
    config/clubjapon.toml is marked '(overrides config/clubjapon.toml's ...)'.

    \b
    Example:
      SMTP_PORT=2525 clubjapon-ops config
    """
    settings = app.settings
    click.echo(f"Project root: {settings.root}")
    rows = settings.describe()
    shadows = settings.shadows()
    width = max(len(name) for name, _, _ in rows)
    for name, value, origin in rows:
        # A value the TOML file sets in vain: editing the file would change nothing.
        where = ".env" if origin == ".env" else "the environment"
        shadow = (f"  (overrides {CONFIG_FILE}'s {shadows[name]}: change or remove it in "
                  f"{where})" if name in shadows else "")
        click.echo(f"{name:<{width}}  {value}  [{origin}]{shadow}")
    return EXIT_OK


def _edition_status(app: App, edition: str) -> int:
    with app.store.transaction() as conn:
        report = ledger.ledger_report(conn, edition)
    by_state = report["by_state"]
    if not by_state:
        click.echo(f"{edition}: nothing planned or sent yet")
        print_unplanned_audience(app, edition)
        return EXIT_OK
    total = sum(by_state.values())
    click.echo(f"{edition}: {total} recipient(s) in the ledger")
    click.echo("  " + ", ".join(f"{state} {n}" for state, n in sorted(by_state.items())))
    for lang, states in sorted(report["by_language"].items()):
        click.echo(f"  {lang}: " + ", ".join(f"{s} {n}" for s, n in sorted(states.items())))
    for error, n in report["errors"].items():
        click.echo(f"  {n:>5} × {error}")
    # The provider's last answer per row (deliveries.last_cause), kept until another replaces
    # it: a note added later (a key that lapsed) never hides a 401.
    for (state, cause), n in sorted(report.get("causes", {}).items()):
        click.echo(f"  {n:>5} {state}, last cause: {cause}")
    print_by_list(app, edition, by_state.get(ledger.LEFT, 0))
    if by_state.get(ledger.UNKNOWN):
        click.echo(f"  {by_state[ledger.UNKNOWN]} unknown: check them, then "
                   f"'clubjapon-ops send {edition} --resend-unknown'")
    return EXIT_OK
