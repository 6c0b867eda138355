"""Sending commands: send (ops' one-off send), unsubscribe (by hand) and web (the web app)."""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import tzinfo
from typing import Any

import click

from clubjapon_ops import jobs
from clubjapon_ops.cli import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    App,
    cli,
    complete_edition,
)
from clubjapon_ops.cli.audience import print_audience, with_lists
from clubjapon_ops.cli.contacts import not_a_contact
from clubjapon_ops.contacts import Contact, normalise_email
from clubjapon_ops.delivery import testcopies
from clubjapon_ops.delivery.audience import AudienceGate
from clubjapon_ops.delivery.sender import SendReport, Waiting
from clubjapon_ops.delivery.transports import builder_for
from clubjapon_ops.delivery.transports.base import NEEDS_SMTPUTF8
from clubjapon_ops.errors import AlreadyRunning, InvalidContact, StopRun
from clubjapon_ops.jobs.audience import check_audience
from clubjapon_ops.localtime import shown
from clubjapon_ops.masking import mask_secrets
from clubjapon_ops.newsletter.content import resolve_edition
from clubjapon_ops.newsletter.service import SAMPLE_CONTACTS, Newsletter
from clubjapon_ops.settings import check_web_settings
from clubjapon_ops.store import deliveries as ledger
from clubjapon_ops.store.contacts import add_suppression, find_contact, has_contacts
from clubjapon_ops.store.runs import last_success
from clubjapon_ops.store.types import utcnow
from clubjapon_ops.web.serving import Limits

EXIT_PARTIAL = 3
log = logging.getLogger(__name__)


def reader_for(app: App, email: str | None, lang: str | None, newsletter: Newsletter) -> Contact:
    """The stored contact named by --contact, else the sample reader of --lang."""
    if email:
        return stored_contact(app, email)
    return SAMPLE_CONTACTS[lang or newsletter.edition.primary_language]


def stored_contact(app: App, email: str) -> Contact:
    """The stored contact named by --contact."""
    try:
        wanted = normalise_email(email)
    except InvalidContact as exc:
        raise click.BadParameter(exc.reason, param_hint="--contact") from None
    with app.store.transaction() as conn:
        found = find_contact(conn, wanted)
    if found is None:
        raise StopRun(f"no contact {wanted} in the store (run 'clubjapon-ops sync' first?)")
    return found


def _print_plan(app: App, newsletter: Newsletter, problems: list[Any], audience: Any, *,
                now: bool = False) -> None:
    settings, edition = app.settings, newsletter.edition.slug
    with app.store.transaction() as conn:
        summary = ledger.plan_summary(conn, edition, audience)
        last_sync = last_success(conn, "crm_sync")
    if now:  # --now: the rows waiting for a retry go at once
        summary["to_send"] += summary["excluded"].pop("waiting for a retry (not due yet)", 0)
    by_lang = ", ".join(f"{k} {v}" for k, v in sorted(summary["new_by_language"].items()))
    click.echo(f"Edition {edition} via {settings.transport}"
               f" at {settings.send_rate or 'unlimited'} msg/s")
    click.echo(f"  to send now: {summary['to_send']}  (new: {by_lang or 'none'})")
    print_audience(app, newsletter.edition)
    for reason, n in summary["excluded"].items():
        if n:
            click.echo(f"  excluded, {reason}: {n}")
    invalid = (last_sync or {}).get("counts", {}).get("skipped", 0)
    if invalid:
        # Invalid records never reach the store; the last sync counted them.
        click.echo(f"  excluded, invalid at the last sync (not in the store): {invalid}")
    errors = [p for p in problems if p.level == "error"]
    click.echo(f"  lint: {len(errors)} error(s), {len(problems) - len(errors)} warning(s)")
    for problem in problems:
        click.echo(f"    {problem}")


@contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
    """Ctrl-C or SIGTERM: finish the batch in flight, then stop."""
    stop = threading.Event()

    def handler(signum: int, _frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        click.echo("\nstopping after the batch in flight (again to abort)", err=True)
        stop.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _progress(zone: tzinfo) -> tuple[Callable[[int, int], None], Callable[[Waiting], None],
                                     Callable[[], None]]:
    """A progress bar with rate and ETA on a terminal, a log line every 5 s otherwise; and
    a line that says so while the send waits for a provider."""
    started = time.monotonic()
    state: dict[str, Any] = {"last": 0.0, "bar": None}
    tty = sys.stderr.isatty()

    def update(done: int, total: int) -> None:
        elapsed = max(time.monotonic() - started, 1e-6)
        rate = done / elapsed
        eta = (total - done) / rate if rate else 0
        if tty:
            bar = state["bar"]
            if bar is None:
                bar = state["bar"] = click.progressbar(
                    length=total, label="sending", file=sys.stderr, show_eta=True,
                    show_percent=True)
                bar.__enter__()
            bar.label = f"sending {rate:,.0f}/s"
            # A resend in the same run counts again from 0: the bar never goes back.
            bar.update(max(0, done - bar.pos))
        elif time.monotonic() - state["last"] >= 5 and done < total:
            # Messages answered so far, sent or not; the summary says which (a last line
            # here would claim "done" for a run that sent nothing).
            state["last"] = time.monotonic()
            log.info("send progress", extra={"answered": done, "total": total,
                                             "rate": round(rate, 1), "eta_s": round(eta)})

    def waiting(wait: Waiting) -> None:
        seconds = max(0, round((wait.next_try_at - utcnow()).total_seconds()))
        text = (f"waiting for {wait.provider} ({wait.cause}) — next try in {seconds} s, "
                f"at {shown(wait.next_try_at, zone)}")
        bar = state["bar"]
        if tty and bar is not None:
            bar.label = text
            bar.render_progress()
        else:
            click.echo(text, err=True)

    def close() -> None:
        if state["bar"] is not None:
            state["bar"].__exit__(None, None, None)

    return update, waiting, close


def _print_summary(report: SendReport, zone: tzinfo) -> None:
    o = report.outcomes
    click.echo(
        f"{report.edition}: sent {o.get(ledger.SENT, 0)}, failed {o.get(ledger.FAILED, 0)}, "
        f"retry {o.get(ledger.RETRY, 0)}, unknown {o.get(ledger.UNKNOWN, 0)} "
        f"(planned {report.planned} new; transport {report.transport})"
    )
    for error, n in report.errors.most_common(5):
        click.echo(f"  {n:>5} × {error}")
    if report.recovered:
        click.echo(f"  settled from an interrupted run: {report.recovered}")
    if report.paused:
        click.echo(f"  PAUSED: {report.paused}")
    if report.interrupted:
        click.echo("  interrupted: run the same command again to go on")
    if o.get(ledger.RETRY, 0) and not report.waiting:
        click.echo(f"  the {o[ledger.RETRY]} retry answer(s) above were sent again by this run: "
                   "no message waits for a retry")
    if report.made_due:
        click.echo(f"  {report.made_due} message(s) waiting for a retry were sent at once "
                   "(--now)")
    if report.waiting:
        until = report.waiting_until
        if until and until > utcnow():
            click.echo(f"  {report.waiting} message(s) wait for a retry until "
                       f"{shown(until, zone)}: run the same command again then, or at once "
                       "with --now once the cause is fixed")
        else:
            click.echo(f"  {report.waiting} message(s) wait for a retry, due now: run the "
                       "same command again")
    unknown = report.ledger.get(ledger.UNKNOWN, 0)
    if unknown:
        click.echo(f"  {unknown} message(s) in an unknown state: check, then "
                   "'--resend-unknown' to send them again")
    click.echo("  ledger: " + ", ".join(f"{k} {v}" for k, v in sorted(report.ledger.items())))


@cli.command()
@click.argument("edition", shell_complete=complete_edition)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation (scheduler, scripts).")
@click.option("--dry-run", is_flag=True, help="Build every message, send nothing.")
@click.option("--test-to", metavar="ADDR[,ADDR]",
              help="Send a [TEST] copy to these addresses only; the ledger is left alone.")
@click.option("--contact", "email", metavar="EMAIL", help="With --test-to: render as this contact.")
@click.option("--lang", "langs", multiple=True, metavar="LANG|all",
              help="With --test-to: one copy per language (repeat it, or fr,ja, or all), "
                   "as that language's sample reader (or as --contact).")
@click.option("--limit", type=click.IntRange(min=1), help="Send at most N messages.")
@click.option("--resend-unknown", is_flag=True,
              help="Send again messages whose outcome is unknown (may duplicate).")
@click.option("--now", is_flag=True,
              help="Send messages waiting for a retry at once (after fixing an API key, say).")
@click.option("--force", is_flag=True, help="Send even if the lint finds errors.")
@click.option("--worker", is_flag=True,
              help="Be one of several processes sending this edition together (PostgreSQL "
                   "only; implies --yes).")
@click.pass_obj
def send(app: App, edition: str, yes: bool, dry_run: bool, test_to: str | None,
         email: str | None, langs: tuple[str, ...], limit: int | None, resend_unknown: bool,
         now: bool, force: bool, worker: bool) -> int:
    """Send EDITION to its audience through CLUBJAPON_TRANSPORT, recording every outcome.

    Shows the plan first (audience by language, exclusions, transport, rate, lint) and asks
    for confirmation. A rerun resumes: only pending and retry messages go out.

    \b
    Examples:
      clubjapon-ops send 2025-11-04-lille --test-to me@example.org --lang ja
      clubjapon-ops send 2025-11-04-lille --test-to me@example.org,you@example.org --lang all
      clubjapon-ops send 2025-11-04-lille --dry-run
      clubjapon-ops send 2025-11-04-lille --limit 100
      clubjapon-ops send 2025-11-04-lille --yes
      clubjapon-ops send 2025-11-04-lille --yes --now  # retries at once, after a fixed key
      clubjapon-ops send 2025-11-04-lille --worker     # in N processes, on one host or several
    \b
    A provider that refuses a batch (a wrong API key, a 429 to the end, a 400) took none of
    it: its messages wait for a retry (CLUBJAPON_SEND_RETRY_DELAY, or --now), a refused key
    without using up one of their attempts. A batch that may have been taken (a 5xx, a
    timeout) is sent again by the same run under its idempotency key before the key lapses;
    'status EDITION' shows each message's last cause.
    \b
    With --worker, N processes share the campaign: each claims batches of rows the others
    have not locked, the rate limit is shared through the database, and a worker that finds
    the queue empty takes over the rows of a worker that died. SQLite refuses --worker.
    \b
    Exit codes: 0 all sent, 3 some failed, wait for a retry or are unknown (or the send
    paused), 1 the send could not run, 2 EDITION is a draft (status: draft; --test-to
    still sends test copies of it), the store has no contacts (run 'sync' first) or
    another send of it is running (SQLite),
    130 stopped by Ctrl-C or SIGTERM (run it again to go on).
    """
    settings = app.settings
    edition = resolve_edition(settings.root, edition)
    if worker:
        if test_to or dry_run:
            raise click.UsageError("--worker sends for real: not with --test-to or --dry-run")
        jobs.refuse_workers_on(app.store.dialect)
        yes = True
    newsletter = jobs.newsletter_for_sending(settings, edition)
    if test_to:  # test copies to ourselves are how a draft is checked in real inboxes
        return _test_send(app, newsletter, test_to, email, langs)
    if email or langs:
        raise click.UsageError("--contact and --lang go with --test-to")
    jobs.refuse_draft(newsletter)  # before the plan: a draft has no audience yet
    try:
        jobs.ensure_no_send_running(app.store, edition)
    except AlreadyRunning as exc:
        return _already_running(exc)
    gate = AudienceGate(newsletter.edition)
    problems = jobs.lint_before_send(settings, newsletter)
    signer = builder_for(settings).signer  # a bad DKIM key stops here, before the plan
    with app.store.transaction() as conn:  # after the settings' checks, before the plan
        if not has_contacts(conn):  # a plan of 0 and exit 0 would look like a send
            click.echo("error: no contacts: run clubjapon-ops sync first", err=True)
            return EXIT_USAGE
    check_audience(app.store, newsletter.edition)  # exit 2 before planning
    _print_plan(app, newsletter, problems, gate.where, now=now)
    if settings.transport in ("smtp", "outbox"):
        click.echo(f"  DKIM: {signer.domain}, selector {signer.selector}" if signer else
                   "  DKIM: not signed (CLUBJAPON_DKIM_* unset)")
    if dry_run:
        return _dry_run(app, newsletter, gate)
    if any(p.level == "error" for p in problems) and not force:
        raise StopRun("the lint found errors: fix them, or send with --force")
    if not yes:
        if not sys.stdin.isatty():
            raise click.UsageError("no terminal to confirm on: pass --yes")
        click.confirm("Send now?", abort=True)
    update, waiting, close = _progress(settings.timezone)
    with _stop_on_signals() as stop:
        try:
            report = jobs.send_campaign(
                settings, app.store, edition, newsletter=newsletter, stop=stop, progress=update,
                options=jobs.SendOptions(limit=limit, resend_unknown=resend_unknown, force=True,
                                         worker=worker, now=now),
                waiting=waiting,
            )
        except AlreadyRunning as exc:
            return _already_running(exc)
        finally:
            close()
    _print_summary(report, settings.timezone)
    if settings.transport == "outbox":
        click.echo(f"  messages: {settings.outbox_dir / edition}/")
    if report.interrupted:
        return EXIT_INTERRUPTED  # as for any command stopped by Ctrl-C or SIGTERM
    return EXIT_OK if report.status == "success" else EXIT_PARTIAL


def _already_running(exc: AlreadyRunning) -> int:
    # Not a failure of this send: it did nothing, and will go on once the other ends.
    click.echo(f"error: {exc}", err=True)
    return EXIT_USAGE


def _dry_run(app: App, newsletter: Newsletter, gate: AudienceGate) -> int:
    builder = builder_for(app.settings)  # signing included: it is part of the cost
    started, count, size, unsendable = time.perf_counter(), 0, 0, 0
    with app.store.transaction() as conn:
        for contact, lists in with_lists(conn, gate, ledger.iter_audience(
                conn, newsletter.edition.slug, gate.where)):
            if not contact.email.isascii():
                unsendable += 1  # a real send records it 'failed', as the transports do
                continue
            size += len(builder.build(newsletter.personalise(contact, lists),
                                      edition=newsletter.edition.slug))
            count += 1
    elapsed = time.perf_counter() - started
    click.echo(f"dry run: built {count} message(s), {size / 1024 / 1024:.1f} MB, "
               f"in {elapsed:.2f} s; nothing sent, ledger untouched")
    if unsendable:
        click.echo(f"  {unsendable} address(es) with non-ASCII characters would fail: "
                   f"{NEEDS_SMTPUTF8}")
    return EXIT_OK


def _test_send(app: App, newsletter: Newsletter, test_to: str, email: str | None,
               langs: tuple[str, ...]) -> int:
    try:
        to = testcopies.addresses(test_to)
    except testcopies.NotSendable as exc:
        raise click.BadParameter(str(exc), param_hint="--test-to") from None
    contact = stored_contact(app, email) if email else None
    try:
        # With --contact and no --lang: the contact's own language.
        chosen = testcopies.languages(newsletter.edition, langs or (
            [contact.language] if contact and contact.language in newsletter.edition.languages
            else []))
    except testcopies.NotSendable as exc:
        raise click.BadParameter(str(exc), param_hint="--lang") from None
    copies = testcopies.send_test_copies(app.settings, newsletter,
                                         testcopies.readers(chosen, contact), to)
    for copy in copies:
        where = f"to {copy.path}" if copy.path else f"via {copy.transport}"
        error = f" ({copy.error})" if copy.error else ""
        click.echo(f"  [{copy.lang}] {copy.address}: {copy.status} {where}{error}, "
                   f"rendered as {copy.reader}")
    ok = all(c.status in ("sent", "queued") for c in copies)
    return EXIT_OK if ok else EXIT_FAILED


@cli.command()
@click.argument("email")
@click.option("--reason", default="asked by hand", show_default=True)
@click.option("--anyway", is_flag=True,
              help="Suppress EMAIL even though it is not a contact (not synced yet, say).")
@click.pass_obj
def unsubscribe(app: App, email: str, reason: str, anyway: bool) -> int:
    """Suppress EMAIL now: every later send skips it.

    EMAIL must be a contact: a mistyped address would be suppressed while the reader
    kept getting the letter. An address that is not a contact names the closest ones
    and exits 2; --anyway suppresses it all the same.

    \b
    Examples:
      clubjapon-ops unsubscribe jean.dupont@example.com --reason "phone call"
      clubjapon-ops unsubscribe new.reader@example.com --anyway
    """
    try:
        address = normalise_email(email)
    except InvalidContact as exc:
        raise click.BadParameter(exc.reason, param_hint="EMAIL") from None
    if not anyway:
        with app.store.transaction() as conn:
            known = find_contact(conn, address) is not None
        if not known:
            click.echo(f"error: {not_a_contact(app, address)} Nothing was suppressed: "
                       "check the address ('clubjapon-ops contacts find TEXT'), or add "
                       "--anyway to suppress it all the same", err=True)
            return EXIT_USAGE
    with app.store.transaction() as conn:
        added = add_suppression(conn, address, reason, "unsubscribe")
    click.echo(f"{address}: {'unsubscribed' if added else 'was already unsubscribed'}")
    return EXIT_OK


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8025, show_default=True, type=click.IntRange(1, 65535))
@click.option("--threads", default=Limits.threads, show_default=True,
              type=click.IntRange(1, 64), help="Requests handled at once.")
