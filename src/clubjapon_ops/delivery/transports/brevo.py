"""Brevo's transactional API: POST /v3/smtp/email with messageVersions, idempotent batches.

One request per language of the batch: the content is sent once with Brevo placeholders
(``{{ params.x }}``) and each version carries its reader's values. Every request carries an
idempotency key derived from the batch's key, so sending the same batch again after a
timeout or a crash is answered ``duplicate_parameter`` and sends nothing twice.

Brevo documents the key (developers.brevo.com/docs/heterogenous-versions-batch-emails) as a
member of the body's ``headers`` object, not an HTTP header: ``"headers": {"idempotencyKey":
"..."}``; "The idempotencyKey must be a UUID"; "The TTL for idempotencyKey is 30 minutes"
(its changelog said 15; see IDEMPOTENCY_VALIDITY in delivery/sender.py); a key reused within
the TTL is answered ``duplicate_parameter`` and the request is not processed.
"""

from __future__ import annotations

import json
import uuid
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

PROVIDER = "Brevo"
MAX_VERSIONS = 1000
MAX_PARAMS_BYTES = 900 * 1024  # Brevo allows 1,000 KB of params in all; keep a margin
PATH = "/v3/smtp/email"
# messageVersions[].to[].name: "Name of the recipient. Maximum allowed characters are 70."
# (getbrevo/brevo-python@c280e37, docs/SendSmtpEmailTo1.md; sender.name the same in
# docs/SendSmtpEmailSender.md); one longer name and Brevo answers 400 invalid_parameter for
# the whole request.
MAX_NAME = 70
ACCEPTED = 201  # Brevo's success answer to an immediate send (202 is for scheduledAt, unused)


def _tag(slot: str, part: str) -> str:
    return "{{ params.%s }}" % (f"{slot}_html" if part == "html" else slot)


