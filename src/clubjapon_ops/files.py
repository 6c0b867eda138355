"""Owner-only folders: what the project writes under var/ names or shows its readers."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

log = logging.getLogger(__name__)


def private_folder(path: Path) -> Path:
    """Create ``path`` and its missing parents owner-only (0700); return it.

    Path.mkdir(parents=True) would give the parents the default mode, readable by others
    under the usual umask. Folders that exist already are left as they are.
    """
    missing = []
    folder = path
    while not folder.is_dir():
        missing.append(folder)
        folder = folder.parent
    for created in reversed(missing):
        created.mkdir(mode=0o700, exist_ok=True)
    return path


def make_private(path: Path) -> None:
    """Make a file or folder that others may read owner-only (an older version's, say).

    Someone else's file cannot be changed: that is said once, and the caller goes on rather
    than stop a send or a sync over it.
    """
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return
    if not mode & 0o077:
        return
    private = 0o700 if stat.S_ISDIR(mode) else 0o600
    try:
        path.chmod(private)
    except PermissionError:
        log.warning("readable by others, and not ours to change", extra={"path": str(path)})
    else:
        log.info("was readable by others: made owner-only",
                 extra={"path": str(path), "mode": oct(private)})
