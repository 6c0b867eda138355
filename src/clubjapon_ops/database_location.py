"""Where a SQLite URL keeps its file: a plain path or a file: URI, anchored under the root.

On the ground floor, beside settings.py, which anchors and checks the database URL with it;
store/ reads it through store/location.py.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from sqlalchemy.engine import URL, make_url
from sqlalchemy.util import asbool

from clubjapon_ops.masking import mask_secrets

BUSY_TIMEOUT_S = 30.0


def is_sqlite(url: URL) -> bool:
    """True for any SQLite driver."""
    return url.drivername.startswith("sqlite")


def is_uri(url: URL) -> bool:
    """True when SQLAlchemy hands the name to SQLite as a URI (``?uri=true``)."""
    return asbool(url.query.get("uri", False))


def check_sqlite_url(url: URL) -> None:
    """Raise ValueError for a URL SQLite would read as another file than the one meant."""
    if is_sqlite(url) and is_uri(url) and not (url.database or "").startswith("file:"):
        # SQLite takes a name without 'file:' as a plain file name, '?mode=ro' included.
        raise ValueError("uri=true needs a database of the form file:PATH")


def sqlite_file(url: URL) -> Path | None:
    """The file a SQLite URL opens, as given (maybe relative), or None when in memory."""
    database = url.database or ""
    if not is_uri(url):
        return None if database in ("", ":memory:") else Path(database)
    path = unquote(urlsplit(database).path)
    if path in ("", ":memory:") or url.query.get("mode") == "memory":
        return None
    return Path(path)


def read_only(url: URL) -> bool:
    """True when the URL itself asks SQLite for read-only access (``mode=ro``)."""
    return is_uri(url) and url.query.get("mode") == "ro"


def creates_file(url: URL) -> bool:
    """True unless the URL tells SQLite to open an existing file only (mode=ro or rw)."""
    return not (is_uri(url) and url.query.get("mode") in ("ro", "rw"))


def busy_timeout(url: URL) -> float:
    """Seconds a writer waits for another's lock: the URL's ``timeout``, else 30."""
    try:
        return float(url.query.get("timeout", BUSY_TIMEOUT_S))  # type: ignore[arg-type]
    except ValueError:
        return BUSY_TIMEOUT_S


def anchor_sqlite(url: str, root: Path) -> str:
    """Resolve a relative SQLite path (plain or file: URI) against the project root."""
    parsed = make_url(url)
    if not is_sqlite(parsed):
        return url
    path = sqlite_file(parsed)
    if path is None or path.is_absolute():
        return url
    database = str(root / path)
    if is_uri(parsed):
        # Inside a URI, '%', '?' and '#' of the folder's name must be escaped for SQLite.
        database = "file:" + quote(database, safe="/ ")
    return parsed.set(database=database).render_as_string(hide_password=False)


def shown(url: str) -> str:
    """The database as a person names it: the SQLite file's path, else the masked URL."""
    parsed = make_url(url)
    if is_sqlite(parsed):
        path = sqlite_file(parsed)
        return str(path) if path is not None else "an in-memory SQLite database"
    return mask_secrets(url)  # every form of password: the userinfo's, ?password=, ...
