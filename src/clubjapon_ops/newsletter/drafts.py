"""Start the next edition: a draft from the commented template, or a copy emptied of text."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import yaml

from clubjapon_ops.errors import ConfigError
from clubjapon_ops.newsletter.content import (
    EDITIONS_DIR,
    LANGS,
    MAX_SLUG,
    edition_path,
    is_slug,
    list_editions,
    load_edition,
    read_yaml,
)
from clubjapon_ops.newsletter.placeholders import PLACEHOLDERS
from clubjapon_ops.newsletter.render import TEMPLATES_DIR
from clubjapon_ops.newsletter.schema import MODELINE

TEMPLATE = Path("newsletter") / "new-edition.yaml"
_HEADER = (
    f"{MODELINE}\n"
    "# Copied from {source} by 'clubjapon-ops edition new': every text is a placeholder.\n"
    "# Replace them all ('clubjapon-ops preview {slug} --check' lists those left), then set\n"
    "# status: ready; 'send' refuses a draft.\n\n"
)


def next_number(root: Path) -> int:
    """One more than the highest number of the editions that load (1 for the first)."""
    numbers = [0]
    for slug in list_editions(root):
        try:
            numbers.append(load_edition(root / EDITIONS_DIR / f"{slug}.yaml").number)
        except ConfigError:
            continue  # a broken file has no number to count
    return max(numbers) + 1


URL_KEYS = ("url", "link")


def _emptied(data: Any) -> Any:
    """The same structure with every text in every language replaced by its placeholder."""
    if isinstance(data, dict):
        if data and set(data) <= set(LANGS):
            return {lang: PLACEHOLDERS[lang] for lang in data}
        # A URL per language is no text to write again: a placeholder would not even load.
        return {key: value if key in URL_KEYS else _emptied(value)
                for key, value in data.items()}
    if isinstance(data, list):
        return [_emptied(item) for item in data]
    return data


def draft_text(root: Path, slug: str, source: str | None) -> str:
    """The text of a new draft edition named slug, from the template or from source."""
    number, day = next_number(root), slug[:10]
    if source is None:
        template = (root / TEMPLATES_DIR / TEMPLATE).read_text(encoding="utf-8")
        return template.replace("__NUMBER__", str(number)).replace("__DATE__", day)
    data = _emptied(read_yaml(edition_path(root, source)))
    data.update(number=number, date=day, status="draft")
    body = yaml.safe_dump(data, allow_unicode=True, sort_keys=False, width=100)
    return _HEADER.format(source=source, slug=slug) + body


def check_new_name(slug: str) -> None:
    """ConfigError, one sentence, unless slug can name a new edition that will load."""
    if len(slug) > MAX_SLUG:
        # Checked first, and the name cut short: it is no file name and no message line.
        raise ConfigError(f"the edition name {slug[:30]!r}... is {len(slug)} characters long: "
                          f"an edition name has at most {MAX_SLUG}, like 2026-06-18-amiens")
    if not is_slug(slug):
        raise ConfigError(f"{slug!r} is not an edition name: expected YYYY-MM-DD-place in "
                          "lower case, like 2026-06-18-amiens")
    try:
        date.fromisoformat(slug[:10])
    except ValueError:
        # The draft's date is the name's: a draft dated 2026-99-99 could never load.
        raise ConfigError(f"{slug!r} does not start with a real date: {slug[:10]} is no day "
                          "of the calendar; name the edition after its date, like "
                          "2026-06-18-amiens") from None


def new_edition(root: Path, slug: str, source: str | None = None) -> Path:
    """Write config/editions/SLUG.yaml as a draft; ConfigError if the name or file is taken."""
    check_new_name(slug)
    path = root / EDITIONS_DIR / f"{slug}.yaml"
    text = draft_text(root, slug, source)
    path.parent.mkdir(parents=True, exist_ok=True)  # the first edition of a fresh project
    try:
        with path.open("x", encoding="utf-8") as out:  # "x": never over marketing's work
            out.write(text)
    except FileExistsError:
        raise ConfigError(f"{path.relative_to(root)} already exists: edit it, or choose "
                          "another name") from None
    return path
