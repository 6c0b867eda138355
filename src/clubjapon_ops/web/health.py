"""GET /healthz: the process answers (for the reverse proxy and the service manager)."""

from __future__ import annotations

from flask import Blueprint, Response

blueprint = Blueprint("health", __name__)


@blueprint.get("/healthz")
def healthz() -> Response:
    """Say OK; the store is not touched, so a probe never loads the database."""
    return Response("OK\n", status=200, mimetype="text/plain")
