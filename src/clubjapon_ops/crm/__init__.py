"""Contact sources: CSV exports and CRM APIs behind one protocol."""

from __future__ import annotations

from clubjapon_ops.crm.base import CrmSource, Page
from clubjapon_ops.crm.csvfile import CsvSource
from clubjapon_ops.errors import StopRun
from clubjapon_ops.settings import Settings

__all__ = ["CrmSource", "CsvSource", "Page", "make_source"]


def make_source(settings: Settings) -> CrmSource:
    """Build the source that CLUBJAPON_CRM names."""
    if settings.crm == "csv":
        return CsvSource(settings.csv_path)
    raise StopRun(f"CLUBJAPON_CRM={settings.crm} is not supported by this version yet")
