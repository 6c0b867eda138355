"""Test copies (`send --test-to`, the preview's "send me a test"): the edition as one reader
sees it, in one or more languages, sent to a few addresses.

Their unsubscribe links are test links (they change nothing), and the outbox writes them to a
folder of their own, never beside the edition's real messages, one file per language, address
and send (<edition>/<lang>-<address>-<n>.eml). Their To: is the tester's address alone. The
ledger is left alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from clubjapon_ops.contacts import Contact, normalise_email
from clubjapon_ops.delivery.tokens import TokenSigner, signing_key, unsubscribe_url
from clubjapon_ops.delivery.transports import Outgoing, Status, builder_for, make_transport
from clubjapon_ops.delivery.transports.base import Reachable
from clubjapon_ops.delivery.transports.outbox import OutboxTransport
from clubjapon_ops.errors import InvalidContact
from clubjapon_ops.newsletter.model import Edition
from clubjapon_ops.newsletter.render import Personaliser
from clubjapon_ops.newsletter.service import SAMPLE_CONTACTS, Newsletter, load_newsletter
from clubjapon_ops.settings import Settings

TEST_COPIES_DIR = "test-copies"  # under CLUBJAPON_OUTBOX_DIR: the outbox clean-up covers it
SUBJECT_PREFIX = "[TEST] "
ALL = "all"


class NotSendable(ValueError):
    """A test copy asked for cannot be sent as asked: one sentence saying what to change."""


@dataclass(frozen=True)
class CopySent:
    """What became of one test copy."""

    address: str
    lang: str
    reader: str  # who it is rendered as, in words: "the sample reader Camille Martin"
    status: Status
    transport: str
    path: Path | None = None  # the file, when the outbox wrote one
    error: str | None = None


def languages(edition: Edition, wanted: Iterable[str]) -> list[str]:
    """The edition's languages asked for ('all', or several, commas allowed), in its order;
    none asked: its first. NotSendable for a language it is not written in."""
    asked = {lang.strip() for value in wanted for lang in value.split(",") if lang.strip()}
    if not asked:
        return [edition.primary_language]
    if ALL in asked:
        return list(edition.languages)
    missing = sorted(asked - set(edition.languages))
    if missing:
        raise NotSendable(
            f"{edition.slug} is not written in {', '.join(missing)}: choose among "
            f"{', '.join(edition.languages)}, or all")
    return [lang for lang in edition.languages if lang in asked]


def addresses(text: str) -> list[str]:
    """The addresses of a comma-separated list, normalised, each once; NotSendable if one is
    not an address or there are none."""
    found: list[str] = []
    for raw in text.split(","):
        if not raw.strip():
            continue
        try:
            address = normalise_email(raw)
        except InvalidContact as exc:
            raise NotSendable(f"{raw.strip()!r}: {exc.reason}") from None
        if address not in found:
            found.append(address)
    if not found:
        raise NotSendable("no address to send the test copies to: give one, like me@example.org")
    return found


def readers(langs: Sequence[str], contact: Contact | None = None) -> list[Contact]:
    """Who each language's copy is rendered as: ``contact`` in that language, else the
    language's sample reader."""
    if contact is None:
        return [SAMPLE_CONTACTS[lang] for lang in langs]
    return [contact if contact.language == lang else replace(contact, language=lang)
            for lang in langs]


def describe(reader: Contact) -> str:
    """The reader a copy is rendered as, in words for the person who asked for it."""
    if reader.source == "sample":
        # Family name first in Japanese, as the greeting has it.
        names = (reader.last_name, reader.first_name) if reader.language == "ja" else (
            reader.first_name, reader.last_name)
        name = " ".join(n for n in names if n)
        return f"the sample reader {name}"
    return f"the contact {reader.email}"


def send_test_copies(settings: Settings, newsletter: Newsletter, as_readers: Sequence[Contact],
                     to: Sequence[str]) -> list[CopySent]:
    """Send the edition as each of ``as_readers`` sees it (one per language) to each of
    ``to``, with test unsubscribe links; one copy per reader and address."""
    edition = newsletter.edition.slug
    if newsletter.renderer.links is not None:
        # A test copy's links go straight to their targets: no click of ours to count.
        newsletter = load_newsletter(settings, edition)
    signer = TokenSigner(signing_key(settings))
    # Personalised here, whatever links ``newsletter`` carries: a test copy may be rendered
    # as a real reader, and their real link must never reach someone else's mailbox.
    personaliser = Personaliser(
        newsletter.edition, newsletter.rendered, newsletter.personaliser.strings,
        lambda c, row: unsubscribe_url(settings, signer, None, c.language, test=True))
    if settings.transport == "outbox":
        settings = settings.with_overrides(outbox_dir=settings.outbox_dir / TEST_COPIES_DIR)
    transport = make_transport(settings, builder_for(settings))
    batch: list[Outgoing] = []
    described: dict[int, tuple[str, str]] = {}
    for reader in as_readers:
        message = personaliser.personalise(reader)
        for address in to:
            item = Outgoing(id=len(batch) + 1, envelope_to=address, message=message,
                            edition=edition, subject_prefix=SUBJECT_PREFIX, test_copy=True)
            described[item.id] = (message.lang, describe(reader))
            batch.append(item)
    try:
        if isinstance(transport, Reachable):
            transport.check()  # nothing listening: stop at once, naming the settings
        results = transport.send(batch)
    finally:
        transport.close()
    outbox = transport if isinstance(transport, OutboxTransport) else None
    return [CopySent(item.envelope_to, *described[item.id], result.status, transport.name,
                     outbox.root / edition / result.provider_id
                     if outbox and result.status == Status.SENT and result.provider_id
                     else None,
                     result.error)
            for item, result in zip(batch, results, strict=True)]
