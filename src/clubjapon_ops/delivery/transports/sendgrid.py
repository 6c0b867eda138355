"""SendGrid's v3 Mail Send: POST /v3/mail/send with up to 1,000 personalizations.

The content goes once per language with substitution tags; each personalization carries its
reader's values and headers (List-Unsubscribe). SendGrid takes no idempotency key: a timeout
after the request left makes the batch 'unknown', never a silent resend.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import requests

from clubjapon_ops.delivery.transports.api import (
    ApiTransport,
    gave_up,
    recipient,
    send_in_parts,
    templated,
    unsubscribe_header,
)
from clubjapon_ops.delivery.transports.base import Outgoing, Result, Status
from clubjapon_ops.errors import SourceError
from clubjapon_ops.http.client import GaveUp, UncertainError

PROVIDER = "SendGrid"
MAX_PERSONALIZATIONS = 1000
PATH = "/v3/mail/send"


def _tag(slot: str, part: str) -> str:
    return f"-{slot}_{part}-"


NO_TRACKING = {"click_tracking": {"enable": False, "enable_text": False},
               "open_tracking": {"enable": False}}


class SendGridTransport(ApiTransport):
    """Batches of up to 1,000 personalizations per call."""

    name = "sendgrid"
    batch_size = MAX_PERSONALIZATIONS
    idempotent = False
    def send(self, batch: Sequence[Outgoing], idempotency_key: str | None = None,
             then: Outgoing | None = None) -> list[Result]:
        """Send each language group in requests of up to 1,000; one result per message."""
        return send_in_parts(
            batch,
            lambda group: [group[i:i + MAX_PERSONALIZATIONS]
                           for i in range(0, len(group), MAX_PERSONALIZATIONS)],
            self._send_group,
        )

    def _payload(self, group: list[Outgoing]) -> dict[str, Any]:
        first = group[0]
        html, text = templated(first.message.rendered, _tag)
        personalizations = []
        for item in group:
            message = item.message
            substitutions = {_tag(k, "text"): v for k, v in message.plain_values.items()}
            substitutions.update({_tag(k, "html"): v for k, v in message.html_values.items()})
            personalizations.append({
                # No length limit is documented for to[].name (sendgrid/sendgrid-oai@bef1536,
                # spec/components/schemas.json#/to_email_array): sent whole.
                "to": [recipient(item)],
                "substitutions": substitutions,
                "headers": {
                    "List-Unsubscribe": unsubscribe_header(message.unsubscribe_url,
                                                           self.unsubscribe_mailto),
                    "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
                },
                "custom_args": {"delivery_id": str(item.id), "edition": item.edition},
            })
        return {
            "personalizations": personalizations,
            "from": self.sender,
            "subject": first.subject_prefix + first.message.subject,
            "content": [{"type": "text/plain", "value": text},
                        {"type": "text/html", "value": html}],
            "categories": [first.edition],
            # No open pixel, no link of SendGrid's over ours: clicks are counted at
            # CLUBJAPON_PUBLIC_URL/r/, per reader only for those who agreed (issue 25).
            "tracking_settings": NO_TRACKING,
            "headers": self.list_headers,  # the same for every personalization
        }

    def _send_group(self, group: list[Outgoing]) -> list[Result]:
        try:
            return self.client.call(
                "POST", PATH, lambda _doc: [], body=self._payload(group),
                decode=lambda response: self._decode(response, group), resend_safe=False,
            )
        except UncertainError as exc:
            return [Result(i.id, Status.UNKNOWN, error=str(exc), cause=exc.cause)
                    for i in group]
        except GaveUp as exc:
            # 5xx and 429 retried to the end without success: SendGrid did not take them (the
            # call retried its 5xx already, without a key: the same bet). A 429 is a refusal.
            status = Status.RETRY if exc.maybe_taken else Status.REFUSED
            error = gave_up(PROVIDER, exc, status, keyed=False)
            return [Result(i.id, status, error=error, cause=exc.cause) for i in group]
        except SourceError as exc:
            return [Result(i.id, Status.RETRY, error=str(exc)) for i in group]

    @staticmethod
    def _decode(response: requests.Response, group: list[Outgoing]) -> list[Result]:
        status = response.status_code
        if status in (200, 202):
            message_id = response.headers.get("X-Message-Id")
            return [Result(i.id, Status.QUEUED, provider_id=message_id) for i in group]
        try:
            document = response.json()
        except ValueError:
            document = None
        errors = document.get("errors") if isinstance(document, dict) else None
        text = "; ".join(
            str(e.get("message", ""))[:120] for e in errors or [] if isinstance(e, dict))
        # The whole request refused (400, 413, 422 ...): nothing was taken; the rows try again
        # later with the answer recorded.
        return [Result(i.id, Status.REFUSED, error=f"SendGrid HTTP {status}: {text}".strip(),
                       cause=str(status)) for i in group]
