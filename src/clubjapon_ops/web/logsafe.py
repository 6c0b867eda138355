"""Keep tokens and secrets that travel in URL paths out of the logs.

An unsubscribe link carries a token that unsubscribes its owner; Brevo's webhook URL carries
the webhook secret. Flask logs the path of a request that fails, waitress of one that breaks
the connection: both go through :class:`PathRedactFilter`.
"""

from __future__ import annotations

import logging
import re

REDACTED = "[redacted]"
# The path segment after these prefixes is a token or a secret.
# A click link (/r/) names a ledger row when the reader agreed to be measured.
_SECRET_PATH = re.compile(r"(/unsubscribe/|/events/brevo/|/r/)[^\s?#\"'\]\[]+")


def redact_paths(text: str) -> str:
    """Return ``text`` with the token of every /unsubscribe/, /events/brevo/ and /r/ path
    hidden."""
    return _SECRET_PATH.sub(rf"\g<1>{REDACTED}", text)


class PathRedactFilter(logging.Filter):
    """Redact token paths in a record's message (the path is in its arguments or its text)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_paths(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


_FILTER = PathRedactFilter()


def redact_logger(name: str) -> None:
    """Install the filter on one logger (once: the filter is shared)."""
    logging.getLogger(name).addFilter(_FILTER)
