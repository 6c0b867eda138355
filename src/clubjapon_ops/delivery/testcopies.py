"""Test copies (`send --test-to`): the edition as one reader sees it, sent to a few addresses.

Their unsubscribe links are test links (they change nothing), and the outbox writes them to a
folder of their own, never beside the edition's real messages. The ledger is left alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from clubjapon_ops.contacts import Contact
from clubjapon_ops.delivery.tokens import TokenSigner, signing_key, unsubscribe_url
from clubjapon_ops.delivery.transports import Outgoing, Status, builder_for, make_transport
from clubjapon_ops.delivery.transports.base import Reachable
from clubjapon_ops.delivery.transports.outbox import OutboxTransport
from clubjapon_ops.newsletter.render import Personaliser
from clubjapon_ops.newsletter.service import Newsletter, load_newsletter
from clubjapon_ops.settings import Settings

TEST_COPIES_DIR = "test-copies"  # under CLUBJAPON_OUTBOX_DIR: the outbox clean-up covers it
SUBJECT_PREFIX = "[TEST] "


@dataclass(frozen=True)
class CopySent:
    """What became of one test copy."""

    address: str
    status: Status
    transport: str
    path: Path | None = None  # the file, when the outbox wrote one
    error: str | None = None


def send_test_copies(settings: Settings, newsletter: Newsletter, reader: Contact,
                     addresses: Sequence[str]) -> list[CopySent]:
    """Send the edition as ``reader`` sees it to ``addresses``, with test unsubscribe links."""
    edition = newsletter.edition.slug
    if newsletter.renderer.links is not None:
        # A test copy's links go straight to their targets: no click of ours to count.
        newsletter = load_newsletter(settings, edition)
    signer = TokenSigner(signing_key(settings))
    # Personalised here, whatever links ``newsletter`` carries: a test copy may be rendered
    # as a real reader, and their real link must never reach someone else's mailbox.
    personaliser = Personaliser(
        newsletter.edition, newsletter.rendered, newsletter.personaliser.strings,
        lambda c: unsubscribe_url(settings, signer, edition, c.email, c.language, test=True))
    message = personaliser.personalise(reader)
    if settings.transport == "outbox":
        settings = settings.with_overrides(outbox_dir=settings.outbox_dir / TEST_COPIES_DIR)
    transport = make_transport(settings, builder_for(settings))
    batch = [Outgoing(id=n, envelope_to=a, message=message, edition=edition,
                      subject_prefix=SUBJECT_PREFIX, test_copy=True)
             for n, a in enumerate(addresses, start=1)]
    try:
        if isinstance(transport, Reachable):
            transport.check()  # nothing listening: stop at once, naming the settings
        results = transport.send(batch)
    finally:
        transport.close()
    outbox = transport if isinstance(transport, OutboxTransport) else None
    return [CopySent(item.envelope_to, result.status, transport.name,
                     outbox.path_of(item) if outbox and result.status == Status.SENT else None,
                     result.error)
            for item, result in zip(batch, results, strict=True)]
