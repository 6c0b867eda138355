"""Preview pages: the edition as a recipient sees it, per language and contact, with lint.

Marketing only: these pages list stored contacts and unpublished editions (see create_app).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    render_template,
    request,
)

from clubjapon_ops.contacts import Contact
from clubjapon_ops.delivery.audience import AudienceGate
from clubjapon_ops.errors import ClubJaponError, ConfigError
from clubjapon_ops.jobs.audience import audience_plan
from clubjapon_ops.newsletter.audience import describe_audience, variant_choices
from clubjapon_ops.newsletter.content import LANGS, list_editions, project_relative
from clubjapon_ops.newsletter.edition_lint import in_edition_terms, lint_edition
from clubjapon_ops.newsletter.lint import lint_messages, summary
from clubjapon_ops.newsletter.render import PersonalMessage
from clubjapon_ops.newsletter.service import SAMPLE_CONTACTS, Newsletter, load_newsletter
from clubjapon_ops.settings import Settings
from clubjapon_ops.store.contacts import contacts_by_language, find_contact
from clubjapon_ops.store.deliveries import plan_summary
from clubjapon_ops.web.edition_index import index_rows
from clubjapon_ops.web.headers import EMAIL_CSP

blueprint = Blueprint("preview", __name__)
WIDTHS = {"desktop": 640, "mobile": 375}
# An absolute path left in a message once the project root is cut: kept to its file name.
_ABSOLUTE_PATH = re.compile(r"(?<![\w.:/~-])/(?:[^\s/'\"<>]+/)+")


class Unrenderable(Exception):
    """The edition cannot be shown: 404 (no such edition) or 500 (it is broken)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def relative(text: str, root: Path) -> str:
    """The text with paths under the project root made relative, and no other absolute path."""
    return _ABSOLUTE_PATH.sub("", project_relative(text, root))


def _settings() -> Settings:
    settings: Settings = current_app.config["CLUBJAPON_SETTINGS"]
    return settings


def _store_contacts(lang: str) -> list[Contact]:
    try:
        store = current_app.config["CLUBJAPON_STORE_FACTORY"]()
        with store.transaction() as conn:
            return contacts_by_language(conn, lang)
    except ClubJaponError:
        return []  # no store yet: the sample reader still shows the edition


def _contact(email: str | None, lang: str) -> Contact:
    if email and email != SAMPLE_CONTACTS[lang].email:
        try:
            store = current_app.config["CLUBJAPON_STORE_FACTORY"]()
            with store.transaction() as conn:
                found = find_contact(conn, email)
        except ClubJaponError:
            found = None
        if found is None:
            abort(404, f"no contact {email}")
        return found
    return SAMPLE_CONTACTS[lang]


def _newsletter(slug: str) -> Newsletter:
    # Re-read the edition and templates on every request: marketing sees edits on reload.
    root = _settings().root
    try:
        # Images from this server's /media/: a laptop's preview shows a photo published on
        # the laptop, before the public server has it.
        return load_newsletter(_settings(), slug, image_base="")
    except ConfigError as exc:
        # A file of that name exists: it is broken, and marketing must see why. Otherwise
        # there is no such edition, whatever find_edition says of the name.
        status = 500 if slug in list_editions(root) else 404
        raise Unrenderable(status, relative(str(exc), root)) from None
    except OSError:
        raise Unrenderable(404, "no edition of that name") from None  # e.g. a name too long


def _message(slug: str) -> tuple[Newsletter, PersonalMessage, str]:
    lang = request.args.get("lang", "fr")
    if lang not in LANGS:
        abort(400, f"unknown language {lang!r}")
    newsletter = _newsletter(slug)
    contact = _contact(request.args.get("contact"), lang)
    # Preview in the language asked for, whatever the contact's own preference.
    shown = Contact(**{**vars(contact), "language": lang}) if contact.language != lang else contact
    _, on_lists = _variant(newsletter)
    return newsletter, newsletter.personalise(shown, on_lists), lang


