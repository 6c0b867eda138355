"""Preview pages: the edition as a recipient sees it, per language and contact, with lint."""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    redirect,
    render_template,
    request,
    url_for,
)
from werkzeug.wrappers import Response as BaseResponse

from clubjapon_ops.contacts import Contact
from clubjapon_ops.errors import ClubJaponError, ConfigError
from clubjapon_ops.newsletter.content import LANGS, list_editions
from clubjapon_ops.newsletter.lint import lint_messages
from clubjapon_ops.newsletter.render import PersonalMessage
from clubjapon_ops.newsletter.service import SAMPLE_CONTACTS, Newsletter, load_newsletter
from clubjapon_ops.settings import Settings
from clubjapon_ops.store.contacts import contacts_by_language, find_contact

blueprint = Blueprint("preview", __name__)
WIDTHS = {"desktop": 640, "mobile": 375}


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


def _message(slug: str) -> tuple[Newsletter, PersonalMessage, str]:
    lang = request.args.get("lang", "fr")
    if lang not in LANGS:
        abort(400, f"unknown language {lang!r}")
    # Re-read the edition and templates on every request: marketing sees edits on reload.
    newsletter = load_newsletter(_settings(), slug)
    contact = _contact(request.args.get("contact"), lang)
    # Preview in the language asked for, whatever the contact's own preference.
    shown = Contact(**{**vars(contact), "language": lang}) if contact.language != lang else contact
    return newsletter, newsletter.personalise(shown), lang


@blueprint.get("/")
def index() -> BaseResponse:
    """Go to the newest edition's preview."""
    editions = list_editions(_settings().root)
    if not editions:
        abort(404, "no edition in config/editions/")
    return redirect(url_for("preview.page", slug=editions[-1]))


@blueprint.get("/preview/<slug>")
def page(slug: str) -> Any:
    """The preview page: inbox line, lint results, the HTML part in a frame, the text part."""
    width = request.args.get("width", "desktop")
    if width not in WIDTHS:
        width = "desktop"
    try:
        newsletter, message, lang = _message(slug)
    except ConfigError as exc:
        return render_template("preview.html.j2", error=str(exc), slug=slug), 500
    problems = lint_messages({message.lang: message})
    params = {"lang": lang, "contact": message.email}
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
        width=width,
        frame_width=WIDTHS[width],
        params=params,
        sender=_settings().mail_from,
    )


def _part(slug: str, html: bool) -> Response:
    try:
        _, message, _ = _message(slug)
    except ConfigError as exc:
        abort(500, str(exc))
    if html:
        return Response(message.html, mimetype="text/html")
    return Response(message.text, mimetype="text/plain")


@blueprint.get("/preview/<slug>/email.html")
def email_html(slug: str) -> Response:
    """The HTML part alone, as the recipient's mail client gets it."""
    return _part(slug, html=True)


@blueprint.get("/preview/<slug>/email.txt")
def email_text(slug: str) -> Response:
    """The plain-text part alone."""
    return _part(slug, html=False)
