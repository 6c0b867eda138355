"""The transport interface and the closed list of per-recipient statuses."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, runtime_checkable

from clubjapon_ops.delivery.message import Mime, MimeBuilder
from clubjapon_ops.newsletter.render import PersonalMessage

# A non-ASCII local part, refused before it is handed over: the same words over SMTP and in
# the outbox, so the two record one outcome.
NEEDS_SMTPUTF8 = ("the address has non-ASCII characters: it needs SMTPUTF8 (RFC 6531), which "
                  "this sender does not use")


class Status(StrEnum):
    """What a provider said about one recipient."""

    SENT = "sent"  # accepted for delivery by the server or API
    QUEUED = "queued"  # accepted, delivery will happen later
    REJECTED = "rejected"  # refused for this recipient (invalid, blocked): permanent
    FAILED = "failed"  # permanent failure for this message
    RETRY = "retry"  # transient failure: try again later
    # The provider refused the whole request and took nothing of it (a 400, 401, 403, 422, or
    # a 429 to the last attempt): try again later, under a new idempotency key if any.
    REFUSED = "refused"
    UNKNOWN = "unknown"  # handed over, then no answer: may or may not have been delivered


@dataclass(frozen=True)
class Outgoing:
    """One message to hand over: the ledger row it stands for and its content."""

    id: int
    envelope_to: str
    message: PersonalMessage
    edition: str
    subject_prefix: str = ""
    test_copy: bool = False  # a `send --test-to` copy: a Message-ID of its own

    def mime(self, builder: MimeBuilder, *, eight_bit: bool = False) -> Mime:
        """The whole message, for transports that speak MIME."""
        return builder.compose(
            self.message, edition=self.edition, subject_prefix=self.subject_prefix,
            to_address=self.envelope_to, eight_bit=eight_bit, test_copy=self.test_copy,
        )


@dataclass(frozen=True)
class Result:
    """The provider's answer for one message."""

    id: int
    status: Status
    provider_id: str | None = None
    error: str | None = None
    # Set when the answer proves the address is bad (hard bounce, invalid recipient).
    suppress: str | None = None
    # The provider's answer in a few words, kept on the row ('401', '429', '500', 'timeout').
    cause: str | None = None
    # False when the answer says nothing about the message (our credentials were refused):
    # the try does not count against the row's attempts.
    counts_attempt: bool = True


class Transport(Protocol):
    """Hands batches of messages to a mail server or an email API."""

    name: str
    batch_size: int
    # True when a batch can carry an idempotency key that makes a resend harmless.
    idempotent: bool
    # True when messages go one at a time (SMTP, files): the sender then records each
    # answer before the next hand-over, over ``concurrency`` lanes in parallel.
    per_message: bool
    concurrency: int

    def send(self, batch: Sequence[Outgoing], idempotency_key: str | None = None,
             then: Outgoing | None = None) -> list[Result]:
        """Hand the batch over; return one result per message, in order.

        ``then``: the message the caller hands over next, when known; a transport may use it
        to prepare (SMTP sends its envelope ahead) but never sends it before its own call.
        """
        ...

    def close(self) -> None:
        """Release connections."""
        ...


@runtime_checkable
class Reachable(Protocol):
    """A transport that can check, before a send plans anything, that its server answers."""

    def check(self) -> None:
        """Open one session and close it; raise StopRun (or AuthError) naming the settings."""
        ...