def _audience_counts(newsletter: Newsletter) -> str:
    """Who a send would plan now, by language and by list ('' without a store or a block)."""
    edition = newsletter.edition
    if edition.audience is None:
        return ""
    try:
        store = current_app.config["CLUBJAPON_STORE_FACTORY"]()
        gate = AudienceGate(edition)
        with store.transaction() as conn:
            by_lang = plan_summary(conn, edition.slug, gate.where)["new_by_language"]
        plan = audience_plan(store, edition)
    except ClubJaponError:
        return ""  # no store yet: the audience is described, not counted
    langs = ", ".join(f"{k} {v}" for k, v in sorted(by_lang.items())) or "nobody"
    lists = ", ".join(f"{k} {v}" for k, v in plan.by_list.items())
    return f"a send now would plan {sum(by_lang.values())} ({langs})" + (
        f"; by list: {lists}" if lists else "")


def _variant(newsletter: Newsletter) -> tuple[int, frozenset[str]]:
    """The variant asked for (?variant=N, sections for part of the audience) and its lists."""
    choices = variant_choices(newsletter.edition)
    try:
        index = int(request.args.get("variant", "0"))
    except ValueError:
        abort(400, "variant must be a number")
    if not 0 <= index < len(choices):
        abort(400, f"this edition has {len(choices)} variant(s)")
    return index, choices[index][1]


@blueprint.get("/")
def index() -> Any:
    """The editions, newest first: drafts marked, a broken file with its first error."""
    root = _settings().root
    rows = index_rows(_settings(), current_app.config["CLUBJAPON_STORE_FACTORY"],
                      lambda text: relative(text, root))
    return render_template("preview_index.html.j2", rows=rows)


@blueprint.get("/preview/<slug>")
def page(slug: str) -> Any:
    """The preview page: inbox line, lint results, the HTML part in a frame, the text part."""
    width = request.args.get("width", "desktop")
    if width not in WIDTHS:
        width = "desktop"
    newsletter, message, lang = _message(slug)
    # The edition's own lint too: placeholders left and copies are what marketing fixes here.
    root = _settings().root
    problems = in_edition_terms(root, newsletter.edition, lint_edition(
        root, newsletter.edition) + lint_messages({message.lang: message}))
    variant, _ = _variant(newsletter)
    params = {"lang": lang, "contact": message.email, "variant": variant}
    return render_template(
        "preview.html.j2",
        error=None,
        slug=slug,
        editions=list_editions(_settings().root),
        edition=newsletter.edition,
        message=message,
        lang=lang,
        langs=newsletter.edition.languages,
        contacts=[SAMPLE_CONTACTS[lang], *_store_contacts(lang)],
        problems=problems,
        problems_summary=summary(problems),
        width=width,
        frame_width=WIDTHS[width],
        params=params,
        sender=_settings().mail_from,
        audience=describe_audience(newsletter.edition),
        audience_counts=_audience_counts(newsletter),
        variants=[label for label, _ in variant_choices(newsletter.edition)],
        variant=variant,
    )


@blueprint.app_errorhandler(Unrenderable)
def unrenderable(exc: Unrenderable) -> Any:
    """Say why the edition cannot be shown, with no absolute path."""
    slug = request.view_args.get("slug", "") if request.view_args else ""
    return render_template("preview.html.j2", error=exc.message, slug=slug), exc.status


def _part(slug: str, html: bool) -> Response:
    _, message, _ = _message(slug)
    if html:
        return Response(message.html, mimetype="text/html",
                        headers={"Content-Security-Policy": EMAIL_CSP})
    return Response(message.text, mimetype="text/plain")


@blueprint.get("/preview/<slug>/email.html")
def email_html(slug: str) -> Response:
    """The HTML part alone, as the recipient's mail client gets it."""
    return _part(slug, html=True)


@blueprint.get("/preview/<slug>/email.txt")
def email_text(slug: str) -> Response:
    """The plain-text part alone."""
    return _part(slug, html=False)