@click.option("--connection-limit", default=Limits.connection_limit, show_default=True,
              type=click.IntRange(1, 10_000), help="Open connections, idle ones included.")
@click.option("--channel-timeout", default=Limits.channel_timeout, show_default=True,
              type=click.IntRange(1, 3600), help="Seconds before a silent connection is closed.")
@click.pass_obj
def web(app: App, host: str, port: int, threads: int, connection_limit: int,
        channel_timeout: int) -> int:
    """Serve the public web app: unsubscribe pages (one-click), provider webhooks, /healthz,
    the public archive, and the link redirects of sent editions (/r/TOKEN, counted per link).

    Put it behind the reverse proxy that serves CLUBJAPON_PUBLIC_URL (deploy/nginx.conf).
    It answers only to that URL's host, loopback names and --host (any other Host: 421).
    The preview is not served here: see 'preview --serve'. A port already in use exits 2
    naming it and, when it is one of ours, the command holding it.

    \b
    Example:
      clubjapon-ops web --host 127.0.0.1 --port 8025
    """
    from clubjapon_ops.web import create_app
    from clubjapon_ops.web.serving import WEB_IDENT, listen, serve

    check_web_settings(app.settings)
    application = create_app(app.settings, lambda: app.store, served_on=host)
    app.store  # noqa: B018 - open and migrate before the first request, not during it
    sock = listen(host, port)  # a busy port stops here, before 'Serving on'
    click.echo(f"Serving on http://{host}:{port} "
               f"(public URL {mask_secrets(app.settings.public_url)})")
    serve(application, sock, Limits(threads=threads, connection_limit=connection_limit,
                                    channel_timeout=channel_timeout), ident=WEB_IDENT)
    return EXIT_OK
