"""DKIM signatures (RFC 6376) for the messages the SMTP and outbox transports hand over.

The key is read and checked once, when the sender starts; each message is then signed with
dkimpy, rsa-sha256, relaxed/relaxed, over the headers RFC 8058 asks a one-click
unsubscribe to be covered by (and the others a reader sees).
"""

from __future__ import annotations

import base64
import functools
import logging
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dkim
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils
from dkim import canonicalization

from clubjapon_ops.errors import ConfigError

log = logging.getLogger(__name__)

KEY_SETTING = "CLUBJAPON_DKIM_KEY_FILE"
# Other users may neither read nor write the key; its group may read it (a root-owned key
# shared with the sender's group, 0640), never write it.
_TOO_OPEN = stat.S_IRWXO | stat.S_IWGRP | stat.S_IXGRP
MIN_KEY_BITS = 1024  # RFC 8301: verifiers ignore smaller keys; 2048 is what to generate
SIGNED_HEADERS: tuple[bytes, ...] = (
    b"From", b"To", b"Subject", b"Date", b"Message-ID", b"MIME-Version", b"Content-Type",
    b"Content-Language", b"List-Unsubscribe", b"List-Unsubscribe-Post", b"List-Id",
)


# Three steps of dkimpy are replaced here, at import, by faster equivalents (pyproject pins
# dkimpy < 2; tests/delivery/test_dkim.py compares each with dkimpy's own). They take a
# signature from 8 ms to under 1 ms a message.
#
# dkimpy computes RSA in pure Python (8 ms a message for a 2048-bit key, most of a send's
# time); OpenSSL, through cryptography, does it in 0.3 ms. dkimpy still canonicalises,
# hashes and writes the header: only the RSA step of the keys registered here moves. The
# signature is the same (PKCS#1 v1.5 is deterministic), which a test checks.
_OPENSSL_KEYS: dict[int, rsa.RSAPrivateKey] = {}
_pure_python_sign: Callable[[Any, dict[str, int]], bytes] = dkim.RSASSA_PKCS1_v1_5_sign


def _rsa_sign(digest: Any, private_key: dict[str, int]) -> bytes:
    key = _OPENSSL_KEYS.get(private_key["modulus"])
    if key is None or digest.name != "sha256":
        return _pure_python_sign(digest, private_key)
    return key.sign(digest.digest(), padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))


dkim.RSASSA_PKCS1_v1_5_sign = _rsa_sign
# dkimpy parses the PEM key (ASN.1 in Python) for every message; one key, parsed once.
dkim.parse_pem_private_key = functools.lru_cache(maxsize=8)(dkim.parse_pem_private_key)


def relaxed_body(body: bytes) -> bytes:
    """RFC 6376 §3.4.4 relaxed body canonicalisation, with bytes.replace instead of dkimpy's
    two regular expressions over the whole body (1.1 ms of a 27 KB message; this: 0.35 ms).

    Every run of spaces and tabs becomes one space, then a space before CRLF goes: the
    same as stripping trailing whitespace first and compressing after (a test compares the
    two on random bodies). Then empty lines at the end go, as dkimpy does it.
    """
    body = body.replace(b"\t", b" ")
    while b"  " in body:
        body = body.replace(b"  ", b" ")
    body = body.replace(b" \r\n", b"\r\n")
    canonical: bytes = canonicalization.correct_empty_body(
        canonicalization.strip_trailing_lines(body))
    return canonical


canonicalization.Relaxed.canonicalize_body = staticmethod(relaxed_body)
_dkimpy_parse: Callable[[bytes], tuple[list[list[bytes]], bytes]] = dkim.rfc822_parse


def split_message(message: bytes) -> tuple[list[list[bytes]], bytes]:
    """dkimpy's rfc822_parse without splitting the body into lines and joining them again
    (0.4 ms of a message) when its line ends are all CRLF already, as ours are."""
    end = message.find(b"\r\n\r\n")
    if end < 0:
        return _dkimpy_parse(message)
    head, body = message[:end + 4], message[end + 4:]
    if message.count(b"\n") != message.count(b"\r\n"):
        return _dkimpy_parse(message)  # a bare LF: dkimpy reads it as CRLF
    headers, _ = _dkimpy_parse(head)
    return headers, body


dkim.rfc822_parse = split_message


