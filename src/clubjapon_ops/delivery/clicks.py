"""Click tokens: which link of which language of which edition, and (consent) whose row.

A link's token is a keyed hash (HMAC-SHA256 with CLUBJAPON_SECRET) of the edition, the
language and the link's key, cut to 96 bits: compact, opaque, the same for every reader of
one language, and unforgeable (a token that is no stored link's id leads nowhere). In
consent mode a reader who agreed gets ``<link token>.<row>-<signature>``: the ledger row, never
the address, signed apart so it cannot be moved to another row.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Callable
from dataclasses import dataclass

from clubjapon_ops.contacts import Contact, consents
from clubjapon_ops.delivery.tokens import b32_number, key_bytes, read_b32_number
from clubjapon_ops.newsletter.links import edition_links
from clubjapon_ops.newsletter.model import Edition
from clubjapon_ops.settings import Settings
from clubjapon_ops.store.clicks import StoredLink

_LINK = b"click-link\x00"
_READER = b"click-reader\x00"
_LINK_BYTES = 12  # 96 bits: 16 characters of base64url
_READER_SIG_CHARS = 13  # 64 bits in lower-case base32
# A token longer than this is refused before anything is computed.
MAX_TOKEN = 64
_LINK_ID = re.compile(r"[A-Za-z0-9_-]{16}")
# What separates the link token from the reader's part; neither base64url nor base32 has it.
READER_SEP = "."


@dataclass(frozen=True)
class ClickToken:
    """What a token says: the link id, and the ledger row when the reader agreed."""

    link_id: str
    row: int | None = None


class ClickSigner:
    """Makes and reads click tokens with one key."""

    def __init__(self, key: str) -> None:
        self._key = key_bytes(key)

    def link_id(self, edition: str, lang: str, key: str) -> str:
        """The token of one link of one language of an edition (every reader's)."""
        payload = _LINK + f"{edition}\n{lang}\n{key}".encode()
        digest = hmac.new(self._key, payload, hashlib.sha256).digest()[:_LINK_BYTES]
        return base64.urlsafe_b64encode(digest).decode("ascii")

    def _reader_sig(self, row: int) -> str:
        mac = hmac.new(self._key, _READER + str(row).encode("ascii"), hashlib.sha256).digest()
        return base64.b32encode(mac).decode("ascii").lower()[:_READER_SIG_CHARS]

    def reader_part(self, row: int) -> str:
        """What a consenting reader's links carry after the link token: ``.<row>-<sig>``."""
        return f"{READER_SEP}{b32_number(row)}-{self._reader_sig(row)}"

    def read(self, token: str) -> ClickToken | None:
        """The link id and row a token names, or None when it is malformed or forged.

        The link id is only well-formed here; whether it is a link is the store's answer.
        """
        if not token or len(token) > MAX_TOKEN:
            return None
        link_id, sep, reader = token.partition(READER_SEP)
        if not _LINK_ID.fullmatch(link_id):
            return None
        if not sep:
            return ClickToken(link_id)
        body, dash, sig = reader.partition("-")
        row = read_b32_number(body) if dash else None
        if row is None:
            return None
        if not hmac.compare_digest(sig.encode("ascii", "replace"),
                                   self._reader_sig(row).encode("ascii")):
            return None
        return ClickToken(link_id, row)


def click_url(public_url: str, token: str) -> str:
    """PUBLIC_URL/r/<token>."""
    return f"{public_url}/r/{token}"


def stored_links(signer: ClickSigner, edition: Edition) -> list[StoredLink]:
    """Every tracked link of every language of the edition, as the store keeps them."""
    return [StoredLink(signer.link_id(edition.slug, lang, link.key), edition.slug, lang,
                       link.key, link.label, link.url)
            for lang in edition.languages for link in edition_links(edition, lang)]


def link_href(settings: Settings, signer: ClickSigner) -> Callable[[str, str, str], str]:
    """(edition, language, link key) -> the link's redirect URL, for the renderer."""
    return lambda edition, lang, key: click_url(settings.public_url,
                                                signer.link_id(edition, lang, key))


def reader_part(settings: Settings, signer: ClickSigner) -> Callable[[Contact, int], str]:
    """(contact, ledger row) -> what that reader's links carry after their token.

    Empty unless CLUBJAPON_LINK_TRACKING=consent and the contact's consent field says yes.
    """
    field = settings.tracking_consent_field
    if settings.link_tracking != "consent" or not field:
        return lambda contact, row: ""
    return lambda contact, row: (signer.reader_part(row)
                                 if consents(contact.attributes, field) else "")
