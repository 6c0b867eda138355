"""Newsletter commands: preview (files, lint, or a local web page)."""

from __future__ import annotations

import os
from pathlib import Path

import click

from clubjapon_ops.cli import EXIT_FAILED, EXIT_OK, App, cli, complete_edition
from clubjapon_ops.cli.editions import edition as edition_group
from clubjapon_ops.cli.sending import reader_for
from clubjapon_ops.delivery.message import MimeBuilder
from clubjapon_ops.delivery.newsletter_check import check_newsletter
from clubjapon_ops.errors import ConfigError
from clubjapon_ops.files import private_folder
from clubjapon_ops.hosts import is_loopback
from clubjapon_ops.jobs.audience import audience_problems
from clubjapon_ops.newsletter.content import LANGS, resolve_edition
from clubjapon_ops.newsletter.media import file_images
from clubjapon_ops.newsletter.service import find_edition, load_newsletter


def _check(app: App, edition: str) -> int:
    """Lint every language of an edition and print what marketing can fix; 1 on any error."""
    settings = app.settings
    problems = check_newsletter(settings, edition)
    # The lists an audience or a section names, against those the last syncs saw.
    problems += audience_problems(lambda: app.store, find_edition(settings, edition))
    for problem in problems:
        click.echo(str(problem))
    errors = sum(p.level == "error" for p in problems)
    click.echo(f"{edition}: {errors} error(s), {len(problems) - errors} warning(s)")
    return EXIT_FAILED if errors else EXIT_OK


@edition_group.command("check")
@click.argument("edition", shell_complete=complete_edition)
@click.pass_obj
def check_edition(app: App, edition: str) -> int:
    """Check EDITION as it will be sent (the same as 'preview EDITION --check'); exit 1 on
    any error, 2 when the file cannot be read.

    \b
    Example:
      clubjapon-ops edition check 2025-11-04-lille
    """
    return _check(app, resolve_edition(app.settings.root, edition))


@cli.command()
@click.argument("edition", shell_complete=complete_edition)
@click.option("--contact", "email", metavar="EMAIL", help="Render for this stored contact.")
@click.option("--lang", type=click.Choice(LANGS),
              help="Render for a sample reader of this language.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False),
              help="Folder for the files (default: var/preview/EDITION).")
@click.option("--check", is_flag=True, help="Lint every language instead; exit 1 on any error.")
@click.option("--serve", is_flag=True, help="Serve the preview page for marketing.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to serve on; beyond loopback only with CLUBJAPON_PREVIEW_PASSWORD "
                   "set, behind a TLS proxy (docs/deploy.md). Only loopback names and this "
                   "address are answered (any other Host: 421).")
@click.option("--port", default=8025, show_default=True, type=click.IntRange(1, 65535))
@click.pass_obj
def preview(
    app: App, edition: str, email: str | None, lang: str | None, out_dir: Path | None,
    check: bool, serve: bool, host: str, port: int,
) -> int:
    """Render EDITION (a file stem under config/editions/) for one reader, lint it, or serve it.

    \b
    Examples:
      clubjapon-ops preview 2025-11-04-lille --lang ja
      clubjapon-ops preview 2025-11-04-lille --contact yui.suzuki@sakura.example.com
      clubjapon-ops preview 2025-11-04-lille --check
      clubjapon-ops preview 2025-11-04-lille --serve --port 8025
    """
    settings = app.settings
    if email and lang:
        raise click.UsageError("give --contact or --lang, not both")
    edition = resolve_edition(settings.root, edition)  # before any path is built from it
    if check:
        return _check(app, edition)
    if serve:
        return _serve(app, host, port, edition)

    folder = out_dir or settings.root / "var" / "preview" / edition
    # The HTML file shows the images published on this machine (var/media/), by a path
    # relative to it; the .eml keeps CLUBJAPON_PUBLIC_URL's, as readers get them.
    local_images = os.path.relpath(settings.root / "var", folder).replace(os.sep, "/")
    newsletter = load_newsletter(settings, edition)
    contact = reader_for(app, email, lang, newsletter)
    message = newsletter.personalise(contact)
    # Rendered again only when there is an image file to point to var/media/ instead.
    shown = (load_newsletter(settings, edition, image_base=local_images).personalise(contact)
             if file_images(newsletter.edition) else message)
    private_folder(folder)  # the files name a reader and show their name
    stem = f"{message.lang}-{contact.email.split('@')[0]}"
    paths = {
        "html": folder / f"{stem}.html",
        "text": folder / f"{stem}.txt",
        "eml": folder / f"{stem}.eml",
    }
    paths["html"].write_text(shown.html, encoding="utf-8")
    paths["text"].write_text(message.text, encoding="utf-8")
    paths["eml"].write_bytes(MimeBuilder(settings.mail_from, list_id=settings.list_id).build(
        message, edition=edition))
    click.echo(f"{edition} for {contact.email} ({message.lang}): {message.subject}")
    if newsletter.edition.is_draft:
        click.echo("  DRAFT: 'send' refuses it until its file says status: ready")
    for kind, path in paths.items():
        click.echo(f"  {kind:<4} {path}")
    return EXIT_OK


def _serve(app: App, host: str, port: int, edition: str) -> int:
    from clubjapon_ops.web import create_preview_app
    from clubjapon_ops.web.serving import PREVIEW_IDENT, Limits, listen, serve

    settings = app.settings
    if not is_loopback(host) and not settings.preview_password:
        # The preview lists stored contacts and unpublished editions: never open to all.
        raise ConfigError(
            f"--host {host} is not loopback: set CLUBJAPON_PREVIEW_PASSWORD (basic auth) and "
            "put a TLS proxy in front, or serve on 127.0.0.1")
    if not is_loopback(host):
        click.echo(f"serving on {host} behind a password: put a TLS proxy in front (basic "
                   "auth over plain HTTP shows the password to the network)", err=True)
    web = create_preview_app(settings, lambda: app.store, served_on=host)
    sock = listen(host, port)  # a busy port stops here, before the address is printed
    click.echo(f"Preview of {edition}: http://{host}:{port}/preview/{edition}  (Ctrl-C to stop)")
    # waitress, as for 'web': Flask's development server logs every path, tokens included.
    serve(web, sock, Limits(threads=4, connection_limit=100), ident=PREVIEW_IDENT)
    return EXIT_OK


