"""Times shown to people: in the club's zone (CLUBJAPON_TIMEZONE), the zone written out.

Logs in JSON keep UTC ISO times; only what a person reads goes through here.
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo


def shown(moment: datetime, zone: tzinfo, *, date: bool = False) -> str:
    """``moment`` in ``zone``, as 'HH:MM:SS CET' (with ``date``: 'YYYY-MM-DD HH:MM:SS CET')."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    local = aware.astimezone(zone)
    return local.strftime("%Y-%m-%d %H:%M:%S %Z" if date else "%H:%M:%S %Z")


def zone_name(zone: tzinfo, at: datetime | None = None) -> str:
    """The zone's abbreviation now (or at ``at``): 'CET', 'CEST', 'UTC'."""
    return (at or datetime.now(UTC)).astimezone(zone).strftime("%Z")
