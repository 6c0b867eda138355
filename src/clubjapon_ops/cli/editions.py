"""Edition commands: start the next edition, list them, say which is ready, the schema."""

from __future__ import annotations

import click

from clubjapon_ops.cli import EXIT_FAILED, EXIT_OK, App, cli, complete_edition
from clubjapon_ops.delivery.newsletter_check import newest_ready_edition
from clubjapon_ops.newsletter.drafts import new_edition
from clubjapon_ops.newsletter.listing import edition_lines
from clubjapon_ops.newsletter.schema import write_schema
from clubjapon_ops.store.tallies import ledger_tallies


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


@edition.command("new")
@click.argument("slug")
@click.option("--from", "source", metavar="EDITION", shell_complete=complete_edition,
              help="Copy this edition: what usually stays is kept, its news made placeholders.")
@click.option("--blank-all", is_flag=True,
              help="With --from: make every text a placeholder, what usually stays too.")
@click.pass_obj
def new(app: App, slug: str, source: str | None, blank_all: bool) -> int:
    """Write config/editions/SLUG.yaml as a draft, never over an existing file.

    Without --from it is a commented template of every section type. Its texts are
    placeholders («À COMPLÉTER» / TO COMPLETE / 要記入) that the lint reports until replaced.
    SLUG starts with the edition's real date (YYYY-MM-DD) and has at most 120 characters.

    With --from EDITION it is a copy of that file, its comments and layout kept: the texts
    about that edition (subject, preheader, title, summary, paragraphs of text sections,
    quotes, panels, a button to a web page) become placeholders; what usually stays (venue,
    city, figures, lists, images, the contact button, headings) is kept, and the lint warns
    of every text still the same as in an earlier edition. --blank-all blanks every text.

    \b
    Examples:
      clubjapon-ops edition new 2026-06-18-amiens
      clubjapon-ops edition new 2026-06-18-amiens --from 2025-11-04-lille
      clubjapon-ops edition new 2026-06-18-amiens --from 2025-11-04-lille --blank-all
    """
    if blank_all and source is None:
        raise click.UsageError("--blank-all goes with --from EDITION")
    path = new_edition(app.settings.root, slug, source, blank_all=blank_all)
    click.echo(f"wrote {path.relative_to(app.settings.root)} (draft): fill it in, then "
               f"clubjapon-ops preview {slug} --check")
    return EXIT_OK


@edition.command("list")
@click.pass_obj
def list_(app: App) -> int:
    """List every edition: slug, date, status, languages, and ledger rows planned/sent."""
    lines = edition_lines(app.settings.root)
    counts = ledger_tallies(app.settings, lambda: app.store, [line.slug for line in lines])
    click.echo(f"{'EDITION':<28} {'DATE':<10} {'STATUS':<7} {'LANGS':<9} PLANNED/SENT")
    for line in lines:
        counted = counts.get(line.slug)
        tally = f"{counted.planned}/{counted.sent}" if counted else "0/0"
        if line.error:
            click.echo(f"{line.slug:<28} {'-':<10} {'invalid':<7} {'-':<9} {tally}  {line.error}")
        else:
            click.echo(f"{line.slug:<28} {line.date:<10} {line.status:<7} "
                       f"{','.join(line.languages):<9} {tally}")
    return EXIT_OK

