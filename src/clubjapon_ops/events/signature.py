"""SendGrid's signed event webhook: ECDSA P-256 / SHA-256 over timestamp + raw body."""

from __future__ import annotations

import base64
import binascii
import re
import time

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

# Read on the ground floor, where settings.py checks the key too; named here for events/.
from clubjapon_ops.webhook_keys import load_public_key as load_public_key

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
# A signed request older than this is refused: a captured one cannot be replayed later.
# SendGrid signs each delivery attempt afresh, so its own retries stay within the window.
MAX_AGE_S = 600
MAX_SKEW_S = 120  # clocks differ a little: a timestamp slightly ahead is fine
_SECONDS = re.compile(r"[0-9]{1,12}")


def verify(
    key: ec.EllipticCurvePublicKey, signature: str | None, timestamp: str | None, body: bytes,
    now: float | None = None,
) -> bool:
    """Tell whether the request is signed by the key, recently."""
    # ASCII digits only: str.isdigit() takes '²' and other digits int() then refuses.
    if not signature or not timestamp or not _SECONDS.fullmatch(timestamp):
        return False
    now = time.time() if now is None else now
    age = now - int(timestamp)
    if age > MAX_AGE_S or age < -MAX_SKEW_S:
        return False
    try:
        der = base64.b64decode(signature, validate=True)
        key.verify(der, timestamp.encode("ascii") + body, ec.ECDSA(hashes.SHA256()))
    except (binascii.Error, ValueError, InvalidSignature):
        return False
    return True
