"""The public key a provider signs its event webhook with (SendGrid: EC P-256, base64 DER).

On the ground floor: settings.py checks the key when it loads it, events/ verifies each
request with it, and settings.py imports no layer above it.
"""

from __future__ import annotations

import base64
import binascii

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key


def load_public_key(value: str) -> ec.EllipticCurvePublicKey:
    """Read a base64 DER public key; ValueError unless it is an EC P-256 key."""
    try:
        key = load_der_public_key(base64.b64decode(value, validate=True))
    except (binascii.Error, ValueError, TypeError) as exc:
        raise ValueError("not a base64 DER public key") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise ValueError("not an EC P-256 public key")
    return key
