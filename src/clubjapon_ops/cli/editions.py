"""Edition commands: which edition is ready to send."""

from __future__ import annotations

import click

from clubjapon_ops.cli import EXIT_FAILED, EXIT_OK, App, cli
from clubjapon_ops.newsletter.schema import write_schema
from clubjapon_ops.newsletter.service import newest_ready_edition


@cli.group()
def edition() -> None:
    """Editions under config/editions/."""


@edition.command("ready")
@click.pass_obj
def ready(app: App) -> int:
    """Print the newest edition ready to send (status: ready, passes the lint); exit 1 if none.

    \b
    Example:
      clubjapon-ops send "$(clubjapon-ops edition ready)" --dry-run
    """
    slug = newest_ready_edition(app.settings)
    if slug is None:
        click.echo("no edition in config/editions/ is marked status: ready and passes the lint",
                   err=True)
        return EXIT_FAILED
    click.echo(slug)
    return EXIT_OK


@edition.command("schema")
@click.pass_obj
def schema(app: App) -> int:
    """Write config/editions/edition.schema.json from the content model (after changing it).

    Editors with a YAML language server read it through each edition's first line.
    """
    path = write_schema(app.settings.root)
    click.echo(f"wrote {path}")
    return EXIT_OK
