"""Hide the secret parts of URLs and connection strings, wherever one is printed or logged.

A database password can sit in several places that libpq and SQLAlchemy both read: the
userinfo (``postgresql://user:PASSWORD@host/db``), the query (``?password=``,
``?sslpassword=``, keys percent-encoded or not) and libpq's key=value form
(``host=db password='a b'``). SQLAlchemy's ``hide_password`` covers only the first, so
``config``, the "cannot open database" errors and the logs all go through
:func:`mask_secrets`, and the log filter also learns each value (:func:`url_secrets`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import unquote, unquote_plus

MASK = "***"  # what SQLAlchemy's hide_password writes, so every form reads the same
# Keys whose value is a secret: libpq's two, and what other services name theirs in a URL.
SECRET_KEYS = frozenset({
    "password", "sslpassword", "passwd", "pwd", "pass", "secret", "token", "access_token",
    "api_key", "apikey", "hapikey",
})

# scheme://user:SECRET@ : the secret runs to the last @ of the unbroken text, as a password
# may hold '@', '/' or '?' unencoded; hiding a little too much is better than too little.
_USERINFO = re.compile(
    r"(?<![A-Za-z0-9+.-])(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@?#]*:)(?P<secret>\S*)@")
# A key=value pair: a URL query's (after ? or &) or libpq's (after a space or at the start).
# Only the key is matched, so a value is never skipped over unread: in "x=password=s" the
# password is still found.
_KEY = re.compile(r"(?<![^\s?&;,(='\"])(?P<key>[A-Za-z0-9_%.+-]+)\s*=\s*")
# libpq's value: 'quoted, with \' inside', or up to the next space (a backslash escapes one).
_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'?", re.DOTALL)
_BARE = re.compile(r"(?:\\.|[^\s\\])*")
_QUERY_VALUE = re.compile(r"[^\s&]*")
# Most text holds no secret: ruled out by one search before the real work.
_MAYBE = re.compile(r"://|=", re.ASCII)


_SECRET_ENDINGS = ("password", "passwd", "secret", "token")  # SMTP_PASSWORD=, db_password=


def _is_secret_key(key: str) -> bool:
    name = unquote_plus(key).strip().lower()
    return name in SECRET_KEYS or name.endswith(_SECRET_ENDINGS)


def _secret_spans(text: str) -> Iterator[tuple[int, int]]:
    """Where each secret value of ``text`` starts and ends."""
    for found in _USERINFO.finditer(text):
        yield found.span("secret")
    for found in _KEY.finditer(text):
        if not _is_secret_key(found["key"]):
            continue
        start = found.end()
        before = text[found.start() - 1] if found.start() else ""
        if before in "?&":
            value = _QUERY_VALUE.match(text, start)
        elif text.startswith("'", start):
            value = _QUOTED.match(text, start)
        else:
            value = _BARE.match(text, start)
        if value is not None and value.end() > start:
            yield start, value.end()


def mask_secrets(text: str) -> str:
    """``text`` with the secret part of every URL, query and key=value pair in it masked."""
    if not _MAYBE.search(text):
        return text
    spans = sorted(_secret_spans(text))
    out, at = [], 0
    for start, end in spans:
        if end <= at:
            continue  # inside a secret already masked
        out.append(text[at:max(start, at)])
        out.append(MASK)
        at = end
    out.append(text[at:])
    return "".join(out)


def url_secrets(text: str) -> list[str]:
    """Every secret value in a URL or connection string: as written and decoded, so a log
    filter finds it in either form."""
    found: set[str] = set()
    for start, end in _secret_spans(text):
        raw = text[start:end]
        bare = raw[1:-1] if len(raw) > 1 and raw[0] == raw[-1] == "'" else raw
        found.update({raw, bare, unquote(bare), unquote_plus(bare),
                      re.sub(r"\\(.)", r"\1", bare)})
    found -= {"", MASK}  # nothing to learn from text masked already
    return sorted(found)
