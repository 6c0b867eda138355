"""Suppression commands: list, remove (recorded), import and export the addresses never mailed."""

from __future__ import annotations

import csv
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import click

from clubjapon_ops.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, App, cli
from clubjapon_ops.contacts import normalise_email
from clubjapon_ops.errors import InvalidContact
from clubjapon_ops.printable import printable
from clubjapon_ops.store import suppressions as store
from clubjapon_ops.store.pushes import PUSHED_SOURCES

SOURCES = ("unsubscribe", "bounce", "complaint", "crm", store.IMPORTED)
EXPORT_COLUMNS = ("email", "source", "reason", "created_at")


class Day(click.ParamType):  # type: ignore[type-arg]  # generic only in newer click
    """A day written YYYY-MM-DD, as midnight UTC."""

    name = "day"

    def convert(self, value: object, param: click.Parameter | None,
                ctx: click.Context | None) -> datetime:
        """Parse the day or fail saying which form is expected."""
        if isinstance(value, datetime):
            return value
        try:
            return datetime.strptime(str(value), "%Y-%m-%d").replace(tzinfo=UTC)
        except ValueError:
            self.fail(f"{value!r} is not a day: expected YYYY-MM-DD, e.g. 2025-11-04", param, ctx)


@cli.group()
def suppressions() -> None:
    """Addresses that are never mailed: list, remove, import, export.

    \b
    Sources: unsubscribe (a link, a webhook, or 'clubjapon-ops unsubscribe'), bounce,
    complaint (reported as spam), crm (opted out in the CRM), import.
    """


@suppressions.command("list")
@click.option("--reason", "source", type=click.Choice(SOURCES),
              help="Only suppressions of this source.")
@click.option("--since", type=Day(), metavar="YYYY-MM-DD",
              help="Only suppressions made on or after this day (UTC).")
@click.pass_obj
def list_command(app: App, source: str | None, since: datetime | None) -> int:
    """List suppressions, oldest first.

    \b
    Examples:
      clubjapon-ops suppressions list
      clubjapon-ops suppressions list --reason complaint --since 2025-11-01
    """
    with app.store.transaction() as conn:
        rows = store.list_suppressions(
            conn, source=source, since=since)
    for row in rows:
        click.echo(f"{row.created_at:%Y-%m-%d %H:%M}  {row.source:<11}  "
                   f"{printable(row.email)}  ({printable(row.reason or '')})")
    click.echo(f"{len(rows)} suppression(s)")
    return EXIT_OK


@suppressions.command("remove")
@click.argument("email")
@click.option("--reason", "why", required=True, help="Why the address may be mailed again.")
@click.option("--force", is_flag=True, help="Lift a complaint too (the reader reported spam).")
@click.pass_obj
def remove(app: App, email: str, why: str, force: bool) -> int:
    """Lift every suppression of EMAIL, recording when and why.

    Only the suppressions found when it starts are lifted: an unsubscribe arriving while it
    runs stays.

    \b
    Example:
      clubjapon-ops suppressions remove jean.dupont@example.com --reason "asked by phone, 12/03"
    """
    address = _address(email, "EMAIL")
    if not why.strip():
        raise click.BadParameter("say why the address may be mailed again", param_hint="--reason")
    with app.store.transaction() as conn:
        found = store.suppressions_of(conn, address)
        complaint = next((s for s in found if s.source == store.COMPLAINT), None)
        if complaint is not None and not force:
            click.echo(f"{address} reported the club's mail as spam on "
                       f"{complaint.created_at:%Y-%m-%d}: lifting that needs --force", err=True)
            return EXIT_USAGE
        removal = store.lift(conn, address, why.strip(), complaints=force)
    if not removal.sources:
        click.echo(f"{address}: not suppressed, nothing to remove", err=True)
        return EXIT_FAILED
    click.echo(f"{address}: removed {', '.join(removal.sources)} (recorded: {why.strip()})")
    if "crm" in removal.sources:
        click.echo("  opted out in the CRM: the next sync suppresses it again unless the CRM "
                   "changes too")
    if any(s in PUSHED_SOURCES for s in removal.sources):
        click.echo("  the CRM may have been told of it (write-back): change it there too, "
                   "with the reader's consent")
    return EXIT_OK


