"""The Contact model and its normalisation: the one place that decides what a valid contact is."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from email_validator import EmailNotValidError, validate_email

from clubjapon_ops.errors import FieldTooLong, InvalidContact
from clubjapon_ops.listnames import (
    LISTS_SKIPPED,
    BadListName,
    clean_list_name,
    list_key,
    split_list_cell,
)

LANGUAGES = ("fr", "en", "ja")
DEFAULT_LANGUAGE = "fr"
MAX_NAME = 200

_LANGUAGE_ALIASES = {
    "fr": "fr", "fra": "fr", "fre": "fr", "french": "fr", "francais": "fr", "français": "fr",
    "francaise": "fr", "française": "fr", "フランス語": "fr",
    "en": "en", "eng": "en", "english": "en", "anglais": "en", "英語": "en",
    "ja": "ja", "jp": "ja", "jpn": "ja", "japanese": "ja", "japonais": "ja", "日本語": "ja",
    "にほんご": "ja",
}
_TRUE = {"1", "true", "yes", "y", "oui", "o", "vrai", "x", "opted out", "opt-out", "optout"}
_FALSE = {"", "0", "false", "no", "n", "non", "faux", "opted in", "opt-in", "optin", "none"}
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]+")
_SPACES = re.compile(r"\s+")
_DATE_FORMATS = ("%d/%m/%Y %H:%M:%S", "%d/%m/%Y %H:%M", "%d/%m/%Y")


@dataclass
class RawContact:
    """A contact as a source gives it, before any validation."""

    ref: str
    source: str
    email: Any
    first_name: Any = None
    last_name: Any = None
    company: Any = None
    language: Any = None
    opted_out: Any = None
    crm_id: Any = None
    created_at: Any = None
    updated_at: Any = None
    attributes: dict[str, Any] = field(default_factory=dict)
    # The lists the contact is on: a CSV cell, or names; None when the source says nothing.
    lists: Any = None


@dataclass(frozen=True)
class Contact:
    """A validated, normalised contact, ready for the store."""

    email: str
    source: str
    first_name: str | None = None
    last_name: str | None = None
    company: str | None = None
    language: str = DEFAULT_LANGUAGE
    opted_out: bool = False
    crm_id: str | None = None
    crm_created_at: datetime | None = None
    crm_updated_at: datetime | None = None
    attributes: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    # The names of the lists the contact is on; None: the source said nothing, keep them.
    lists: tuple[str, ...] | None = field(default=None, hash=False, compare=False)


def normalise_email(value: Any) -> str:
    """Return the canonical form of an address or raise InvalidContact."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidContact("no email address")
    text = value.strip()
    if _CONTROL.search(text):
        raise InvalidContact("email contains control characters")
    try:
        result = validate_email(text, check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidContact(f"invalid email: {exc}") from None
    # Lower-casing the local part too: every mailbox provider the club meets treats it so,
    # and it is what lets 'Jean@x' and 'jean@x' merge into one contact.
    return f"{result.local_part.lower()}@{result.ascii_domain.lower()}"


def normalise_name(value: Any, label: str) -> str | None:
    """Return NFC text on one line, without surrounding space, or None when empty."""
    if value is None:
        return None
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise InvalidContact(f"{label} is a {type(value).__name__}, expected text")
    text = unicodedata.normalize("NFC", str(value))
    text = _SPACES.sub(" ", _CONTROL.sub(" ", text)).strip()
    if len(text) > MAX_NAME:
        raise FieldTooLong(f"{label} is longer than {MAX_NAME} characters")
    return text or None


def _optional_name(value: Any, label: str, notes: list[str]) -> str | None:
    """A name or company; an over-long one is dropped and noted, and the contact kept."""
    try:
        return normalise_name(value, label)
    except FieldTooLong:
        # Over 200 characters is a pasted note, not a name: greeting with it (or with its
        # first 200 characters) reads worse than the generic greeting a missing name gets.
        notes.append(f"{label} longer than {MAX_NAME} characters")
        return None


def normalise_language(value: Any) -> str:
    """Map a language label ('FR', 'fr-FR', 'Japanese', '日本語' ...) to fr, en or ja."""
    if not isinstance(value, str) or not value.strip():
        return DEFAULT_LANGUAGE
    key = unicodedata.normalize("NFC", value).strip().lower().replace("_", "-")
    if key in _LANGUAGE_ALIASES:
        return _LANGUAGE_ALIASES[key]
    primary = key.split("-", 1)[0]
    return _LANGUAGE_ALIASES.get(primary, DEFAULT_LANGUAGE)


def normalise_flag(value: Any, label: str) -> bool:
    """Read a yes/no field from a CRM or spreadsheet; an unreadable value is an error."""
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    key = str(value).strip().lower()
    if key in _TRUE:
        return True
    if key in _FALSE:
        return False
    raise InvalidContact(f"{label} is not a yes/no value: {str(value)[:20]!r}")


def consents(attributes: Mapping[str, Any], field_name: str | None) -> bool:
    """Whether the CRM field ``field_name`` (any case) says yes (yes, oui, true, 1...).

    Read like the opt-out: an empty, missing or unreadable value is no, never a guess.
    """
    if not field_name:
        return False
    wanted = field_name.strip().lower()
    for key, value in attributes.items():
        if str(key).strip().lower() == wanted:
            try:
                return normalise_flag(value, field_name)
            except InvalidContact:
                return False
    return False


def parse_timestamp(value: Any, label: str) -> datetime | None:
    """Parse ISO 8601, epoch milliseconds or dd/mm/yyyy into an aware UTC datetime."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        parsed = datetime.fromtimestamp(value / 1000, UTC)
    elif isinstance(value, str):
        text = value.strip()
        parsed_or_none = _parse_text_timestamp(text)
        if parsed_or_none is None:
            raise InvalidContact(f"{label} is not a date: {text[:30]!r}")
        parsed = parsed_or_none
    else:
        raise InvalidContact(f"{label} is a {type(value).__name__}, expected a date")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _parse_text_timestamp(text: str) -> datetime | None:
    if text.isdigit():
        return datetime.fromtimestamp(int(text) / 1000, UTC)
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        pass
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            continue
    return None


def _lists(value: Any, notes: list[str]) -> tuple[str, ...] | None:
    """The list names a source gave; an unusable cell is noted and the lists left as they were."""
    if value is None:
        return None
    try:
        if isinstance(value, str):
            return tuple(split_list_cell(value))
        names: dict[str, str] = {}
        for item in value:
            name = clean_list_name(item)
            if name:
                names.setdefault(list_key(name), name)
        return tuple(names.values())
    except BadListName as exc:
        notes.append(f"{LISTS_SKIPPED}: {exc}")
        return None


def normalise(raw: RawContact, notes: list[str] | None = None) -> Contact:
    """Validate and normalise a raw record; raise InvalidContact naming the record.

    Optional fields dropped on the way are appended to ``notes`` (one reason each).
    """
    notes = [] if notes is None else notes
    try:
        crm_id = normalise_name(raw.crm_id, "CRM id")
        return Contact(
            email=normalise_email(raw.email),
            source=raw.source,
            first_name=_optional_name(raw.first_name, "first name", notes),
            last_name=_optional_name(raw.last_name, "last name", notes),
            company=_optional_name(raw.company, "company", notes),
            language=normalise_language(raw.language),
            opted_out=normalise_flag(raw.opted_out, "opt-out"),
            crm_id=crm_id,
            crm_created_at=parse_timestamp(raw.created_at, "created date"),
            crm_updated_at=parse_timestamp(raw.updated_at, "updated date"),
            attributes={k: v for k, v in raw.attributes.items() if v not in (None, "")},
            lists=_lists(raw.lists, notes),
        )
    except InvalidContact as exc:
        raise InvalidContact(exc.reason, raw.ref) from None


def newer(a: Contact, b: Contact) -> Contact:
    """Pick the record that wins a merge: most recently updated, the later one on a tie."""
    if a.crm_updated_at is None:
        return b
    if b.crm_updated_at is None or a.crm_updated_at > b.crm_updated_at:
        return a
    return b
