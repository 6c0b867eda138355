"""Unsubscribe tokens: the edition, the address and the language, signed with HMAC-SHA256.

A test copy's token is signed for another purpose (domain separation): no one can turn a real
token into a test one or back without the key, and a test token never unsubscribes anyone.
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
# VERP tokens travel in an address's local part, which some servers lower-case: lower-case
# base32 survives that. 13 characters carry 64 bits of signature: beyond guessing.
_B32 = "abcdefghijklmnopqrstuvwxyz234567"
_VERP_SIG_CHARS = 13


@dataclass(frozen=True)
class TokenData:
    """What a valid token names."""

    edition: str
    email: str
    lang: str
    test: bool = False  # a test copy's link: it answers, and changes nothing


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _key_bytes(key: str) -> bytes:
    """The signing key as bytes; ConfigError when it is too short to trust."""
    if len(key) < 16:
        raise ConfigError("CLUBJAPON_SECRET is too short: use at least 16 random characters")
    return key.encode("utf-8")


class TokenSigner:
    """Makes and checks tokens with one key."""

    def __init__(self, key: str) -> None:
        self._key = _key_bytes(key)

    def _sign(self, purpose: bytes, payload: bytes) -> bytes:
        mac = hmac.new(self._key, purpose + payload, hashlib.sha256)
        return mac.digest()[:_SIG_BYTES]

    def make(self, edition: str, email: str, lang: str, *, test: bool = False) -> str:
        """Return the URL-safe token for one reader of one edition (of a test copy: test)."""
        payload = f"{edition}\n{email}\n{lang}".encode()
        purpose = _TEST_COPY if test else _REAL
        return f"{_b64(payload)}.{_b64(self._sign(purpose, payload))}"

    def read(self, token: str) -> TokenData | None:
        """Return what the token names, or None when it is malformed or forged."""
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


def _b32_int(number: int) -> str:
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
        self._key = _key_bytes(key)

    def _sign(self, row: int) -> str:
        mac = hmac.new(self._key, _VERP + str(row).encode("ascii"), hashlib.sha256).digest()
        return base64.b32encode(mac).decode("ascii").lower()[:_VERP_SIG_CHARS]

    def make(self, row: int) -> str:
        """The token naming ledger row ``row``."""
        if row < 0:
            raise ValueError("a ledger row id is never negative")
        return f"{_b32_int(row)}-{self._sign(row)}"

    def read(self, token: str) -> int | None:
        """The row id a token names, or None when it is malformed or forged.

        What follows the signature after a further '-' (the recipient, in the return paths
        made since issue 23) is not signed and not read: the signed row names the reader.
        """
        body, dash, rest = token.strip().lower().partition("-")
        sig = rest.partition("-")[0]
        if not dash or not body or len(body) > 13 or any(c not in _B32 for c in body):
            return None
        row = 0
        for char in body:
            row = row * 32 + _B32.index(char)
        return row if hmac.compare_digest(sig.encode("ascii", "replace"),
                                          self._sign(row).encode("ascii")) else None


# RFC 5321 §4.5.3.1.1: a local part is at most 64 octets; some servers refuse a longer one.
MAX_LOCAL_PART = 64
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_DOT_ATOM = re.compile(rf"^{_ATOM}(?:\.{_ATOM})*$")
_DOMAIN = re.compile(r"^[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+$")


def verp_address(base: str, token: str, recipient: str | None = None) -> str:
    """The return path of one message for the bounce address ``local@domain``.

    With the recipient, the classic VERP shape ``local+token-rlocal=rdomain@domain``: spam
    filters see the recipient in it and take it for the bounce address of a list, not a
    forged sender (rspamd's ENVFROM_VERP cancels FORGED_SENDER); only the token, which
    names the ledger row, is signed. Without it, or when that would not fit in 64 octets
    or the recipient's address is not a plain dot-atom, ``local+token@domain``.
    """
    local, _, domain = base.rpartition("@")
    if recipient:
        r_local, at, r_domain = recipient.strip().lower().rpartition("@")
        verp = f"{local}+{token}-{r_local}={r_domain}"
        if (at and _DOT_ATOM.match(r_local) and _DOMAIN.match(r_domain)
                and len(verp.encode("utf-8")) <= MAX_LOCAL_PART):
            return f"{verp}@{domain}"
    return f"{local}+{token}@{domain}"


def verp_token(address: str, base: str) -> str | None:
    """The token in ``address`` when it is ``base`` with +token, whatever the case."""
    local, _, domain = base.lower().rpartition("@")
    got_local, at, got_domain = address.strip().strip("<>").lower().rpartition("@")
    if not at or got_domain != domain or not got_local.startswith(local + "+"):
        return None
    return got_local[len(local) + 1:] or None


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


def unsubscribe_url(settings: Settings, signer: TokenSigner, edition: str, email: str,
                    lang: str, *, test: bool = False) -> str:
    """The https link for one reader: CLUBJAPON_PUBLIC_URL/unsubscribe/<token>."""
    return f"{settings.public_url}/unsubscribe/{signer.make(edition, email, lang, test=test)}"
