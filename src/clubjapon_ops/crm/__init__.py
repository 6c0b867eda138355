"""Contact sources: CSV exports and CRM APIs behind one protocol."""

from __future__ import annotations

from clubjapon_ops.crm.base import CrmSource, Page
from clubjapon_ops.crm.brevo import BrevoSource, brevo_source
from clubjapon_ops.crm.csvfile import CsvSource
from clubjapon_ops.crm.hubspot import HubSpotSource, hubspot_source
from clubjapon_ops.errors import StopRun
from clubjapon_ops.settings import Settings

__all__ = ["BrevoSource", "CrmSource", "CsvSource", "HubSpotSource", "Page", "make_source"]


def make_source(settings: Settings) -> CrmSource:
    """Build the source that CLUBJAPON_CRM names."""
    if settings.crm == "csv":
        return CsvSource(settings.csv_path)
    if settings.crm == "hubspot":
        return hubspot_source(settings)
    if settings.crm == "brevo":
        return brevo_source(settings)
    raise StopRun(f"CLUBJAPON_CRM={settings.crm} is not supported by this version yet")
