"""Build ready-to-send MIME bytes quickly, with headers that no contact field can break.

The standard library's EmailMessage builds about 500 messages a second here; a newsletter
needs only one fixed shape (multipart/alternative, two UTF-8 parts), so it is written
directly: base64 bodies, RFC 2047 encoded words for non-ASCII header text, CRLF line ends.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from email.utils import format_datetime, parseaddr

from clubjapon_ops.newsletter.render import Compiled, PersonalMessage, RenderedLanguage

CRLF = "\r\n"
_MAX_WORD_BYTES = 45  # 45 bytes -> 60 base64 characters -> a 72-character encoded word
_ATEXT = re.compile(r"^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~ ]*$")
_BREAKS = re.compile(r"[\r\n\x00]+")


def header_safe(value: str) -> str:
    """Remove CR, LF and NUL: nothing from a contact can start a new header."""
    return _BREAKS.sub(" ", value).strip()


def encode_words(text: str) -> str:
    """Encode text for a header: as is when plain ASCII, else RFC 2047 base64 words."""
    text = header_safe(text)
    if text.isascii():
        return text
    words: list[str] = []
    chunk = b""
    for char in text:
        encoded = char.encode("utf-8")
        if len(chunk) + len(encoded) > _MAX_WORD_BYTES:
            words.append(chunk.decode("utf-8"))
            chunk = b""
        chunk += encoded
    words.append(chunk.decode("utf-8"))
    return (CRLF + " ").join(
        f"=?utf-8?b?{base64.b64encode(w.encode('utf-8')).decode('ascii')}?=" for w in words
    )


def format_mailbox(name: str, address: str) -> str:
    """Return 'Name <address>' with the name quoted or encoded as the header needs."""
    name, address = header_safe(name), header_safe(address)
    if not name:
        return f"<{address}>"
    if not name.isascii():
        return f"{encode_words(name)} <{address}>"
    if _ATEXT.match(name):
        return f"{name} <{address}>"
    quoted = name.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{quoted}" <{address}>'


def message_id(edition: str, email: str, domain: str) -> str:
    """A Message-ID that is the same every time for one (edition, contact)."""
    digest = hashlib.sha256(f"{edition}\x00{email}".encode()).hexdigest()[:24]
    return f"<{edition}.{digest}@{domain}>"


def base64_lines(data: bytes) -> bytes:
    """Base64 in 76-character lines, each ended by CRLF."""
    raw = binascii.b2a_base64(data, newline=False)
    return b"".join([raw[i : i + 76] + b"\r\n" for i in range(0, len(raw), 76)])


class _EncodedHtml:
    """An aligned HTML part with its static segments base64-encoded once."""

    def __init__(self, part: Compiled) -> None:
        self.part = part
        self.statics = [base64_lines(s.encode("utf-8")) for s in part.statics]

    def encode(self, values: Mapping[str, str]) -> bytes:
        out = [self.statics[0]]
        for i, static in enumerate(self.statics[1:]):
            out.append(base64_lines(self.part.region(i, values).encode("utf-8")))
            out.append(static)
        return b"".join(out)


class MimeBuilder:
    """Turns personal messages into multipart/alternative bytes for one sender."""

    def __init__(self, mail_from: str, *, unsubscribe_mailto: str | None = None) -> None:
        name, address = parseaddr(mail_from)
        self.from_address = address
        self.domain = address.rsplit("@", 1)[-1]
        self.from_header = format_mailbox(name, address)
        self.unsubscribe_mailto = unsubscribe_mailto or f"mailto:{address}?subject=unsubscribe"
        # One boundary per builder: '=_' cannot occur in base64 bodies.
        self.boundary = f"=_cj_{uuid.uuid4().hex}"
        self._subjects: dict[str, str] = {}
        self._html: dict[int, _EncodedHtml] = {}

    def _encoded_html(self, rendered: RenderedLanguage) -> _EncodedHtml:
        # Keyed by identity: a re-rendered edition (preview reload) gets a fresh encoding.
        cached = self._html.get(id(rendered))
        if cached is None or cached.part is not rendered.html:
            cached = self._html[id(rendered)] = _EncodedHtml(rendered.html)
        return cached

    def build(
        self,
        msg: PersonalMessage,
        *,
        edition: str,
        date: datetime | None = None,
        subject_prefix: str = "",
        to_address: str | None = None,
        extra_headers: Iterable[tuple[str, str]] = (),
    ) -> bytes:
        """Return the whole message, headers and both parts, as bytes ready for SMTP."""
        subject_text = subject_prefix + msg.subject
        subject = self._subjects.get(subject_text)
        if subject is None:
            subject = self._subjects.setdefault(subject_text, encode_words(subject_text))
        url = header_safe(msg.unsubscribe_url)
        headers = [
            f"From: {self.from_header}",
            f"To: {format_mailbox(msg.display_name, to_address or msg.email)}",
            f"Subject: {subject}",
            f"Date: {format_datetime(date or datetime.now(UTC))}",
            f"Message-ID: {message_id(edition, msg.email, self.domain)}",
            "MIME-Version: 1.0",
            f"Content-Language: {msg.lang}",
            f"List-Unsubscribe: <{url}>, <{self.unsubscribe_mailto}>",
            "List-Unsubscribe-Post: List-Unsubscribe=One-Click",
            *(f"{header_safe(k)}: {header_safe(v)}" for k, v in extra_headers),
            f'Content-Type: multipart/alternative; boundary="{self.boundary}"',
        ]
        b = self.boundary
        head = (
            CRLF.join(headers) + CRLF + CRLF
            + f"--{b}{CRLF}Content-Type: text/plain; charset=utf-8{CRLF}"
            f"Content-Transfer-Encoding: base64{CRLF}{CRLF}"
        ).encode("ascii")
        middle = (
            f"--{b}{CRLF}Content-Type: text/html; charset=utf-8{CRLF}"
            f"Content-Transfer-Encoding: base64{CRLF}{CRLF}"
        ).encode("ascii")
        html = self._encoded_html(msg.rendered).encode(msg.html_values)
        # text/* parts use CRLF line ends once decoded (RFC 2046).
        text = base64_lines(msg.text.replace("\n", "\r\n").encode("utf-8"))
        return b"".join([head, text, middle, html, f"--{b}--{CRLF}".encode("ascii")])
