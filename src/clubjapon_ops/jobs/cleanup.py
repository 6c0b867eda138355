"""The outbox clean-up job: deletes messages the outbox transport wrote long ago."""

from __future__ import annotations

import logging
import os
import stat
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from clubjapon_ops.errors import ConfigError, Interrupted
from clubjapon_ops.jobs.records import Report, run_recorded
from clubjapon_ops.settings import Settings
from clubjapon_ops.store import Store
from clubjapon_ops.store.types import utcnow

log = logging.getLogger(__name__)

BATCH = 500  # files between two looks at the stop flag
SUFFIX = ".eml"


@dataclass
class CleanupReport(Report):
    """What an outbox clean-up did."""

    folder: str
    older_than_days: int
    deleted: int = 0
    kept: int = 0
    freed_bytes: int = 0

    def counts(self) -> dict[str, Any]:
        """Return the figures to record and print."""
        return {
            "folder": self.folder,
            "older_than_days": self.older_than_days,
            "deleted": self.deleted,
            "kept": self.kept,
            "freed_bytes": self.freed_bytes,
        }


def outbox_cleanup(
    settings: Settings,
    store: Store,
    *,
    older_than_days: int = 30,
    trigger: str = "cli",
    stop: threading.Event | None = None,
    now: datetime | None = None,
) -> CleanupReport:
    """Delete outbox ``.eml`` files last modified more than ``older_than_days`` days ago."""
    if older_than_days < 1:
        raise ConfigError(f"older_than_days must be 1 or more, got {older_than_days}")
    cutoff = (now or utcnow()) - timedelta(days=older_than_days)
    return run_recorded(
        store,
        "outbox_cleanup",
        trigger,
        lambda: _clean(settings.outbox_dir, cutoff, older_than_days, stop),
    )


def _clean(
    folder: Path, cutoff: datetime, days: int, stop: threading.Event | None
) -> CleanupReport:
    report = CleanupReport(folder=str(folder), older_than_days=days)
    limit = cutoff.timestamp()
    for n, path in enumerate(_messages(folder)):
        if n and n % BATCH == 0 and stop is not None and stop.is_set():
            raise Interrupted(f"outbox clean-up stopped after {n} files", report.counts())
        try:
            info = path.lstat()
            # Regular files only: a symlink could point anywhere outside the outbox.
            if not stat.S_ISREG(info.st_mode):
                continue
            if info.st_mtime >= limit:
                report.kept += 1
                continue
            path.unlink()
        except FileNotFoundError:
            continue  # deleted meanwhile by someone else: that is the wanted outcome anyway
        report.deleted += 1
        report.freed_bytes += info.st_size
    log.info("outbox cleaned", extra={"report": report.counts()})
    return report


def _messages(folder: Path) -> Iterator[Path]:
    """Yield the outbox's message files, sub-folders included, without following links."""
    if not folder.is_dir():
        return
    for parent, _dirs, files in os.walk(folder, followlinks=False):
        for name in sorted(files):
            if name.endswith(SUFFIX):
                yield Path(parent) / name
