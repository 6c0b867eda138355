"""Security headers: a Content-Security-Policy per app, with a nonce for inline style and script.

Templates mark their one <style> (and the preview its one <script>) with ``csp_nonce``;
anything else inline, an injected handler included, is refused by the browser.
"""

from __future__ import annotations

import secrets

from flask import Flask, Response, g

# The public pages load nothing: no script, no image, no frame; a form posts to itself.
PUBLIC_CSP = ("default-src 'none'; style-src 'nonce-{nonce}'; form-action 'self'; "
              "frame-ancestors 'none'; base-uri 'none'")
# The preview page frames the email (same origin) and runs one script (the contact switch).
PREVIEW_CSP = ("default-src 'none'; style-src 'nonce-{nonce}'; script-src 'nonce-{nonce}'; "
               "frame-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
# The email itself, in the preview's frame or opened alone: a sandbox (no script), its own
# inline CSS, and remote images as a mail client would show them. Same origin, so the
# preview's script can read the email's height and size the frame to it.
EMAIL_CSP = ("sandbox allow-same-origin; default-src 'none'; img-src 'self' https: data:; "
             "style-src 'unsafe-inline'; frame-ancestors 'self'; base-uri 'none'; "
             "form-action 'none'")

# The public archive's edition pages: the email as a web page, so the email's policy, but
# framed by nobody (it is public) and still a sandbox: no script, whatever the edition holds.
ARCHIVE_CSP = ("sandbox; default-src 'none'; img-src https: data:; style-src 'unsafe-inline'; "
               "frame-ancestors 'none'; base-uri 'none'; form-action 'none'")


def csp_nonce() -> str:
    """This request's nonce (one per request, made on first use)."""
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(18)
    nonce: str = g.csp_nonce
    return nonce


def install(app: Flask, policy: str) -> None:
    """Send ``policy`` (unless a view set its own) and the other headers with every answer."""
    app.jinja_env.globals["csp_nonce"] = csp_nonce

    @app.after_request
    def security_headers(response: Response) -> Response:
        response.headers.setdefault("Content-Security-Policy", policy.format(nonce=csp_nonce()))
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        # Unsubscribe URLs carry a token: never send them on as a Referer.
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        return response