@suppressions.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--reason", default="imported", show_default=True,
              help="Reason recorded where the file has no 'reason' column.")
@click.pass_obj
def import_command(app: App, file: Path, reason: str) -> int:
    """Suppress the addresses of a CSV file (an 'email' column, an optional 'reason' one).

    Each address gets source 'import', also when it is suppressed for another reason (a CRM
    opt-in lifts only 'crm'). Written 1,000 addresses per transaction, so unsubscribes and
    sends never wait for the whole file; if it stops half-way, run it again.

    \b
    Example:
      clubjapon-ops suppressions import old-unsubscribes.csv
    """
    pairs, skipped = _read_import(file, reason)
    # Committed in chunks: a one-click unsubscribe never waits for the whole file.
    added, known = store.import_in_chunks(app.store, pairs)
    click.echo(f"{file.name}: {added} added, {known} known already, {len(skipped)} skipped")
    for line, problem in skipped[:20]:
        click.echo(f"  line {line}: {problem}")
    return EXIT_OK


@suppressions.command("export")
@click.argument("file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.pass_obj
def export(app: App, file: Path | None) -> int:
    """Write every suppression as CSV to FILE (owner-only), or to standard output.

    \b
    Examples:
      clubjapon-ops suppressions export suppressions.csv
      clubjapon-ops suppressions export | wc -l
    """
    with app.store.transaction() as conn:
        rows = store.list_suppressions(conn)
    if file is None:
        _write_csv(sys.stdout, rows)
        return EXIT_OK
    # The file is a list of addresses: readable by its owner only, from its creation on, and
    # made so if it existed (the mode of open() applies to new files only); never through a
    # symbolic link, which could point anywhere.
    try:
        fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        raise click.FileError(str(file), exc.strerror) from None
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
        _write_csv(handle, rows)
    click.echo(f"{len(rows)} suppression(s) written to {file}", err=True)
    return EXIT_OK


def _address(raw: str, hint: str) -> str:
    try:
        return normalise_email(raw)
    except InvalidContact as exc:
        raise click.BadParameter(exc.reason, param_hint=hint) from None


def _read_import(file: Path, default_reason: str) -> tuple[list[tuple[str, str]],
                                                         list[tuple[int, str]]]:
    """(email, reason) pairs and (line, problem) for the rows that cannot be used."""
    pairs: list[tuple[str, str]] = []
    skipped: list[tuple[int, str]] = []
    try:
        with file.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle)
            fields = {(name or "").strip().lower(): name for name in reader.fieldnames or []}
            if "email" not in fields:
                raise click.UsageError(f"{file.name}: no 'email' column in its first line")
            for record in reader:
                line = reader.line_num
                try:
                    email = normalise_email(_uncell(record.get(fields["email"])))
                except InvalidContact as exc:
                    skipped.append((line, exc.reason))
                    continue
                given = record.get(fields["reason"]) if "reason" in fields else None
                pairs.append((email, (given or "").strip() or default_reason))
    except UnicodeDecodeError:
        raise click.UsageError(f"{file.name}: not UTF-8 text: save it as CSV UTF-8") from None
    except csv.Error as exc:
        raise click.UsageError(f"{file.name}: not CSV ({exc})") from None
    return pairs, skipped


# A cell starting with one of these is a formula to a spreadsheet (=HYPERLINK(...), +SUM,
# @SUM, -1+1, =cmd|...): addresses and reasons come from anyone (an unsubscribe, a forged
# bounce, an import). OWASP's CSV-injection advice: a single quote in front, which the
# spreadsheet shows as text and does not evaluate.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")


def _cell(value: str) -> str:
    """``value`` as a spreadsheet reads it as text, never as a formula."""
    return "'" + value if value.startswith(_FORMULA_START) else value


def _uncell(value: str | None) -> str | None:
    """An exported cell as it was: the quote _cell put in front of a formula goes."""
    if value and value.startswith("'") and value[1:].startswith(_FORMULA_START):
        return value[1:]
    return value


def _write_csv(handle: IO[str], rows: list[store.Suppression]) -> None:
    writer = csv.writer(handle)
    writer.writerow(EXPORT_COLUMNS)
    for row in rows:
        writer.writerow([_cell(str(v or "")) for v in (
            row.email, row.source, row.reason, row.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"))])