class BrevoTransport(ApiTransport):
    """Batches of up to 1,000 message versions per call, each call idempotent."""

    name = "brevo"
    batch_size = MAX_VERSIONS
    idempotent = True
    max_name = MAX_NAME

    def send(self, batch: Sequence[Outgoing], idempotency_key: str | None = None,
             then: Outgoing | None = None) -> list[Result]:
        """Send each language group in as few requests as allowed; one result per message."""

        def send_part(part: list[Outgoing]) -> list[Result]:
            key = None
            if idempotency_key:
                # Stable per (batch, language, part): the same batch resent gets the same keys.
                # A part is named by its first row, not its position: when only a failed part
                # is resent, it must not take the key of a part that went out.
                key = str(uuid.uuid5(uuid.UUID(idempotency_key),
                                     f"{part[0].message.lang}:{part[0].id}"))
            return self._send_group(part, key)

        return send_in_parts(batch, self._split, send_part)

    def _split(self, group: list[Outgoing]) -> list[list[Outgoing]]:
        parts: list[list[Outgoing]] = [[]]
        size = 0
        for item in group:
            params = len(json.dumps(self._params(item)))
            if parts[-1] and (len(parts[-1]) >= MAX_VERSIONS or size + params > MAX_PARAMS_BYTES):
                parts.append([])
                size = 0
            parts[-1].append(item)
            size += params
        return parts

    @staticmethod
    def _params(item: Outgoing) -> dict[str, str]:
        message = item.message
        values = {k: v for k, v in message.plain_values.items()}
        values.update({f"{k}_html": v for k, v in message.html_values.items()})
        return values

    def _payload(self, group: list[Outgoing], key: str | None) -> dict[str, Any]:
        first = group[0]
        html, text = templated(first.message.rendered, _tag)
        headers = {
            "List-Unsubscribe": unsubscribe_header("{{ params.unsubscribe_url }}",
                                                   self.unsubscribe_mailto),
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            **self.list_headers,
        }
        if key:
            headers["idempotencyKey"] = key
        return {
            "sender": self.sender,
            "subject": first.subject_prefix + first.message.subject,
            "htmlContent": html,
            "textContent": text,
            "headers": headers,
            "tags": [first.edition],
            "messageVersions": [
                {"to": [recipient(item, self.max_name)], "params": self._params(item)}
                for item in group
            ],
        }

    def _send_group(self, group: list[Outgoing], key: str | None) -> list[Result]:
        try:
            return self.client.call(
                "POST", PATH, lambda _doc: [], body=self._payload(group, key),
                decode=lambda response: self._decode(response, group, keyed=key is not None),
                resend_safe=key is not None,
            )
        except UncertainError as exc:
            return [Result(i.id, Status.UNKNOWN, error=str(exc), cause=exc.cause)
                    for i in group]
        except GaveUp as exc:
            # A 429 to the end (or no connection at all): Brevo took nothing, the batch goes
            # again under a new key. A 5xx, a timeout or a lost connection may have been
            # taken: again under this key while it lasts, else the operator decides.
            if not exc.maybe_taken:
                status = Status.REFUSED
            else:
                status = Status.RETRY if key else Status.UNKNOWN
            error = gave_up(PROVIDER, exc, status, keyed=key is not None)
            return [Result(i.id, status, error=error, cause=exc.cause) for i in group]
        except SourceError as exc:
            status = Status.RETRY if key else Status.UNKNOWN
            return [Result(i.id, status, error=str(exc)) for i in group]

    @staticmethod
    def _decode(response: requests.Response, group: list[Outgoing], *,
                keyed: bool) -> list[Result]:
        try:
            document = response.json()
        except ValueError:
            document = None
        status = response.status_code
        if status >= 400:
            code = document.get("code") if isinstance(document, dict) else None
            message = document.get("message") if isinstance(document, dict) else None
            if code == "duplicate_parameter" and keyed:
                # "If you submit a request with an idempotencyKey that was used within the last
                # 30 minutes, the API returns a duplicate_parameter error and does not process
                # the request" (developers.brevo.com/docs/heterogenous-versions-batch-emails):
                # Brevo took the batch the first time. Without a key the code means something
                # else, and is a refusal like any other.
                return [Result(i.id, Status.QUEUED, error="accepted earlier (same idempotency key)")
                        for i in group]
            error = f"Brevo HTTP {status}: {code or ''} {str(message or '')[:200]}".strip()
            # The whole request refused (400 invalid_parameter, 422 ...): Brevo took none of
            # it, so the rows try again later, under a new key, with the answer recorded.
            return [Result(i.id, Status.REFUSED, error=error, cause=str(status)) for i in group]
        if status != ACCEPTED:
            # Not an answer Brevo documents for this call: whether it sent is unknown.
            return [Result(i.id, Status.UNKNOWN, error=f"Brevo HTTP {status}: unexpected answer",
                           cause=str(status)) for i in group]
        return _accepted(document, group)


def _accepted(document: Any, group: list[Outgoing]) -> list[Result]:
    """Results of a 201: every version was taken; ids attached where the answer gives them.

    Brevo's answer (CreateSmtpEmail, getbrevo/brevo-python@c280e37 docs/CreateSmtpEmail.md)
    has ``messageId`` ("Message ID of the transactional email sent") and ``messageIds`` (a
    list). The reference's 201 example is ``{"messageId": "<201798300811.5787683@relay.
    domain.com>"}`` alone, also for a request with several messageVersions: the 201 itself
    says the request was taken (an invalid request is refused whole with a 4xx), so the ids
    only label the rows, and a row without one is queued all the same.
    """
    ids: list[Any] = []
    shared: str | None = None
    if isinstance(document, dict):
        if isinstance(document.get("messageIds"), list):
            ids = document["messageIds"]
        if isinstance(document.get("messageId"), str) and not ids:
            # The request's one id. Events are matched among the recipient's own rows, so
            # giving it to every row of the request cannot put an event on someone else's.
            shared = document["messageId"]
    results = []
    for n, item in enumerate(group):
        entry = ids[n] if n < len(ids) else shared
        if isinstance(entry, dict) and entry.get("error"):
            # Not in Brevo's schema, but an explicit refusal of one version is honoured.
            results.append(Result(item.id, Status.REJECTED, error=str(entry["error"])[:200]))
        else:
            provider_id = entry if isinstance(entry, str) else None
            results.append(Result(item.id, Status.QUEUED, provider_id=provider_id))
    return results
