"""`clubjapon-ops lists`: the CRM's lists as the last syncs left them."""

from __future__ import annotations

import click

from clubjapon_ops.cli import EXIT_OK, App, cli
from clubjapon_ops.store.lists import list_summaries


@cli.command("lists")
@click.pass_obj
def lists_command(app: App) -> int:
    """Show every list synced from the CRM: members who can be sent to (subscribed), members
    suppressed (opted out, unsubscribed, bounced), and when the list was last synced.

    An edition's audience (lists, exclude_lists) and its sections' only_for / except_for
    name these lists; case and accents do not matter. A list the CRM no longer has (deleted
    or renamed) is shown as gone: an edition that names it does not send.

    \b
    Example:
      clubjapon-ops lists
    """
    with app.store.transaction() as conn:
        found = list_summaries(conn)
    if not found:
        click.echo("No list synced yet: run 'clubjapon-ops sync' (a CSV export needs a "
                   "'lists' column; Brevo and HubSpot lists come on their own).")
        return EXIT_OK
    width = max(len(s.name) for s in found)
    click.echo(f"{'list':<{width}}  {'source':<8} {'subscribed':>10} {'suppressed':>10}  "
               "last synced")
    for s in found:
        when = f"{s.synced_at:%Y-%m-%d %H:%M} UTC"
        gone = (f"  gone from the CRM since {s.missing_since:%Y-%m-%d %H:%M} UTC"
                if s.missing_since else "")
        click.echo(f"{s.name:<{width}}  {s.source:<8} {s.subscribed:>10} {s.suppressed:>10}  "
                   f"{when}{gone}")
    return EXIT_OK
