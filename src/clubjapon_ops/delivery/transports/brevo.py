"""Brevo's transactional API: POST /v3/smtp/email with messageVersions, idempotent batches.

One request per language of the batch: the content is sent once with Brevo placeholders
(``{{ params.x }}``) and each version carries its reader's values. Every request carries an
idempotency key derived from the batch's key, so sending the same batch again after a
timeout or a crash is answered ``duplicate_parameter`` and sends nothing twice.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

import requests

from clubjapon_ops.crm.http import UncertainError
from clubjapon_ops.delivery.transports.api import (
    ApiTransport,
    recipient,
    send_in_parts,
    templated,
    unsubscribe_header,
)
from clubjapon_ops.delivery.transports.base import Outgoing, Result, Status
from clubjapon_ops.errors import SourceError

MAX_VERSIONS = 1000
MAX_PARAMS_BYTES = 900 * 1024  # Brevo allows 1,000 KB of params in all; keep a margin
PATH = "/v3/smtp/email"
# messageVersions[].to[].name: "Name of the recipient. Maximum allowed characters are 70."
# (getbrevo/brevo-python@c280e37, docs/SendSmtpEmailTo1.md); one longer name and Brevo
# answers 400 invalid_parameter for the whole request.
MAX_NAME = 70


def _tag(slot: str, part: str) -> str:
    return "{{ params.%s }}" % (f"{slot}_html" if part == "html" else slot)


class BrevoTransport(ApiTransport):
    """Batches of up to 1,000 message versions per call, each call idempotent."""

    name = "brevo"
    batch_size = MAX_VERSIONS
    idempotent = True
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
                {"to": [recipient(item, MAX_NAME)], "params": self._params(item)} for item in group
            ],
        }

    def _send_group(self, group: list[Outgoing], key: str | None) -> list[Result]:
        try:
            return self.client.call(
                "POST", PATH, lambda _doc: [], body=self._payload(group, key),
                decode=lambda response: self._decode(response, group),
                resend_safe=key is not None,
            )
        except UncertainError as exc:
            return [Result(i.id, Status.UNKNOWN, error=str(exc)) for i in group]
        except SourceError as exc:
            status = Status.RETRY if key else Status.UNKNOWN
            return [Result(i.id, status, error=str(exc)) for i in group]

    @staticmethod
    def _decode(response: requests.Response, group: list[Outgoing]) -> list[Result]:
        try:
            document = response.json()
        except ValueError:
            document = None
        status = response.status_code
        if status >= 400:
            code = document.get("code") if isinstance(document, dict) else None
            message = document.get("message") if isinstance(document, dict) else None
            if code == "duplicate_parameter":
                # This key was used already: Brevo took the batch the first time.
                return [Result(i.id, Status.QUEUED, error="accepted earlier (same idempotency key)")
                        for i in group]
            error = f"Brevo HTTP {status}: {code or ''} {str(message or '')[:200]}".strip()
            return [Result(i.id, Status.REJECTED, error=error) for i in group]
        ids: list[Any] = []
        if isinstance(document, dict):
            if isinstance(document.get("messageIds"), list):
                ids = document["messageIds"]
            elif isinstance(document.get("messageId"), str):
                ids = [document["messageId"]]
        results = []
        for n, item in enumerate(group):
            entry = ids[n] if n < len(ids) else None
            if isinstance(entry, str):
                results.append(Result(item.id, Status.QUEUED, provider_id=entry))
            elif isinstance(entry, dict) and entry.get("error"):
                results.append(Result(item.id, Status.REJECTED, error=str(entry["error"])[:200]))
            else:
                # Accepted as a whole, but no id for this one: it may or may not go out.
                results.append(Result(item.id, Status.UNKNOWN, error="no message id in answer"))
        return results
