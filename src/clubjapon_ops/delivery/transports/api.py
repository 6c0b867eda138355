"""What the email API transports share: one language per request, content with placeholders."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from email.utils import parseaddr

from clubjapon_ops.delivery.message import header_safe, list_headers
from clubjapon_ops.delivery.transports.base import Outgoing, Result, Status
from clubjapon_ops.http.client import GaveUp, HttpClient
from clubjapon_ops.newsletter.render import SLOTS, RenderedLanguage


def by_language(batch: Sequence[Outgoing]) -> list[list[Outgoing]]:
    """Split a batch into groups sharing one rendered language (one content per request)."""
    groups: dict[int, list[Outgoing]] = defaultdict(list)
    for item in batch:
        groups[id(item.message.rendered)].append(item)
    return list(groups.values())


class ApiTransport:
    """What both email APIs share: an HTTP client, the sender, whole batches per call."""

    per_message = False
    concurrency = 1
    max_name: int | None = None  # the provider's documented limit on display names, if any

    def __init__(self, client: HttpClient, mail_from: str, unsubscribe_mailto: str,
                 *, list_id: str | None = None) -> None:
        self.client = client
        self.sender = sender(mail_from, self.max_name)
        self.unsubscribe_mailto = unsubscribe_mailto
        # List-Id and the auto-reply suppressors, as SMTP messages carry them.
        self.list_headers = dict(list_headers(mail_from, list_id))

    @property
    def longest_call_s(self) -> float:
        """How long one call may last, its retries included: a batch sent again under its
        idempotency key must be answered before the key lapses."""
        return self.client.retry.total_s + self.client.timeout

    def close(self) -> None:
        """Release the HTTP session."""
        self.client.close()


def gave_up(provider: str, exc: GaveUp, status: Status, *, keyed: bool) -> str:
    """What a batch's rows record when every attempt of its request failed: what the provider
    answered, and what becomes of the batch."""
    then = {
        Status.REFUSED: f"{provider} took none of the batch; it goes again at the next run",
        Status.RETRY: ("the batch may have been taken; it goes again under its idempotency key"
                       if keyed else "the batch goes again at the next run"),
        Status.UNKNOWN: ("the batch may have been taken; check, then send with "
                         "--resend-unknown"),
    }.get(status, "")
    return f"{provider}: {exc.reason} ({exc.detail}); {then}".rstrip("; ")


def send_in_parts(
    batch: Sequence[Outgoing],
    split: Callable[[list[Outgoing]], list[list[Outgoing]]],
    send_part: Callable[[list[Outgoing]], list[Result]],
) -> list[Result]:
    """One request per part of each language group; results back in batch order."""
    by_id: dict[int, Result] = {}
    for group in by_language(batch):
        for part in split(group):
            for result in send_part(part):
                by_id[result.id] = result
    return [by_id[item.id] for item in batch]


def templated(rendered: RenderedLanguage, tag: Callable[[str, str], str]) -> tuple[str, str]:
    """The HTML and text parts with each slot replaced by the provider's placeholder.

    ``tag(slot, part)`` gives the placeholder, part being "html" or "text": the HTML
    placeholders take values escaped for HTML, the text ones plain values.
    """
    html = rendered.html.fill({slot: tag(slot, "html") for slot in SLOTS})
    text = rendered.text.fill({slot: tag(slot, "text") for slot in SLOTS})
    return html, text


def clip_name(name: str, limit: int | None) -> str:
    """A display name cut to ``limit`` characters (None: no limit)."""
    # A provider that refuses one over-long name refuses the whole request with it: the
    # display name is a courtesy, so clip it. Addresses are never clipped.
    return name if limit is None or len(name) <= limit else name[:limit].rstrip()


def sender(mail_from: str, max_name: int | None = None) -> dict[str, str]:
    """The From mailbox as the APIs want it."""
    name, address = parseaddr(mail_from)
    name = clip_name(name, max_name)
    return {"email": address, "name": name} if name else {"email": address}


def recipient(item: Outgoing, max_name: int | None = None) -> dict[str, str]:
    """One recipient, name included when known (header-safe, clipped to ``max_name``)."""
    if item.test_copy:  # to the tester: the reader it is rendered as is not named
        return {"email": item.envelope_to}
    name = clip_name(header_safe(item.message.display_name), max_name)
    return {"email": item.envelope_to, "name": name} if name else {"email": item.envelope_to}


def unsubscribe_header(url: str, mailto: str) -> str:
    """The RFC 8058 List-Unsubscribe value."""
    return f"<{header_safe(url)}>, <{mailto}>"
