"""The base of every job's report: what job_runs records."""

from __future__ import annotations

from typing import Any


class Report:
    """A job's outcome, as recorded in job_runs."""

    @property
    def status(self) -> str:
        """success, partial, paused, stopped ..."""
        return "success"

    def counts(self) -> dict[str, Any]:
        """The figures to record and print."""
        raise NotImplementedError
