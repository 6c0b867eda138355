"""The nightly job: write the HTML report of every edition sent in the last N days."""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from clubjapon_ops.files import private_folder
from clubjapon_ops.jobs.records import Report, run_recorded
from clubjapon_ops.newsletter.content import is_slug
from clubjapon_ops.reporting.campaign import build_report
from clubjapon_ops.reporting.html import render_html
from clubjapon_ops.settings import Settings
from clubjapon_ops.store import Store
from clubjapon_ops.store.reporting import editions_sent_since
from clubjapon_ops.store.types import utcnow

REPORTS_DIR = Path("var") / "reports"
log = logging.getLogger(__name__)


@dataclass
class ReportsWritten(Report):
    """Which reports a run wrote."""

    files: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, Any]:
        """Return the figures to record and print."""
        return {"written": len(self.files)}


def write_html(path: Path, html: str) -> None:
    """Write through a temporary file and rename: a reader never sees half a report."""
    private_folder(path.parent)
    partial = path.with_name(path.name + ".part")
    partial.write_text(html, encoding="utf-8")
    os.replace(partial, path)


def campaign_reports(
    settings: Settings, store: Store, *, days: int = 7, trigger: str = "cli",
    stop: threading.Event | None = None,
) -> ReportsWritten:
    """Write var/reports/<edition>.html for each edition sent in the last ``days`` days."""

    def work() -> ReportsWritten:
        written = ReportsWritten()
        with store.transaction() as conn:
            editions = editions_sent_since(conn, utcnow() - timedelta(days=days))
        for edition in editions:
            if stop is not None and stop.is_set():
                break  # each report is whole on its own: stopping between them is safe
            if not is_slug(edition):
                # A row from before edition names were checked: no file name comes from it.
                log.warning("ledger edition is not an edition name; no report written",
                            extra={"edition": edition})
                continue
            path = settings.root / REPORTS_DIR / f"{edition}.html"
            write_html(path, render_html(build_report(store, edition)))
            written.files.append(str(path))
        return written

    return run_recorded(store, "campaign_reports", trigger, work)
