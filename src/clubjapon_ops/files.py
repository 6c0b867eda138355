"""Owner-only folders: what the project writes under var/ names or shows its readers."""

from __future__ import annotations

from pathlib import Path


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
