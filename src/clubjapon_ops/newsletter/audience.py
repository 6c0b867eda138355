"""An edition's audience and its sections' conditions: which lists they name, which sections a
reader on some lists sees, and the variants that makes (rendered once each, not per reader)."""

from __future__ import annotations

import difflib
import itertools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from clubjapon_ops.listnames import list_key
from clubjapon_ops.newsletter.model import Edition

# A variant is which conditional sections show, in order: (True, False) shows the first.
Variant = tuple[bool, ...]
# Past this many condition lists, the preview shows the variants readers have, not all.
MAX_PREVIEWED_LISTS = 6


@dataclass(frozen=True)
class AudienceKeys:
    """An edition's audience as list keys and languages (all empty: every subscribed reader)."""

    lists: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()


def audience_keys(edition: Edition) -> AudienceKeys | None:
    """The audience block as keys, or None when the edition has none."""
    audience = edition.audience
    if audience is None:
        return None
    return AudienceKeys(tuple(dict.fromkeys(list_key(n) for n in audience.lists)),
                        tuple(dict.fromkeys(list_key(n) for n in audience.exclude_lists)),
                        tuple(dict.fromkeys(audience.languages)))


def describe_audience(edition: Edition) -> str:
    """The audience in words, for messages: 'lists Membres, Partenaires; not Presse; ja'."""
    audience = edition.audience
    if audience is None:
        return "every subscribed reader"
    parts = []
    if audience.lists:
        parts.append("on " + " or ".join(audience.lists))
    if audience.exclude_lists:
        parts.append("not on " + " nor ".join(audience.exclude_lists))
    if audience.languages:
        parts.append("reading " + " or ".join(audience.languages))
    return "; ".join(parts) or "every subscribed reader"


def named_lists(edition: Edition) -> Iterator[tuple[str, str]]:
    """Every list name the edition uses, with where: ('audience.lists', 'Membres') ..."""
    if edition.audience is not None:
        for name in edition.audience.lists:
            yield "audience.lists", name
        for name in edition.audience.exclude_lists:
            yield "audience.exclude_lists", name
    for i, section in enumerate(edition.sections):
        for field in ("only_for", "except_for"):
            for name in getattr(section, field) or ():
                yield f"sections.{i}.{field}", name


def unknown_lists(edition: Edition, known: Mapping[str, str]) -> list[str]:
    """One sentence per list name the edition uses that no sync has seen, with a
    did-you-mean from the synced lists (``known``: {key: name as the CRM writes it})."""
    return [f"{where}: {message}" for where, message in unknown_list_problems(edition, known)]


def unknown_list_problems(edition: Edition,
                          known: Mapping[str, str]) -> list[tuple[str, str]]:
    """(where, what) for each list name the edition uses that no sync has seen."""
    problems = []
    for where, name in named_lists(edition):
        if list_key(name) in known:
            continue
        close = difflib.get_close_matches(list_key(name), list(known), n=1, cutoff=0.6)
        hint = (f"did you mean '{known[close[0]]}'?" if close else
                "'clubjapon-ops lists' shows the synced lists")
        problems.append((where, f"no list '{name}' in the CRM's synced lists: {hint}"))
    return problems


def condition_keys(edition: Edition) -> tuple[str, ...]:
    """The keys of every list a section's only_for or except_for names."""
    keys: dict[str, None] = {}
    for section in edition.sections:
        for name in [*(section.only_for or ()), *(section.except_for or ())]:
            keys[list_key(name)] = None
    return tuple(keys)


def is_conditional(edition: Edition) -> bool:
    """True when some section is shown to part of the audience only."""
    return any(s.only_for or s.except_for for s in edition.sections)


class Conditions:
    """An edition's section conditions, as list keys, read once: a variant per reader then
    costs a few set look-ups, not a pass over the sections' names."""

    def __init__(self, edition: Edition) -> None:
        self.rules = [
            (frozenset(list_key(n) for n in s.only_for or ()),
             frozenset(list_key(n) for n in s.except_for or ()))
            for s in edition.sections if s.only_for or s.except_for]

    def variant(self, on_lists: frozenset[str]) -> Variant:
        """Which conditional sections a reader on these lists (keys) sees."""
        return tuple((not only or not only.isdisjoint(on_lists)) and except_.isdisjoint(on_lists)
                     for only, except_ in self.rules)


def variant_of(edition: Edition, on_lists: frozenset[str]) -> Variant:
    """Which conditional sections a reader on these lists (keys) sees."""
    return Conditions(edition).variant(on_lists)


def edition_variant(edition: Edition, variant: Variant) -> Edition:
    """The edition with only the sections this variant shows."""
    flags = iter(variant)
    kept = [s for s in edition.sections
            if not (s.only_for or s.except_for) or next(flags)]
    return edition.model_copy(update={"sections": kept})


def all_variants(edition: Edition) -> dict[Variant, frozenset[str]]:
    """Every variant a reader could get, each with a set of lists (keys) that gives it."""
    keys = condition_keys(edition)[:MAX_PREVIEWED_LISTS]
    found: dict[Variant, frozenset[str]] = {}
    for n in range(len(keys) + 1):
        for chosen in itertools.combinations(keys, n):
            found.setdefault(variant_of(edition, frozenset(chosen)), frozenset(chosen))
    return found


def describe_variant(edition: Edition, variant: Variant) -> str:
    """A variant in words: which conditional sections it shows and hides."""
    conditional = [i for i, s in enumerate(edition.sections) if s.only_for or s.except_for]
    shown = [f"section {i + 1}" for i, on in zip(conditional, variant, strict=True) if on]
    hidden = [f"section {i + 1}" for i, on in zip(conditional, variant, strict=True) if not on]
    parts = ([f"shows {', '.join(shown)}"] if shown else []) + (
        [f"hides {', '.join(hidden)}"] if hidden else [])
    return "; ".join(parts) or "every section"


def variant_choices(edition: Edition) -> list[tuple[str, frozenset[str]]]:
    """Each variant for the preview: a label (who gets it, what it shows) and a set of list
    keys that gives it; one entry, 'every reader', when no section has a condition."""
    if not is_conditional(edition):
        return [("every reader", frozenset())]
    names = {list_key(n): n for _, n in named_lists(edition)}
    choices = []
    for variant, keys in all_variants(edition).items():
        who = ("a reader on " + " and ".join(sorted(names[k] for k in keys)) if keys
               else "a reader on none of these lists")
        choices.append((f"{who}: {describe_variant(edition, variant)}", keys))
    return choices
