"""Logging to stderr: readable on a terminal, JSON lines otherwise; secrets always redacted."""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime, tzinfo

from clubjapon_ops.masking import mask_secrets

REDACTED = "[redacted]"
# Attributes every LogRecord has; anything else was passed with extra= and is kept as a field.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


# A value this long cannot occur by chance inside other text: it is replaced wherever it is.
# A shorter one (an SMTP or database password may be) could be part of ordinary words, so it
# is replaced only where it stands alone, never leaving half a word behind.
_ANYWHERE = 16


def _pattern(secret: str) -> str:
    text = re.escape(secret)
    return text if len(secret) >= _ANYWHERE else rf"(?<!\w){text}(?!\w)"


class RedactFilter(logging.Filter):
    """Replace known secret values wherever they appear in a formatted record."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = sorted({s for s in secrets if s}, key=len, reverse=True)
        # One pass, longest first: what was replaced is never searched again, so a secret
        # inside another, or inside the marker itself, cannot garble the result.
        self._pattern = (re.compile("|".join(_pattern(s) for s in self.secrets))
                         if self.secrets else None)

    def redact(self, text: str) -> str:
        """Return text with every secret replaced, and the secret part of any URL or
        connection string masked (a password this filter was not told of included)."""
        # Most lines hold no secret: a plain search rules them out far faster than the pattern.
        if self._pattern is not None and any(s in text for s in self.secrets):
            text = self._pattern.sub(REDACTED, text)
        return mask_secrets(text)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = self.redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        for key, value in list(vars(record).items()):
            if key not in _STANDARD and isinstance(value, str):
                setattr(record, key, self.redact(value))
        if record.exc_info and not record.exc_text:
            # The traceback too: a driver's exception may carry the URL it was given.
            record.exc_text = self.redact(logging.Formatter().formatException(record.exc_info))
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with the fields passed through ``extra=``."""

    def format(self, record: logging.LogRecord) -> str:
        data = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD:
                data[key] = value
        if record.exc_info:
            data["exc"] = record.exc_text or self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """Short human-readable lines, with extra fields appended as key=value."""

    # The club's zone (CLUBJAPON_TIMEZONE), written after the time, once settings are read;
    # until then the machine's own.
    zone: tzinfo | None = None

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created, self.zone or UTC)
        stamp = (f"{when:%H:%M:%S %Z}" if self.zone is not None
                 else self.formatTime(record, "%H:%M:%S"))
        line = f"{stamp} {record.levelname:<7} {record.getMessage()}"
        extras = [f"{k}={v}" for k, v in vars(record).items() if k not in _STANDARD]
        if extras:
            line += "  " + " ".join(extras)
        if record.exc_info:
            line += "\n" + (record.exc_text or self.formatException(record.exc_info))
        return line


def setup_logging(
    *, json_lines: bool | None = None, level: int = logging.INFO, secrets: Iterable[str] = ()
) -> logging.Handler:
    """Send the project's logs to stderr; JSON lines unless stderr is a terminal."""
    if json_lines is None:
        json_lines = not sys.stderr.isatty()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_lines else TextFormatter())
    handler.addFilter(RedactFilter(secrets))
    root = logging.getLogger("clubjapon_ops")
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False
    return handler
