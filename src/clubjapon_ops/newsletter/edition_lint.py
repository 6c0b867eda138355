"""Lint an edition's content against the others: what copying the last one leaves behind."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from clubjapon_ops.errors import ConfigError
from clubjapon_ops.newsletter.content import (
    EDITIONS_DIR,
    Loc,
    dotted,
    list_editions,
    load_edition,
    locate_fields,
    texts_in,
)
from clubjapon_ops.newsletter.lint import Problem, most_serious_first
from clubjapon_ops.newsletter.media import MAX_BYTES, ImageRefused, file_images, publish
from clubjapon_ops.newsletter.model import Edition
from clubjapon_ops.newsletter.placeholders import placeholder_in

COPIED = "same as in {slug}: copied and not changed?"
_COMPARED = ("subject", "preheader", "title", "summary")
# Sections whose every text is about one edition ('edition new --from' blanks them): a text
# of theirs pasted back from an earlier edition is a copy too.
_NEWS_SECTIONS = ("text", "quote", "panels")


def _headings(edition: Edition) -> Iterator[tuple[Loc, dict[str, str]]]:
    for i, section in enumerate(edition.sections):
        heading = getattr(section, "heading", None)
        if heading:
            yield ("sections", i, "heading"), heading


def _news(edition: Edition) -> Iterator[tuple[Loc, dict[str, str]]]:
    """Every text of the sections about this edition (paragraphs, quotes, panels)."""
    for i, section in enumerate(edition.sections):
        if section.type not in _NEWS_SECTIONS:
            continue
        texts: dict[Loc, dict[str, str]] = {}
        for loc, text in texts_in(section.model_dump(exclude={"heading"}), ("sections", i)):
            if len(loc) > 3 and loc[-1] in edition.languages:  # a text, not a type or a list
                texts.setdefault(loc[:-1], {})[str(loc[-1])] = text
        yield from texts.items()


def _compared(edition: Edition) -> list[tuple[Loc, dict[str, str]]]:
    # An edition's own opening or closing (a seasonal greeting) is about that edition too.
    own = [((name,), texts) for name in ("opening", "closing")
           if (texts := getattr(edition, name, None))]
    return [((name,), getattr(edition, name)) for name in _COMPARED] + own + list(
        _headings(edition)) + list(_news(edition))


def _earlier(root: Path, slug: str) -> list[Edition]:
    """The editions before this one that load, newest first; a broken file is skipped."""
    found = []
    for other in reversed(list_editions(root)):
        if other >= slug:
            continue
        try:
            found.append(load_edition(root / EDITIONS_DIR / f"{other}.yaml"))
        except ConfigError:
            continue  # its own lint says what is wrong with it
    return found


def lint_edition(root: Path, edition: Edition) -> list[Problem]:
    """Placeholders left, a date not the file name's, a number not after the last, copies."""
    path = root / EDITIONS_DIR / f"{edition.slug}.yaml"
    line_of: Callable[[Loc], int] = locate_fields(path)
    problems: list[Problem] = []

    def add(level: str, rule: str, loc: Loc, message: str) -> None:
        where = f"{EDITIONS_DIR.as_posix()}/{edition.slug}.yaml:{line_of(loc)} {dotted(loc)}"
        problems.append(Problem(level, rule, where, message))

    for loc, text in texts_in(edition.model_dump(exclude={"slug"})):
        if mark := placeholder_in(text):
            add("error", "placeholder", loc, f"{mark} is still there: write the text")
    named = edition.slug[:10]
    if edition.date.isoformat() != named:
        add("error", "date", ("date",),
            f"{edition.date.isoformat()} is not the date of the file name ({named}): "
            "rename the file or correct the date")
    earlier = _earlier(root, edition.slug)
    if earlier and edition.number <= earlier[0].number:
        add("error", "number", ("number",),
            f"number {edition.number} is not greater than {earlier[0].slug}'s, "
            f"{earlier[0].number}: copied and not changed?")
    for loc, section in file_images(edition):
        try:
            published = publish(root, str(section.file))  # done once: this reads its record
        except ImageRefused as exc:  # changed since the edition was loaded
            add("error", "image-file", loc, str(exc))
            continue
        if published.size > MAX_BYTES:
            add("warning", "image-weight", loc,
                f"{section.file!r} still weighs {published.size // 1024} KB once published "
                f"(at most {MAX_BYTES // 1024} KB loads quickly on a phone): a photo is "
                "lighter as JPEG, an image with transparency with fewer colours")
    seen: set[Loc] = set()
    for other in earlier:
        theirs = {text for _, texts in _compared(other) for text in texts.values()}
        for loc, texts in _compared(edition):
            same = [lang for lang in edition.languages if texts.get(lang) in theirs]
            if same and loc not in seen and not any(placeholder_in(t) for t in texts.values()):
                seen.add(loc)
                add("warning", "copied", loc, COPIED.format(slug=other.slug))
    return problems


# Rules of the rendered message that only an edition field can set off, and that field.
_FIELD_OF_RULE = {"subject-length": "subject"}


def in_edition_terms(root: Path, edition: Edition, problems: list[Problem]) -> list[Problem]:
    """The findings, most serious first, those about an edition field placed at its line in
    the edition file (``en subject`` -> ``config/editions/<slug>.yaml:24 subject.en``)."""
    path = root / EDITIONS_DIR / f"{edition.slug}.yaml"
    line_of = locate_fields(path)
    placed = []
    for problem in problems:
        field = _FIELD_OF_RULE.get(problem.rule)
        lang = problem.where.split(" ", 1)[0]
        if field and lang in edition.languages:
            loc: Loc = (field, lang)
            problem = Problem(problem.level, problem.rule,
                              f"{EDITIONS_DIR.as_posix()}/{edition.slug}.yaml:{line_of(loc)} "
                              f"{dotted(loc)}", problem.message)
        placed.append(problem)
    return most_serious_first(placed)
