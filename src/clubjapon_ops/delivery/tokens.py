"""Unsubscribe tokens: a ledger row and the page's language, signed with HMAC-SHA256.

A token names no one in words: ``<lang>-<row id in base32>-<signature>``. Whoever sees a link
(a proxy's log, a link scanner, a forwarded message) learns nothing about its reader; only the
database, given the row, knows the address. A test copy's token names only its language:
``<lang>-<signature>``. Each kind is signed for its own purpose (domain separation): no one can
turn a real token into a test one or back without the key, and a test token never unsubscribes
anyone.

Links sent before (``base64url(edition, address, language).signature``) keep working: they are
read, never made, except by :meth:`TokenSigner.make_legacy` for the tests that prove it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass

from clubjapon_ops.errors import ConfigError
from clubjapon_ops.files import private_folder
from clubjapon_ops.settings import Settings

_SIG_BYTES = 16  # 128 bits: beyond guessing, short enough for a tidy link
# What a signature is for, signed with the payload. Neither is a prefix of the other, so no
# payload makes one purpose's signed bytes equal to the other's.
_REAL = b"unsubscribe\x00"
_TEST_COPY = b"unsubscribe-test-copy\x00"
_VERP = b"verp\x00"
_ROW = b"reader-row\x00"
_TEST_LANG = b"test-copy-language\x00"
# VERP tokens travel in an address's local part, which some servers lower-case: lower-case
# base32 survives that. 13 characters carry 64 bits of signature: beyond guessing.
_B32 = "abcdefghijklmnopqrstuvwxyz234567"
_VERP_SIG_CHARS = 13


@dataclass(frozen=True)
class TokenData:
    """What a valid token names: a ledger row (``row``), or in a link sent before opaque
    tokens, the edition and the address themselves (then ``row`` is None)."""

    edition: str  # "" when the token names a row: the row knows its edition
    email: str  # "" when the token names a row (or is a test copy's)
    lang: str
    test: bool = False  # a test copy's link: it answers, and changes nothing
    row: int | None = None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def key_bytes(key: str) -> bytes:
    """The signing key as bytes; ConfigError when it is too short to trust."""
    if len(key) < 16:
        raise ConfigError("CLUBJAPON_SECRET is too short: use at least 16 random characters")
    return key.encode("utf-8")


class TokenSigner:
    """Makes and checks tokens with one key."""

    def __init__(self, key: str) -> None:
        self._key = key_bytes(key)

    def _sign(self, purpose: bytes, payload: bytes) -> bytes:
        mac = hmac.new(self._key, purpose + payload, hashlib.sha256)
        return mac.digest()[:_SIG_BYTES]

    def for_row(self, row: int, lang: str) -> str:
        """The token for ledger row ``row``, whose page speaks ``lang``."""
        if row < 0:
            raise ValueError("a ledger row id is never negative")
        _check_lang(lang)
        return f"{lang}-{b32_number(row)}-{self._b32_sign(_ROW, _row_payload(row, lang))}"

    def for_test_copy(self, lang: str) -> str:
        """The token of a test copy's link: its language, and nobody."""
        _check_lang(lang)
        return f"{lang}-{self._b32_sign(_TEST_LANG, lang.encode())}"

    def make_legacy(self, edition: str, email: str, lang: str, *, test: bool = False) -> str:
        """A token as links sent before opaque tokens carry it (address inside): only for
        proving that such links keep working. Nothing sent today uses it."""
        payload = f"{edition}\n{email}\n{lang}".encode()
        purpose = _TEST_COPY if test else _REAL
        return f"{_b64(payload)}.{_b64(self._sign(purpose, payload))}"

    def _b32_sign(self, purpose: bytes, payload: bytes) -> str:
        return base64.b32encode(self._sign(purpose, payload)).decode("ascii").rstrip(
            "=").lower()

    def read(self, token: str) -> TokenData | None:
        """Return what the token names, or None when it is malformed or forged."""
        if "." in token:
            return self._read_legacy(token)
        parts = token.lower().split("-")
        if len(parts) == 2:
            lang, sig = parts
            if _LANG.fullmatch(lang) and _same(sig, self._b32_sign(_TEST_LANG, lang.encode())):
                return TokenData("", "", lang, test=True)
            return None
        if len(parts) != 3:
            return None
        lang, body, sig = parts
        row = read_b32_number(body)
        if row is None or not _LANG.fullmatch(lang):
            return None
        if not _same(sig, self._b32_sign(_ROW, _row_payload(row, lang))):
            return None
        return TokenData("", "", lang, row=row)

    def _read_legacy(self, token: str) -> TokenData | None:
        try:
            body, sig = token.split(".", 1)
            payload = _unb64(body)
            given = _unb64(sig)
        except (ValueError, TypeError):
            return None
        # Both checks always run, so the time taken does not tell which purpose was close.
        real = hmac.compare_digest(given, self._sign(_REAL, payload))
        test = hmac.compare_digest(given, self._sign(_TEST_COPY, payload))
        if not (real or test):
            return None
        try:
            edition, email, lang = payload.decode("utf-8").split("\n")
        except (UnicodeDecodeError, ValueError):
            return None
        return TokenData(edition, email, lang, test=test)


_LANG = re.compile(r"[a-z]{2,3}")


def _row_payload(row: int, lang: str) -> bytes:
    return f"{row}\n{lang}".encode("ascii")


def _check_lang(lang: str) -> None:
    if not _LANG.fullmatch(lang):
        raise ValueError(f"not a language code: {lang!r}")


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("ascii", "replace"), expected.encode("ascii"))


