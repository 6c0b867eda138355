"""Contact look-ups for ops: contacts show EMAIL, contacts find TEXT."""

from __future__ import annotations

from datetime import datetime, tzinfo

import click

from clubjapon_ops.cli import EXIT_FAILED, EXIT_OK, App, cli
from clubjapon_ops.contacts import Contact, normalise_email
from clubjapon_ops.errors import InvalidContact
from clubjapon_ops.localtime import shown as local_time
from clubjapon_ops.printable import printable
from clubjapon_ops.store import contacts as store
from clubjapon_ops.store.lists import lists_of
from clubjapon_ops.store.suppressions import suppressions_of

FIND_LIMIT = 50  # lines 'contacts find' prints at most: a look-up, not an export
EVENTS_SHOWN = 20


def shown(value: object) -> str:
    """A stored value made safe for a terminal (names come from a CRM or a CSV file)."""
    return "" if value is None else printable(str(value))


def _when(moment: datetime | None, zone: tzinfo) -> str:
    return "-" if moment is None else local_time(moment, zone, date=True)


def _name(contact: Contact) -> str:
    return " ".join(shown(n) for n in (contact.first_name, contact.last_name) if n) or "-"


def not_a_contact(app: App, address: str) -> str:
    """One sentence saying that ``address`` is no contact, with the closest stored ones."""
    with app.store.transaction() as conn:
        close = store.closest_emails(conn, address)
    if close:
        return (f"{shown(address)} is not a contact; did you mean "
                f"{' or '.join(shown(e) for e in close)}?")
    return f"{shown(address)} is not a contact, and no stored address is close to it"


@cli.group()
def contacts() -> None:
    """Look contacts up: one in full (show), or by address, name or company (find)."""


@contacts.command("show")
@click.argument("email")
@click.pass_obj
def show(app: App, email: str) -> int:
    """Show everything the store knows of one contact.

    Language, names, company, the CRM lists it is on, opt-out, suppressions (source, date,
    reason), each edition's ledger state with the provider's last answer and its last error,
    and the latest provider events. Times are in CLUBJAPON_TIMEZONE, the zone written.

    \b
    Example:
      clubjapon-ops contacts show jean.dupont@example.com
    """
    address = _address(email)
    with app.store.transaction() as conn:
        found = store.stored_contact(conn, address)
        suppressed = suppressions_of(conn, address)
        editions = store.editions_of(conn, address)
        events = store.events_of(conn, address, EVENTS_SHOWN)
        on_lists = lists_of(conn, address)
    zone = app.settings.timezone
    if found is None and not (suppressed or editions or events):
        click.echo(f"error: {not_a_contact(app, address)} "
                   "(look for it with 'clubjapon-ops contacts find TEXT')", err=True)
        return EXIT_FAILED
    click.echo(shown(address))
    if found is None:
        click.echo("  not a contact (any more): what the store still holds of the address")
    else:
        c = found.contact
        click.echo(f"  name:        {_name(c)}")
        click.echo(f"  company:     {shown(c.company) or '-'}")
        click.echo(f"  language:    {c.language}")
        click.echo(f"  from:        {shown(c.source)}"
                   + (f" (CRM id {shown(c.crm_id)})" if c.crm_id else "")
                   + f", in the store since {_when(found.created_at, zone)}, "
                   f"changed {_when(found.updated_at, zone)}")
        click.echo(f"  opted out:   {'yes (in the CRM)' if c.opted_out else 'no'}")
        click.echo("  lists:       " + (", ".join(shown(n) for n in on_lists) or "none"))
        if found.archived_at is not None:
            click.echo(f"  archived:    {_when(found.archived_at, zone)} "
                       "(the CRM no longer has it)")
        if c.attributes:
            click.echo("  attributes:  " + ", ".join(
                f"{shown(k)}={shown(v)}" for k, v in sorted(c.attributes.items())))
    if suppressed:
        click.echo("  suppressed:")
        for s in suppressed:
            click.echo(f"    {s.source:<11} since {_when(s.created_at, zone)}  ({shown(s.reason)})")
    else:
        click.echo("  suppressed:  no")
    if editions:
        click.echo("  editions:")
        for e in editions:
            detail = (f"sent {_when(e.sent_at, zone)}" if e.sent_at is not None
                      else f"{e.state} since {_when(e.updated_at, zone)}")
            if e.state != "sent" and e.sent_at is not None:
                detail = f"{e.state}, sent {_when(e.sent_at, zone)}"
            if e.next_attempt_at is not None and e.state == "retry":
                detail += f", next try after {_when(e.next_attempt_at, zone)}"
            detail += f", {e.attempts} attempt(s)"
            if e.last_cause:
                detail += f"; provider's last answer: {shown(e.last_cause)}"
            if e.last_error:
                detail += f"; last error: {shown(e.last_error)[:200]}"
            click.echo(f"    {shown(e.edition)}  {detail}")
    else:
        click.echo("  editions:    none sent to it yet")
    if events:
        click.echo(f"  events (latest {len(events)}):")
        for ev in events:
            about = f"  {shown(ev.edition)}" if ev.edition else ""
            reason = f"  ({shown(ev.reason)[:160]})" if ev.reason else ""
            click.echo(f"    {_when(ev.occurred_at, zone)}  {ev.type:<12} "
                       f"{ev.provider}{about}{reason}")
    else:
        click.echo("  events:      none")
    return EXIT_OK


@contacts.command("find")
@click.argument("text")
@click.pass_obj
def find(app: App, text: str) -> int:
    """List contacts whose address, name or company contains TEXT (any case).

    One line each: address, language, name, company, and whether it is opted out,
    archived or suppressed. At most 50 lines: make TEXT longer to narrow it.

    \b
    Examples:
      clubjapon-ops contacts find yamamoto
      clubjapon-ops contacts find @example.jp
    """
    wanted = text.strip()
    if len(wanted) < 2:
        raise click.BadParameter("give at least 2 characters", param_hint="TEXT")
    with app.store.transaction() as conn:
        found = store.find_contacts(conn, wanted, FIND_LIMIT + 1)
        suppressed = store.suppressed_among(conn, [f.contact.email for f in found])
    if not found:
        click.echo(f"no contact's address, name or company contains {shown(wanted)!r}",
                   err=True)
        return EXIT_FAILED
    for item in found[:FIND_LIMIT]:
        c = item.contact
        flags = [flag for flag, on in (("opted out", c.opted_out),
                                       ("archived", item.archived_at is not None),
                                       ("suppressed", c.email in suppressed)) if on]
        click.echo(f"{shown(c.email)}  {c.language}  {_name(c)}"
                   f"  {shown(c.company) or '-'}" + (f"  [{', '.join(flags)}]" if flags else ""))
    if len(found) > FIND_LIMIT:
        click.echo(f"(the first {FIND_LIMIT} shown, by address: there are more; "
                   "give a longer TEXT)")
    return EXIT_OK


def _address(raw: str) -> str:
    try:
        return normalise_email(raw)
    except InvalidContact as exc:
        raise click.BadParameter(exc.reason, param_hint="EMAIL") from None

