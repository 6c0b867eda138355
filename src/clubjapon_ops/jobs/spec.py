"""A declared job as the scheduler, `run` and the job registry see it: what jobs/*.toml says.

The jobs own it; jobfiles.py reads the files into it, and the registry (which a job file may
name) needs only this, not the files' parser.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

DEFAULT_MISFIRE_GRACE = timedelta(hours=1)


@dataclass(frozen=True)
class RetryPolicy:
    """How often a failing job is tried, and how long to wait between tries."""

    attempts: int = 1
    delay: float = 0.0  # seconds


@dataclass(frozen=True)
class JobSpec:
    """One job as its file declares it."""

    name: str
    file: str  # as shown in messages: jobs/<name>.toml
    function: str
    enabled: bool
    timezone: ZoneInfo
    cron: str | None = None
    date: datetime | None = None
    misfire_grace: timedelta = DEFAULT_MISFIRE_GRACE
    args: Mapping[str, Any] = field(default_factory=dict)
    retry: RetryPolicy = RetryPolicy()
    description: str = ""

    @property
    def schedule(self) -> str:
        """Describe the trigger in one line, such as "cron '30 2 * * *' (Europe/Paris)"."""
        if self.cron is not None:
            return f"cron '{self.cron}' ({self.timezone.key})"
        assert self.date is not None  # the parser guarantees one of the two
        return f"once at {self.date.astimezone(self.timezone):%Y-%m-%d %H:%M} ({self.timezone.key})"