def read_b32_number(body: str) -> int | None:
    """The number a lower-case base32 body names, or None (at most 13 digits: 64 bits)."""
    if not body or len(body) > 13 or any(c not in _B32 for c in body):
        return None
    number = 0
    for char in body:
        number = number * 32 + _B32.index(char)
    return number


def b32_number(number: int) -> str:
    """A non-negative number in lower-case base32 digits, as tokens carry row numbers."""
    digits = ""
    while True:
        number, rest = divmod(number, 32)
        digits = _B32[rest] + digits
        if not number:
            return digits


class VerpSigner:
    """Makes and checks the token of a return path: a ledger row id and its signature.

    The token is ``<row id in base32>-<signature>``, lower case; it is read back whatever
    the case a server gave it.
    """

    def __init__(self, key: str) -> None:
        self._key = key_bytes(key)

    def _sign(self, row: int) -> str:
        mac = hmac.new(self._key, _VERP + str(row).encode("ascii"), hashlib.sha256).digest()
        return base64.b32encode(mac).decode("ascii").lower()[:_VERP_SIG_CHARS]

    def make(self, row: int) -> str:
        """The token naming ledger row ``row``."""
        if row < 0:
            raise ValueError("a ledger row id is never negative")
        return f"{b32_number(row)}-{self._sign(row)}"

    def read(self, token: str) -> int | None:
        """The row id a token names, or None when it is malformed or forged.

        What follows the signature after a further '-' (the recipient, in the return paths
        made since issue 23) is not signed and not read: the signed row names the reader.
        """
        body, dash, rest = token.strip().lower().partition("-")
        sig = rest.partition("-")[0]
        row = read_b32_number(body) if dash else None
        if row is None:
            return None
        return row if _same(sig, self._sign(row)) else None


# RFC 5321 §4.5.3.1.1: a local part is at most 64 octets; some servers refuse a longer one.
MAX_LOCAL_PART = 64
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_DOT_ATOM = re.compile(rf"^{_ATOM}(?:\.{_ATOM})*$")
_DOMAIN = re.compile(r"^[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+$")


# What separates the bounce mailbox's name from the rest of a VERP address: '+' (plus
# addressing, which most mailboxes take) or '-' (Postfix recipient_delimiter = +-, qmail,
# a catch-all bounce domain), which rspamd reads as VERP where it strips a '+' first.
VERP_DELIMITERS = ("+", "-")


def verp_address(base: str, token: str, recipient: str | None = None,
                 delimiter: str = "+") -> str:
    """The return path of one message for the bounce address ``local@domain``.

    With the recipient, the classic VERP shape ``local+token-rlocal=rdomain@domain``: spam
    filters that read it take it for the bounce address of a list, not a forged sender.
    rspamd 3.4 reads it only with ``delimiter`` '-' (``local-token-rlocal=rdomain``): it
    strips what follows '+' first, and then the list headers are what spare our mail its
    FORGED_SENDER (docs/ops.md). Only the token, which names the ledger row, is signed.
    Without the recipient, or when that would not fit in 64 octets or the recipient's
    address is not a plain dot-atom, ``local+token@domain``.
    """
    local, _, domain = base.rpartition("@")
    if recipient:
        r_local, at, r_domain = recipient.strip().lower().rpartition("@")
        verp = f"{local}{delimiter}{token}-{r_local}={r_domain}"
        if (at and _DOT_ATOM.match(r_local) and _DOMAIN.match(r_domain)
                and len(verp.encode("utf-8")) <= MAX_LOCAL_PART):
            return f"{verp}@{domain}"
    return f"{local}{delimiter}{token}@{domain}"


def verp_token(address: str, base: str) -> str | None:
    """The token in ``address`` when it is ``base`` with +token or -token, whatever the case.

    Both delimiters are read whatever CLUBJAPON_BOUNCE_VERP_DELIMITER says now, so that the
    bounces of messages sent before it changed still name their rows.
    """
    local, _, domain = base.lower().rpartition("@")
    got_local, at, got_domain = address.strip().strip("<>").lower().rpartition("@")
    if not at or got_domain != domain or not got_local.startswith(local):
        return None
    rest = got_local[len(local):]
    if rest[:1] not in VERP_DELIMITERS:
        return None
    return rest[1:] or None


def signing_key(settings: Settings) -> str:
    """CLUBJAPON_SECRET, or for the local outbox a key generated once under var/."""
    if settings.secret:
        return settings.secret
    # Only messages that stay on this machine may be signed with a key nobody chose.
    if settings.leaves_this_machine:
        raise ConfigError(
            "CLUBJAPON_SECRET is not set: unsubscribe links cannot be signed "
            "(set it in .env to a long random string)"
        )
    path = settings.root / "var" / "secret.key"
    if path.is_file():
        return path.read_text(encoding="ascii").strip()
    private_folder(path.parent)
    key = secrets.token_urlsafe(32)
    # Created owner-only before the key is written, so it is never readable by others.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(key)
    return key


def unsubscribe_url(settings: Settings, signer: TokenSigner, row: int | None, lang: str, *,
                    test: bool = False) -> str:
    """The https link of ledger row ``row`` (of a test copy: test, no row):
    CLUBJAPON_PUBLIC_URL/unsubscribe/<token>.

    A message checked before it has a row (the lint before a send) gets row 0's link: the
    same shape and length, and it names no one (ledger ids start at 1).
    """
    token = signer.for_test_copy(lang) if test else signer.for_row(row or 0, lang)
    return f"{settings.public_url}/unsubscribe/{token}"