@dataclass(frozen=True)
class DkimSigner:
    """Signs whole messages for one domain and selector with one RSA key."""

    domain: str
    selector: str
    private_key: bytes  # PEM (PKCS#1 or PKCS#8); never logged nor shown
    # Signed twice: a From, Subject or List-Unsubscribe header added on the way then breaks
    # the signature instead of passing under it (RFC 6376 §8.15, "over-signing").
    oversigned: tuple[bytes, ...] = (b"From", b"Subject", b"List-Unsubscribe")

    def __post_init__(self) -> None:
        key = serialization.load_pem_private_key(self.private_key, password=None)
        if isinstance(key, rsa.RSAPrivateKey):
            _OPENSSL_KEYS[key.private_numbers().public_numbers.n] = key

    def __repr__(self) -> str:
        return f"DkimSigner(domain={self.domain!r}, selector={self.selector!r})"

    def signature(self, message: bytes) -> bytes:
        """The DKIM-Signature header (with its CRLF) for ``message``."""
        signature: bytes = dkim.sign(
            message, self.selector.encode("ascii"), self.domain.encode("ascii"),
            self.private_key, canonicalize=(b"relaxed", b"relaxed"),
            signature_algorithm=b"rsa-sha256",
            include_headers=[*SIGNED_HEADERS, *self.oversigned], linesep=b"\r\n",
        )
        return signature

    def sign(self, message: bytes) -> bytes:
        """``message`` with its DKIM-Signature header first."""
        return self.signature(message) + message


def read_private_key(path: Path) -> bytes:
    """The PEM RSA private key in ``path``; ConfigError naming the setting, never the key."""
    try:
        with path.open("rb") as handle:
            mode = os.fstat(handle.fileno()).st_mode  # the file read, not one swapped in
            data = handle.read()
    except OSError as exc:
        raise ConfigError(f"{KEY_SETTING}={path}: cannot read it ({exc.strerror})") from None
    if mode & _TOO_OPEN:
        # As ssh does with an identity file: a key others can read signs mail as the club
        # for whoever copied it; refused before it is used, never silently accepted.
        raise ConfigError(
            f"{KEY_SETTING}={path}: the key file can be read or changed by other users of "
            f"this machine (mode {stat.S_IMODE(mode):04o}): run 'chmod 600 {path}' (or 640 "
            "with a group only the sender is in)")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise ConfigError(
            f"{KEY_SETTING}={path}: not an unencrypted PEM private key (generate one with "
            "'openssl genrsa -out dkim.pem 2048')") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ConfigError(f"{KEY_SETTING}={path}: not an RSA key; DKIM rsa-sha256 needs one")
    if key.key_size < MIN_KEY_BITS:
        raise ConfigError(f"{KEY_SETTING}={path}: a {key.key_size}-bit key; receivers ignore "
                          f"signatures under {MIN_KEY_BITS} bits (RFC 8301): use 2048")
    # dkimpy reads PKCS#1 and PKCS#8 PEM alike; hand it the traditional form it expects.
    return key.private_bytes(serialization.Encoding.PEM,
                             serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())


def dns_record(private_key: bytes) -> str:
    """The TXT record to publish at <selector>._domainkey.<domain> for this key."""
    key = serialization.load_pem_private_key(private_key, password=None)
    public = key.public_key().public_bytes(serialization.Encoding.DER,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return f"v=DKIM1; k=rsa; p={base64.b64encode(public).decode('ascii')}"


def aligned(domain: str, from_address: str) -> bool:
    """Whether the signing domain aligns with the From domain for DMARC (relaxed: the same
    domain or one a parent of the other)."""
    signing = domain.lower().rstrip(".")
    sender = from_address.rsplit("@", 1)[-1].lower().rstrip(".")
    return sender == signing or sender.endswith("." + signing) or signing.endswith(
        "." + sender)


def make_signer(key_file: Path | None, selector: str | None, domain: str | None,
                from_address: str) -> DkimSigner | None:
    """The signer the settings describe, or None when DKIM is not set up.

    All three settings or none (load_settings checks that too); the key is read and
    checked here, once. A domain that does not align with the From address is allowed (a
    provider's domain signs, say) but DMARC will not count it: a warning says so.
    """
    if key_file is None or selector is None or domain is None:
        return None
    signer = DkimSigner(domain, selector, read_private_key(key_file))
    if not aligned(domain, from_address):
        log.warning("CLUBJAPON_DKIM_DOMAIN is not the From address's domain: receivers will "
                    "check the signature, but DMARC needs it to align",
                    extra={"dkim_domain": domain, "from_domain": from_address.rsplit("@")[-1]})
    return signer
