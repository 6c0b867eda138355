"""The envelope sender (return path) of each message: where its bounces go.

CLUBJAPON_BOUNCE_ADDRESS, else the From address. With VERP (CLUBJAPON_BOUNCE_VERP, on by
default once CLUBJAPON_BOUNCE_ADDRESS is set) each real message gets
local+TOKEN-rlocal=rdomain@domain (the classic VERP shape spam filters recognise, with the
recipient rlocal@rdomain; local+TOKEN@domain when that would not fit; '-' instead of '+' with
CLUBJAPON_BOUNCE_VERP_DELIMITER=-), TOKEN naming its ledger
row (delivery.tokens.VerpSigner), so a bounce names its row even when the report quotes
nothing of the message, and a forged one names no one. A test copy has no ledger row: it
keeps the plain address.
"""

from __future__ import annotations

from collections.abc import Callable
from email.utils import parseaddr
from typing import TYPE_CHECKING

from clubjapon_ops.delivery.tokens import VerpSigner, signing_key, verp_address
from clubjapon_ops.settings import Settings

if TYPE_CHECKING:  # the transports import this module
    from clubjapon_ops.delivery.transports.base import Outgoing

ReturnPath = Callable[["Outgoing"], str]


def bounce_address(settings: Settings) -> str:
    """CLUBJAPON_BOUNCE_ADDRESS, else the address of CLUBJAPON_MAIL_FROM."""
    return settings.bounce_address or parseaddr(settings.mail_from)[1]


def verp_signer(settings: Settings) -> VerpSigner:
    """The signer of return-path tokens, with the key that signs unsubscribe links."""
    return VerpSigner(signing_key(settings))


def return_path(settings: Settings) -> ReturnPath:
    """The function giving each outgoing message its envelope sender."""
    base = bounce_address(settings)
    if not settings.bounce_verp:
        return lambda item: base
    signer = verp_signer(settings)

    def of(item: Outgoing) -> str:
        if item.test_copy:
            return base
        return verp_address(base, signer.make(item.id), item.envelope_to,
                            settings.bounce_verp_delimiter)

    return of
