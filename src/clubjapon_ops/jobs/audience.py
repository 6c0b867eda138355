"""An edition's audience before a send: its lists checked against the synced ones, an empty
audience refused, and the plan by language and by list."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import and_

from clubjapon_ops.delivery.audience import AudienceGate
from clubjapon_ops.errors import ConfigError
from clubjapon_ops.listnames import list_key
from clubjapon_ops.newsletter.audience import (
    describe_audience,
    named_lists,
    unknown_list_problems,
    unknown_lists,
)
from clubjapon_ops.newsletter.lint import Problem
from clubjapon_ops.newsletter.model import Edition
from clubjapon_ops.store import Store
from clubjapon_ops.store.deliveries import new_in_audience
from clubjapon_ops.store.lists import audience_by_list, audience_size, known_lists


def check_audience(store: Store, edition: Edition) -> None:
    """ConfigError (exit 2, before anything is planned) when the edition names a list no
    sync has seen, or when its audience has nobody in it."""
    if not any(True for _ in named_lists(edition)) and edition.audience is None:
        return  # every subscribed reader, as before audiences: nothing to check
    with store.transaction() as conn:
        problems = unknown_lists(edition, known_lists(conn))
        if problems:
            raise ConfigError(f"config/editions/{edition.slug}.yaml: " + "; ".join(problems))
        gate = AudienceGate(edition)
        if gate.query is not None and not audience_size(conn, gate.where):
            raise ConfigError(
                f"no reader in this audience: {describe_audience(edition)} (in "
                f"config/editions/{edition.slug}.yaml): nobody subscribed is on those lists; "
                "'clubjapon-ops lists' shows who is on each, and nothing was sent")


@dataclass
class AudiencePlan:
    """Who a send would plan now, by list: the audience's lists and the sections' lists."""

    described: str
    by_list: dict[str, int] = field(default_factory=dict)  # name as written: new readers
    conditional: dict[str, int] = field(default_factory=dict)  # for only_for / except_for


def audience_plan(store: Store, edition: Edition) -> AudiencePlan:
    """The new readers a send would plan, on each list the edition names."""
    gate = AudienceGate(edition)
    names = {list_key(n): n for _, n in named_lists(edition)}
    audience_lists = [list_key(n) for n in (edition.audience.lists if edition.audience else ())]
    with store.transaction() as conn:
        counts = audience_by_list(conn, list(names),
                                  and_(new_in_audience(edition.slug), gate.where))
    plan = AudiencePlan(describe_audience(edition))
    for key, name in names.items():
        if key in audience_lists:
            plan.by_list[name] = counts.get(key, 0)
        elif key in gate.conditions:
            plan.conditional[name] = counts.get(key, 0)
    return plan


def audience_problems(store: Callable[[], Store], edition: Edition) -> list[Problem]:
    """Lint errors for the list names no sync has seen (rule 'lists'), did-you-mean included;
    the store is opened only when the edition names a list."""
    if not any(True for _ in named_lists(edition)):
        return []
    with store().transaction() as conn:
        known = known_lists(conn)
    path = f"config/editions/{edition.slug}.yaml"
    return [Problem("error", "lists", f"{path} {where}", message)
            for where, message in unknown_list_problems(edition, known)]
