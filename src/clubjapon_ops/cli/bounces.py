"""`clubjapon-ops bounces`: read the bounce mailbox once, or classify it without changing it."""

from __future__ import annotations

import threading

import click

from clubjapon_ops.bounces.classify import Verdict
from clubjapon_ops.bounces.match import Matched
from clubjapon_ops.cli import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, App, cli
from clubjapon_ops.cli.scheduling import _stop_on_signals
from clubjapon_ops.errors import AlreadyRunning, Interrupted
from clubjapon_ops.jobs.bounces import bounce_mailbox
from clubjapon_ops.printable import printable


def _line(uid: int, verdict: Verdict, matched: Matched | None) -> None:
    detail = verdict.reason or ""
    if matched is not None and matched.unverified:
        detail = ("ties no reader to a message we sent (VERP token, signed link or "
                  "Message-ID): nothing recorded, for a person")
    elif matched is not None and matched.events:
        detail = "; ".join(
            f"{e.email} ({e.type}, row {e.delivery_hint or '-'} by {how})"
            for e, how in zip(matched.events, matched.matched_by, strict=True))
    # Addresses and reasons are anyone's words: no control character reaches the terminal.
    click.echo(printable(f"UID {uid}: {verdict.kind}" + (f": {detail}" if detail else "")))


@cli.command("bounces")
@click.option("--dry-run", is_flag=True,
              help="Classify and print each message; record nothing, move nothing.")
@click.pass_obj
def bounces(app: App, dry_run: bool) -> int:
    """Read the bounce mailbox: record bounces and complaints, file the messages.

    \b
    Reads BOUNCE_IMAP_FOLDER on BOUNCE_IMAP_HOST. Hard bounces and complaints
    suppress the address at once, soft bounces after CLUBJAPON_SOFT_BOUNCE_LIMIT
    in a row. A report counts for one reader, the one it ties to a message we
    sent: its VERP token, else the signed link of the returned message, else
    (CLUBJAPON_BOUNCE_VERP off, with a warning) the returned Message-ID.
    Handled messages move to the folder Processed (or are deleted with
    BOUNCE_IMAP_DELETE=true); one it cannot classify, or that ties no reader
    ('unverified': anyone can write one), moves to the folder Review for a
    person, and is not read again. A run stops after BOUNCE_IMAP_DEADLINE.
    jobs/bounce-mailbox.toml runs the same every 15 minutes.

    \b
    Examples:
      clubjapon-ops bounces --dry-run
      clubjapon-ops bounces
    """
    stop = threading.Event()
    try:
        with _stop_on_signals(stop.set):
            report = bounce_mailbox(app.settings, app.store, stop=stop, dry_run=dry_run,
                                    on_message=_line if dry_run else None)
    except Interrupted as exc:
        click.echo(f"bounces: stopped: {exc}; run it again to finish", err=True)
        return EXIT_INTERRUPTED
    except AlreadyRunning as exc:
        # Not a failure: the other read files the same messages.
        click.echo(f"error: {exc}", err=True)
        return EXIT_USAGE
    click.echo(report.summary())
    return EXIT_OK
