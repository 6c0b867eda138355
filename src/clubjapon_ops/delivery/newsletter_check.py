"""An edition checked as it will be sent: rendered, linted, and its MIME message built.

Beside delivery's MIME builder, since newsletter/ (content in, messages out) imports nothing
of delivery/.
"""

from __future__ import annotations

from clubjapon_ops.delivery.message import MimeBuilder
from clubjapon_ops.errors import ConfigError
from clubjapon_ops.newsletter.content import Lang, list_editions
from clubjapon_ops.newsletter.edition_lint import in_edition_terms, lint_edition
from clubjapon_ops.newsletter.lint import Problem, lint_messages
from clubjapon_ops.newsletter.render import Personaliser, RenderedLanguage, UnsubscribeLink
from clubjapon_ops.newsletter.service import (
    SAMPLE_CONTACTS,
    find_edition,
    make_renderer,
    placeholder_unsubscribe_url,
)
from clubjapon_ops.settings import Settings


def check_newsletter(
    settings: Settings, slug: str, unsubscribe_url: UnsubscribeLink | None = None,
    *, for_send: bool = False,
) -> list[Problem]:
    """Render every language with a sample reader and lint the result (and the MIME
    message built from it); ``for_send``: the checks of a send that leaves this machine."""
    edition = find_edition(settings, slug)
    renderer = make_renderer(settings)
    problems: list[Problem] = lint_edition(settings.root, edition)
    rendered: dict[Lang, RenderedLanguage] = {}
    for lang in edition.languages:
        try:
            rendered[lang] = renderer.render_language(edition, lang)
        except ConfigError as exc:
            problems.append(Problem("error", "renders", lang, str(exc)))
    personaliser = Personaliser(
        edition, rendered, renderer.strings,
        unsubscribe_url or placeholder_unsubscribe_url(settings),
    )
    samples = {lang: personaliser.personalise(SAMPLE_CONTACTS[lang]) for lang in rendered}
    builder = MimeBuilder(settings.mail_from, list_id=settings.list_id)
    mimes = {lang: builder.build(sample, edition=slug) for lang, sample in samples.items()}
    return in_edition_terms(settings.root, edition, problems + lint_messages(
        samples, mimes=mimes, postal_address=settings.postal_address, for_send=for_send))


def newest_ready_edition(settings: Settings) -> str | None:
    """The newest edition marked status: ready that loads and lints without error, or None.

    Both are needed: the status says marketing is done, the lint that nothing was left
    broken (a file marked ready by mistake, a copy whose subject is too long).
    """
    for slug in reversed(list_editions(settings.root)):
        try:
            if find_edition(settings, slug).is_draft:
                continue
            problems = check_newsletter(settings, slug)
        except ConfigError:
            continue  # a file that does not load is not ready either
        if not any(p.level == "error" for p in problems):
            return slug
    return None
