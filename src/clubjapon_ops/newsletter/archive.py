"""The public archive: which editions it shows, and each as a web page with no reader in it."""

from __future__ import annotations

import logging
from pathlib import Path

from clubjapon_ops.errors import ConfigError, UnknownEdition
from clubjapon_ops.newsletter.content import (
    EDITIONS_DIR,
    Edition,
    Lang,
    list_editions,
    load_edition,
    project_relative,
    resolve_edition,
)

log = logging.getLogger(__name__)


def is_public(edition: Edition, sent: set[str]) -> bool:
    """Ready, and sent from this database or marked ``public: true`` in its file."""
    return not edition.is_draft and (edition.slug in sent or edition.public)


def published(root: Path, sent: set[str]) -> list[Edition]:
    """Public editions whose file loads, newest first; a bad file is skipped."""
    found = []
    for slug in list_editions(root):
        try:
            edition = load_edition(root / EDITIONS_DIR / f"{slug}.yaml")
        except ConfigError as exc:
            if slug in sent:
                # One line, the project-relative message: the archive goes on without it.
                log.warning("archive: %s skipped: %s", slug, project_relative(str(exc), root))
            continue
        if is_public(edition, sent):
            found.append(edition)
    return sorted(found, key=lambda e: (e.date, e.slug), reverse=True)


def published_edition(root: Path, slug: str, lang: str, sent: set[str]) -> tuple[Edition, Lang]:
    """The edition the archive may show in ``lang``; UnknownEdition for anything else."""
    slug = resolve_edition(root, slug)  # refuses a name that is not a slug with a file
    edition = load_edition(root / EDITIONS_DIR / f"{slug}.yaml")
    found = next((code for code in edition.languages if code == lang), None)
    if not is_public(edition, sent) or found is None:
        raise UnknownEdition(f"{slug}: a draft, never sent, or not in {lang!r}")
    return edition, found
