"""Build ready-to-send MIME bytes quickly, with headers that no contact field can break.

The standard library's EmailMessage builds about 500 messages a second here; a newsletter
needs only one fixed shape (multipart/alternative, two UTF-8 parts), so it is written
directly: quoted-printable bodies (static segments encoded once per edition), RFC 2047
encoded words for non-ASCII header text, CRLF line ends.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime, parseaddr
from typing import TYPE_CHECKING, NamedTuple, TypedDict, Unpack

from clubjapon_ops.mail_limits import MAX_ENCODED_WORD, MAX_HEADER_LINE
from clubjapon_ops.newsletter.render import Compiled, PersonalMessage, RenderedLanguage
from clubjapon_ops.settings import default_list_id

if TYPE_CHECKING:
    from clubjapon_ops.delivery.dkim import DkimSigner

CRLF = "\r\n"
_WORD_OVERHEAD = len("=?utf-8?b??=")
_ATEXT = re.compile(r"^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~ ]*$")
_BREAKS = re.compile(r"[\r\n\x00]+")


def header_safe(value: str) -> str:
    """Remove CR, LF and NUL: nothing from a contact can start a new header."""
    return _BREAKS.sub(" ", value).strip()


def _word_bytes(used: int) -> int:
    """How many UTF-8 bytes one encoded word may carry after ``used`` characters of its line."""
    fits = min(MAX_HEADER_LINE - used, MAX_ENCODED_WORD)
    return (fits - _WORD_OVERHEAD) // 4 * 3


def _last_line(text: str) -> int:
    return len(text) - text.rfind("\n") - 1


def _fold_ascii(text: str, used: int) -> str:
    """Fold plain text at spaces so that lines stay within MAX_HEADER_LINE where they can."""
    lines = [""]
    room = MAX_HEADER_LINE - used
    for word in text.split(" "):
        line = lines[-1]
        if line and len(line) + 1 + len(word) > room:
            lines.append(word)  # continuation lines start with the folding space
            room = MAX_HEADER_LINE - 1
        else:
            lines[-1] = f"{line} {word}" if line else word
    return (CRLF + " ").join(lines)


def encode_words(text: str, used: int = 0) -> str:
    """Encode text for a header: as is when plain ASCII, else RFC 2047 base64 words.

    ``used`` is how many characters come before it on its line ("Subject: " is 9): the
    first word is sized to fit there, the others to fit a folded line of their own.
    """
    text = header_safe(text)
    if text.isascii():
        return _fold_ascii(text, used)
    words: list[str] = []
    chunk = ""
    size = 0  # UTF-8 bytes in chunk
    room = _word_bytes(used)  # after a prefix longer than 60, at least one character
    for char in text:
        width = len(char.encode("utf-8"))
        if chunk and size + width > room:
            # Cut after the last space when there is one: a word whole in one encoded word
            # reads right even in parsers that show a space between encoded words.
            cut = chunk.rfind(" ") + 1 or len(chunk)
            words.append(chunk[:cut])
            chunk, room = chunk[cut:], _word_bytes(1)
            size = len(chunk.encode("utf-8"))
        chunk += char
        size += width
    words.append(chunk)
    return (CRLF + " ").join(
        f"=?utf-8?b?{base64.b64encode(w.encode('utf-8')).decode('ascii')}?=" for w in words
    )


def format_mailbox(name: str, address: str, used: int = 0) -> str:
    """Return 'Name <address>' with the name quoted or encoded as the header needs.

    ``used`` is how many characters come before it on its line ("To: " is 4); the address
    goes on a folded line of its own when it would make the line longer than 76.
    """
    name, address = header_safe(name), header_safe(address)
    if not name:
        return f"<{address}>"
    if not name.isascii():
        shown = encode_words(name, used)
    elif _ATEXT.match(name):
        shown = _fold_ascii(name, used)
    else:
        quoted = name.replace("\\", "\\\\").replace('"', '\\"')
        shown = f'"{quoted}"'  # a quoted string is not folded: a rare, short name
    last = _last_line(shown) + (used if "\n" not in shown else 0)
    if last + len(address) + 3 > MAX_HEADER_LINE:
        return f"{shown}{CRLF} <{address}>"
    return f"{shown} <{address}>"


# Every newsletter says it is list mail: Exchange and Microsoft 365 send no out-of-office
# or auto-reply to it (X-Auto-Response-Suppress), older autoresponders none either
# (Precedence: bulk), so the bounce mailbox holds bounces, not holiday notices.
AUTO_RESPONSE_HEADERS: tuple[tuple[str, str], ...] = (
    ("X-Auto-Response-Suppress", "OOF, AutoReply"),
    ("Precedence", "bulk"),
)


def list_id_value(mail_from: str, list_id: str | None = None, used: int = 0) -> str:
    """The List-Id value (RFC 2919): the From's display name, then <list_id>.

    ``used`` as in format_mailbox; without a list_id, newsletter.<the From's domain>.
    """
    name = parseaddr(mail_from)[0]
    return format_mailbox(name, list_id or default_list_id(mail_from), used)


def list_headers(mail_from: str, list_id: str | None = None) -> tuple[tuple[str, str], ...]:
    """List-Id and the auto-reply suppressors, unfolded (for the APIs' JSON headers)."""
    value = list_id_value(mail_from, list_id).replace(CRLF, "")
    return (("List-Id", value), *AUTO_RESPONSE_HEADERS)


def message_id(edition: str, email: str, domain: str) -> str:
    """A Message-ID that is the same every time for one (edition, contact)."""
    digest = hashlib.sha256(f"{edition}\x00{email}".encode()).hexdigest()[:24]
    return f"<{edition}.{digest}@{domain}>"


def message_id_of_copy(edition: str, domain: str) -> str:
    """A new Message-ID for each test copy.

    Never the reader's: a copy rendered as a reader must not pass for their message, and
    mail services drop a second message with an ID they have seen (a second test copy).
    """
    return f"<test.{edition}.{uuid.uuid4().hex}@{domain}>"


# RFC 5322: a line is at most 998 octets without its CRLF. 8bit bodies may not hold NUL.
MAX_LINE = 998


def _crlf(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", CRLF)


class _Shape(NamedTuple):
    """What a piece of a body holds at its line boundaries: enough to check the joined
    body (line lengths, lines starting with a dot) without scanning it again."""

    size: int
    first: int  # octets before the first CRLF (all of them when there is none)
    last: int  # octets after the last CRLF
    inner: int  # the longest line strictly between the first and the last
    newline: bool
    dot_inside: bool  # a line starting with "." after a CRLF of this piece
    starts_dot: bool
    nul: bool

    @classmethod
    def of(cls, data: bytes) -> _Shape:
        """Measure a piece."""
        lines = data.split(b"\r\n")
        return cls(len(data), len(lines[0]), len(lines[-1]),
                   max(map(len, lines[1:-1]), default=0), len(lines) > 1,
                   b"\r\n." in data, data[:1] == b".", b"\0" in data)


def _fold(shapes: Iterable[_Shape]) -> tuple[int, bool, bool]:
    """The longest line, whether a line starts with '.', whether NUL occurs, in the join."""
    longest = current = 0
    at_line_start, dot, nul = True, False, False
    for shape in shapes:
        if not shape.size:
            continue
        dot = dot or shape.dot_inside or (at_line_start and shape.starts_dot)
        nul = nul or shape.nul
        if shape.newline:
            longest = max(longest, current + shape.first, shape.inner)
            current = shape.last
        else:
            current += shape.size
        at_line_start = shape.newline and not shape.last
    return max(longest, current), dot, nul


class _EightBitPart:
    """A part as UTF-8 with CRLF line ends, its static segments encoded and measured once."""

    def __init__(self, part: Compiled) -> None:
        self.part = part
        self.statics = [_crlf(s).encode("utf-8") for s in part.statics]
        self.shapes = [_Shape.of(s) for s in self.statics]
        shapes = self.shapes
        # When each region (a name, an address, a link) sits between two statics that end
        # and start lines, its line is: end of the static before + region + start of the
        # static after, and the statics' other lines never change. Measured once here.
        self.fast = all(shape.newline for shape in shapes[1:-1])
        self.lasts = [shape.last for shape in shapes]
        self.firsts = [shape.first for shape in shapes]
        alone = [shape.inner for shape in shapes]
        if len(shapes) == 1:  # no region at all: every line of the one static stands alone
            alone.append(_fold(shapes)[0])
        if shapes[0].newline:
            alone.append(shapes[0].first)
        if len(shapes) > 1 and shapes[-1].newline:
            alone.append(shapes[-1].last)
        self.static_longest = max(alone)
        self.static_dot = any(shape.dot_inside for shape in shapes) or shapes[0].starts_dot
        self.static_nul = any(shape.nul for shape in shapes)

    def encode(self, values: Mapping[str, str]) -> tuple[list[bytes], bool, bool]:
        """The body in pieces, whether it may travel as 8bit, whether a line starts with '.'."""
        regions = [values[slot].encode("utf-8") for slot in self.part.slots]
        out = [self.statics[0]]
        for region, static in zip(regions, self.statics[1:], strict=True):
            out += (region, static)
        if not self.fast:
            return self._measured(values)
        longest, dot, nul = self.static_longest, self.static_dot, self.static_nul
        lasts, firsts = self.lasts, self.firsts
        for i, region in enumerate(regions):
            if not region or b"\n" in region or b"\r" in region:
                return self._measured(values)
            longest = max(longest, lasts[i] + len(region) + firsts[i + 1])
            dot = dot or (not lasts[i] and region[:1] == b".")
            nul = nul or b"\0" in region
        return out, longest <= MAX_LINE and not nul, dot

    def _measured(self, values: Mapping[str, str]) -> tuple[list[bytes], bool, bool]:
        """The general case (a value on several lines, an empty one): fold every piece."""
        out, shapes = [self.statics[0]], [self.shapes[0]]
        for slot, static, shape in zip(self.part.slots, self.statics[1:], self.shapes[1:],
                                       strict=True):
            region = _crlf(values[slot]).encode("utf-8")
            out += (region, static)
            shapes += (_Shape.of(region), shape)
        longest, dot, nul = _fold(shapes)
        return out, longest <= MAX_LINE and not nul, dot


_SOFT_BREAK = b"=\r\n"


def quoted_printable(data: bytes) -> bytes:
    """Quoted-printable (RFC 2045) with CRLF line ends and lines of at most 76 characters.

    A piece that does not end with a line end gets a soft line break: pieces encoded apart
    (a static segment once per edition, a reader's name per message) then join into one
    valid body, each starting a line, and the join decodes to the joined text.
    """
    if not data:
        return b""
    out = binascii.b2a_qp(data, istext=True)
    if b"\r\n" not in out:
        # A piece without a line end: b2a_qp folded it with bare LFs.
        out = out.replace(b"\n", b"\r\n")
    if not out.endswith(b"\r\n"):
        start = out.rfind(b"\n") + 1
        if len(out) - start > 75:
            # b2a_qp ends a piece with a line of up to 76: the soft break needs a column of
            # its own, so the line is cut before it, never inside an =XX escape.
            cut = start + 75
            escape = out.rfind(b"=", cut - 2, cut)
            cut = escape if escape >= 0 else cut
            out = out[:cut] + _SOFT_BREAK + out[cut:]
        out += _SOFT_BREAK
    if out[:1] == b"." or b"\r\n." in out:
        out = _no_leading_dot(out)
    return out


def _no_leading_dot(encoded: bytes) -> bytes:
    """Quoted-printable lines with a leading '.' written =2E (re-folded within 76).

    SMTP would need the whole message dot-stuffed, a copy of it per send; a soft line break
    puts a '.' at the start of a line often enough that every message would need it.
    """
    fixed = []
    for line in encoded.split(b"\r\n"):
        while line[:1] == b".":
            line = b"=2E" + line[1:]
            if len(line) <= 76:
                break
            # A line ending with '=' ends with a soft line break ('=XX' ends in hex).
            body, soft = (line[:-1], b"=") if line.endswith(b"=") else (line, b"")
            cut = 75
            escape = body.rfind(b"=", cut - 2, cut)
            cut = escape if escape >= 0 else cut
            fixed.append(body[:cut] + b"=")
            line = body[cut:] + soft
        fixed.append(line)
    return b"\r\n".join(fixed)


# A region that quoted-printable leaves as it is: printable ASCII but '=', not starting with
# '.', short enough for one line with its soft break (a name, an address, a link).
_PLAIN = re.compile(rb"[ -<>-~]{1,75}")


class _QuotedPrintablePart:
    """A part in quoted-printable, its static segments encoded once: 7-bit, readable, and
    what a signing relay and every later hop pass on unchanged. No line starts with '.'."""

    def __init__(self, part: Compiled) -> None:
        self.part = part
        self.statics = [quoted_printable(_crlf(s).encode("utf-8")) for s in part.statics]

    def encode(self, values: Mapping[str, str]) -> list[bytes]:
        """The body in pieces."""
        out = [self.statics[0]]
        plain = _PLAIN.fullmatch
        for slot, static in zip(self.part.slots, self.statics[1:], strict=True):
            value = values[slot]
            data = value.encode("utf-8")
            if plain(data) and data[:1] != b".":
                out += (data + _SOFT_BREAK, static)  # most values: nothing to encode
            else:
                out += (quoted_printable(_crlf(value).encode("utf-8")), static)
        return out


@dataclass(frozen=True)
class Mime:
    """A built message, and whether SMTP must dot-stuff it (a line starts with '.')."""

    data: bytes
    dot_lines: bool


class _Options(TypedDict, total=False):
    date: datetime | None
    subject_prefix: str
    to_address: str | None
    extra_headers: Iterable[tuple[str, str]]
    eight_bit: bool
    test_copy: bool


class MimeBuilder:
    """Turns personal messages into multipart/alternative bytes for one sender."""

    def __init__(self, mail_from: str, *, unsubscribe_mailto: str | None = None,
                 signer: DkimSigner | None = None, list_id: str | None = None) -> None:
        name, address = parseaddr(mail_from)
        self.signer = signer  # signs each built message (DKIM) when set
        self.from_address = address
        self.domain = address.rsplit("@", 1)[-1]
        self.from_header = format_mailbox(name, address, len("From: "))
        self.unsubscribe_mailto = unsubscribe_mailto or f"mailto:{address}?subject=unsubscribe"
        self.list_id = list_id or default_list_id(mail_from)
        # The same for every message of the builder: folded once.
        self.list_lines = [
            f"List-Id: {list_id_value(mail_from, self.list_id, len('List-Id: '))}",
            *(f"{k}: {v}" for k, v in AUTO_RESPONSE_HEADERS),
        ]
        # One boundary per builder: '=_' cannot occur in quoted-printable bodies ('=' starts
        # a hex pair or a soft line break), nor in 8bit ones short of guessing the uuid.
        self.boundary = f"=_cj_{uuid.uuid4().hex}"
        self._subjects: dict[str, str] = {}
        self._qp: dict[int, tuple[_QuotedPrintablePart, _QuotedPrintablePart]] = {}
        self._8bit: dict[int, tuple[_EightBitPart, _EightBitPart]] = {}
        self._date: tuple[int, str] = (-1, "")

    def _quoted_printable(self, rendered: RenderedLanguage) -> tuple[
            _QuotedPrintablePart, _QuotedPrintablePart]:
        # Keyed by identity: a re-rendered edition (preview reload) gets a fresh encoding.
        cached = self._qp.get(id(rendered))
        if cached is None or cached[0].part is not rendered.text or (
                cached[1].part is not rendered.html):
            cached = self._qp[id(rendered)] = (
                _QuotedPrintablePart(rendered.text), _QuotedPrintablePart(rendered.html))
        return cached

    def _list_unsubscribe(self, url: str) -> str:
        """The List-Unsubscribe header, folded after the comma when one line is too long."""
        line = f"List-Unsubscribe: <{url}>, <{self.unsubscribe_mailto}>"
        if len(line) <= MAX_HEADER_LINE:
            return line
        return f"List-Unsubscribe: <{url}>,{CRLF} <{self.unsubscribe_mailto}>"

    def _now(self) -> str:
        """The Date value for now, formatted once a second (lanes share it)."""
        second = int(time.time())
        cached = self._date
        if cached[0] != second:
            cached = self._date = (second, format_datetime(
                datetime.fromtimestamp(second, UTC)))
        return cached[1]

    def _eight_bit(self, rendered: RenderedLanguage) -> tuple[_EightBitPart, _EightBitPart]:
        cached = self._8bit.get(id(rendered))
        if cached is None or cached[0].part is not rendered.text or (
                cached[1].part is not rendered.html):
            cached = self._8bit[id(rendered)] = (
                _EightBitPart(rendered.text), _EightBitPart(rendered.html))
        return cached

    def _bodies(self, msg: PersonalMessage,
                eight_bit: bool) -> tuple[str, list[bytes], list[bytes], bool]:
        """Transfer encoding, text body, HTML body (in pieces), and whether a line starts
        with '.'."""
        if eight_bit:
            text8, html8 = self._eight_bit(msg.rendered)
            text, text_ok, text_dot = text8.encode(msg.plain_values)
            html, html_ok, html_dot = html8.encode(msg.html_values)
            if text_ok and html_ok:
                return "8bit", text, html, text_dot or html_dot
        # text/* parts use CRLF line ends once decoded (RFC 2046): _crlf in the parts.
        text_qp, html_qp = self._quoted_printable(msg.rendered)
        text = text_qp.encode(msg.plain_values)
        html = html_qp.encode(msg.html_values)
        return "quoted-printable", text, html, False  # no line starts with '.'

    def build(self, msg: PersonalMessage, *, edition: str,
              **options: Unpack[_Options]) -> bytes:
        """Return the whole message, headers and both parts, as bytes (see compose)."""
        return self.compose(msg, edition=edition, **options).data

    def compose(
        self,
        msg: PersonalMessage,
        *,
        edition: str,
        date: datetime | None = None,
        subject_prefix: str = "",
        to_address: str | None = None,
        extra_headers: Iterable[tuple[str, str]] = (),
        eight_bit: bool = False,
        test_copy: bool = False,
    ) -> Mime:
        """Build the whole message, headers and both parts, ready for SMTP.

        Bodies are quoted-printable (7-bit clean, any server and any relay after it, and
        readable); with ``eight_bit`` (SMTP_EIGHT_BIT set and a server that offers 8BITMIME)
        they are UTF-8 as they are, unless a line would exceed 998 octets or the message is
        DKIM-signed.
        """
        subject_text = subject_prefix + msg.subject
        subject = self._subjects.get(subject_text)
        if subject is None:
            subject = self._subjects.setdefault(
                subject_text, encode_words(subject_text, len("Subject: ")))
        url = header_safe(msg.unsubscribe_url)
        # A test copy goes to the tester: their address alone, never the reader's name.
        to_name = "" if test_copy else msg.display_name
        headers = [
            f"From: {self.from_header}",
            f"To: {format_mailbox(to_name, to_address or msg.email, len('To: '))}",
            f"Subject: {subject}",
            f"Date: {format_datetime(date) if date else self._now()}",
            "Message-ID: " + (message_id_of_copy(edition, self.domain) if test_copy
                              else message_id(edition, msg.email, self.domain)),
            "MIME-Version: 1.0",
            f"Content-Language: {msg.lang}",
            self._list_unsubscribe(url),
            "List-Unsubscribe-Post: List-Unsubscribe=One-Click",
            *self.list_lines,
            *(f"{header_safe(k)}: {header_safe(v)}" for k, v in extra_headers),
            f'Content-Type: multipart/alternative;{CRLF} boundary="{self.boundary}"',
        ]
        b = self.boundary
        # A signed message goes 7-bit (RFC 6376 §5.3: signers SHOULD convert first): a relay
        # that downgrades an 8bit body to send it on would break the signature, and DMARC;
        # so does an unsigned one unless asked (a relay that signs it has the same problem).
        cte, text, html, dot_lines = self._bodies(msg, eight_bit and self.signer is None)
        head = (
            CRLF.join(headers) + CRLF + CRLF
            + f"--{b}{CRLF}Content-Type: text/plain; charset=utf-8{CRLF}"
            f"Content-Transfer-Encoding: {cte}{CRLF}{CRLF}"
        ).encode("ascii")
        middle = (
            f"{CRLF}--{b}{CRLF}Content-Type: text/html; charset=utf-8{CRLF}"
            f"Content-Transfer-Encoding: {cte}{CRLF}{CRLF}"
        ).encode("ascii")
        # Header lines never start with '.': names are ours, folded lines start with a space.
        data = b"".join([head, *text, middle, *html, f"{CRLF}--{b}--{CRLF}".encode("ascii")])
        if self.signer is not None:
            data = self.signer.sign(data)  # last: the signature covers the final bytes
        return Mime(data, dot_lines)
