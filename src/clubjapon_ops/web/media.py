"""GET /media/<sha256>.<ext>: the published copies of the editions' images (var/media/).

Only names of the published form are answered, read from var/media/ and nowhere else: no
path is built from a request, nothing under config/ is reachable, and a link planted in
var/media/ is not followed. A copy is named by its content, so it never changes: browsers
and proxies keep it for a year, and this process keeps the recent ones in memory.
"""

from __future__ import annotations

import os
import stat
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, current_app, request

from clubjapon_ops.newsletter.media import CONTENT_TYPES, PUBLISHED_DIR, PUBLISHED_NAME
from clubjapon_ops.settings import Settings

blueprint = Blueprint("media", __name__)
IMMUTABLE = "public, max-age=31536000, immutable"
# Published copies weigh 300 KB at most (a few more for a transparent PNG): ~100 of them.
_CACHE_BYTES = 32 * 1024 * 1024
_cache: OrderedDict[tuple[str, str], bytes] = OrderedDict()
_cached_bytes = 0
_lock = threading.Lock()


def _not_found() -> Response:
    return Response("Not found\n", status=404, mimetype="text/plain",
                    headers={"Cache-Control": "no-store"})


def _read(folder: Path, name: str) -> bytes | None:
    """The file's bytes, or None if there is no such regular file (a link is not followed)."""
    try:
        fd = os.open(folder / name, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    with os.fdopen(fd, "rb") as file:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return file.read()


def _published(root: Path, name: str) -> bytes | None:
    """A published copy, from memory when it was served lately."""
    global _cached_bytes
    key = (str(root), name)
    with _lock:
        if (data := _cache.get(key)) is not None:
            _cache.move_to_end(key)
            return data
    data = _read(root / PUBLISHED_DIR, name)
    if data is None:
        return None  # not cached: it may be published a moment later
    with _lock:
        if key not in _cache:
            _cache[key] = data
            _cached_bytes += len(data)
            while _cached_bytes > _CACHE_BYTES and len(_cache) > 1:
                _cached_bytes -= len(_cache.popitem(last=False)[1])
    return data


@blueprint.get("/media/<name>")
def image(name: str) -> Any:
    """One published image, with headers that let anything cache it for good."""
    if not PUBLISHED_NAME.fullmatch(name):
        return _not_found()
    settings: Settings = current_app.config["CLUBJAPON_SETTINGS"]
    data = _published(Path(settings.root), name)
    if data is None:
        return _not_found()
    response = Response(data, mimetype=CONTENT_TYPES[name.rsplit(".", 1)[1]],
                        headers={"Cache-Control": IMMUTABLE})
    response.set_etag(name.split(".", 1)[0])
    return response.make_conditional(request)
