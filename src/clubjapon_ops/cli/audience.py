"""Printing an edition's audience (the plan by list), and the lists of the readers a dry
run builds, looked up a chunk at a time."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import click
from sqlalchemy.engine import Connection

from clubjapon_ops.cli import App
from clubjapon_ops.contacts import Contact
from clubjapon_ops.delivery.audience import AudienceGate
from clubjapon_ops.errors import ConfigError
from clubjapon_ops.jobs.audience import audience_plan
from clubjapon_ops.newsletter.audience import is_conditional
from clubjapon_ops.newsletter.model import Edition
from clubjapon_ops.newsletter.service import find_edition
from clubjapon_ops.store.deliveries import plan_summary
from clubjapon_ops.store.lists import list_report, memberships_of

CHUNK = 1000


def print_audience(app: App, edition: Edition) -> None:
    """The audience block and the new readers on each list it (or a section) names."""
    if edition.audience is None and not is_conditional(edition):
        return
    plan = audience_plan(app.store, edition)
    click.echo(f"  audience: {plan.described}")
    if plan.by_list:
        click.echo("    new, by list: " + ", ".join(f"{k} {v}" for k, v in plan.by_list.items())
                   + ("  (a reader on two lists counts in both)" if len(plan.by_list) > 1
                      else ""))
    if plan.conditional:
        click.echo("    sections for part of it, new readers on: "
                   + ", ".join(f"{k} {v}" for k, v in plan.conditional.items()))


def with_lists(conn: Connection, gate: AudienceGate,
               contacts: Iterable[Contact]) -> Iterator[tuple[Contact, frozenset[str]]]:
    """Each contact with the condition lists (keys) it is on; one query per chunk."""
    if not gate.conditions:
        for contact in contacts:
            yield contact, frozenset()
        return
    chunk: list[Contact] = []
    for contact in contacts:
        chunk.append(contact)
        if len(chunk) >= CHUNK:
            yield from _looked_up(conn, gate, chunk)
            chunk = []
    yield from _looked_up(conn, gate, chunk)


def _looked_up(conn: Connection, gate: AudienceGate,
               chunk: list[Contact]) -> Iterator[tuple[Contact, frozenset[str]]]:
    found = memberships_of(conn, [c.email for c in chunk], gate.conditions)
    for contact in chunk:
        yield contact, found.get(contact.email, frozenset())


def print_by_list(app: App, edition: str, left: int) -> None:
    """An edition's status by list, and the readers who left its audience before sending."""
    if left:
        click.echo(f"  {left} left the audience before their message went out (taken off its "
                   "lists, or excluded, since it was planned): not sent")
    with app.store.transaction() as conn:
        lines = list_report(conn, edition)
    if not lines:
        return
    width = max(len(line.name) for line in lines)
    click.echo("  by list (lists as synced now; a reader on two lists counts in both):")
    click.echo(f"    {'list':<{width}}  planned  sent  bounced  unsubscribed  left")
    for line in lines:
        click.echo(f"    {line.name:<{width}}  {line.planned:>7}  {line.sent:>4}  "
                   f"{line.bounced:>7}  {line.unsubscribed:>12}  {line.left:>4}")


def print_unplanned_audience(app: App, slug: str) -> None:
    """Before anything is planned: who the edition's audience would be, by language and list."""
    try:
        edition = find_edition(app.settings, slug)
    except ConfigError:
        return  # a broken or removed file: status still shows the ledger, which is empty
    if edition.audience is None and not is_conditional(edition):
        return
    gate = AudienceGate(edition)
    with app.store.transaction() as conn:
        summary = plan_summary(conn, slug, gate.where)
    by_lang = ", ".join(f"{k} {v}" for k, v in sorted(summary["new_by_language"].items()))
    click.echo(f"  a send now would plan {sum(summary['new_by_language'].values())} "
               f"({by_lang or 'nobody'})")
    print_audience(app, edition)
