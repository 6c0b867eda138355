"""Reporting command: report EDITION (terminal table, optional HTML page)."""

from __future__ import annotations

from pathlib import Path

import click

from clubjapon_ops.cli import EXIT_OK, App, cli, complete_edition
from clubjapon_ops.errors import UnknownEdition
from clubjapon_ops.jobs.reports import write_html
from clubjapon_ops.newsletter.content import resolve_edition
from clubjapon_ops.reporting.campaign import build_report
from clubjapon_ops.reporting.html import render_html
from clubjapon_ops.reporting.text import render_text
from clubjapon_ops.store.reporting import ledger_editions


def edition_for_reading(app: App, name: str) -> str:
    """An edition with a file, or one the ledger still holds after its file was removed."""
    try:
        return resolve_edition(app.settings.root, name)
    except UnknownEdition:
        # Only now ask the ledger: the usual case needs no query.
        with app.store.transaction() as conn:
            known = ledger_editions(conn)
        return resolve_edition(app.settings.root, name, known)


@cli.command()
@click.argument("edition", shell_complete=complete_edition)
@click.option("--html", "html_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write a self-contained HTML page with charts to this file.")
@click.pass_obj
def report(app: App, edition: str, html_path: Path | None) -> int:
    """Show how an edition did: states, languages, deliveries, bounces, opens, clicks,
    and the clicks on each of its links.

    \b
    Examples:
      clubjapon-ops report 2025-11-04-lille
      clubjapon-ops report 2025-11-04-lille --html var/reports/2025-11-04-lille.html

    \b
    Where the figures come from:
      opens, clicks, deliveries   Brevo's and SendGrid's webhooks (the outbox
                                  and SMTP report none)
      bounces and complaints      those webhooks; for SMTP sends, the bounce
                                  mailbox ('clubjapon-ops bounces'), and the
                                  5xx refusals of the SMTP server while sending
                                  ("refused (SMTP)", with the server's words)
      clicks on each link         our redirect (CLUBJAPON_PUBLIC_URL/r/), per
                                  link, language and day, scanners apart;
                                  per reader only for readers who agreed
                                  (CLUBJAPON_LINK_TRACKING=consent)
    """
    figures = build_report(app.store, edition_for_reading(app, edition))
    click.echo(render_text(figures), nl=False)
    if html_path is not None:
        write_html(html_path, render_html(figures))
        click.echo(f"HTML report: {html_path}")
    return EXIT_OK
