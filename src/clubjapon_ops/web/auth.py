"""HTTP basic auth for the preview when it is served beyond loopback."""

from __future__ import annotations

import hashlib
import hmac

from flask import Flask, Response, request

REALM = 'Basic realm="clubjapon-ops preview", charset="UTF-8"'


def _digest(text: str) -> bytes:
    # Comparing digests of equal length: the time taken says nothing of the password's length.
    return hashlib.sha256(text.encode("utf-8")).digest()


def password_matches(given: str | None, password: str) -> bool:
    """Compare a given password with the expected one in constant time."""
    return given is not None and hmac.compare_digest(_digest(given), _digest(password))


def basic_password() -> str | None:
    """The password of this request's basic-auth header, or None (absent or malformed)."""
    try:
        auth = request.authorization
    except ValueError:
        # Werkzeug's base64 decoding raises on a header of non-ASCII text: no password.
        return None
    return auth.password if auth is not None and auth.type == "basic" else None


def bearer_token() -> str | None:
    """The token of this request's ``Authorization: Bearer`` header, or None."""
    # Read by hand: the scheme is case-insensitive (RFC 7235) and nothing here depends on how
    # a Werkzeug version parses, or refuses, a bearer header.
    scheme, _, token = request.headers.get("Authorization", "").strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def require_password(app: Flask, password: str | None) -> None:
    """Ask every request of ``app`` for basic auth with ``password`` (any user name)."""
    if not password:
        return

    @app.before_request
    def check_password() -> Response | None:
        if password_matches(basic_password(), password):
            return None
        return Response("Authentication required\n", status=401, mimetype="text/plain",
                        headers={"WWW-Authenticate": REALM})
