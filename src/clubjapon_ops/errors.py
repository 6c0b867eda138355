"""One error hierarchy, grouped by what the caller should do: retry, skip or stop.

Configuration errors live outside :class:`ClubJaponError` on purpose: a handler that
skips bad records or retries transient failures must never swallow a wrong setting.
"""

from __future__ import annotations


class ConfigError(Exception):
    """A setting or configuration file is invalid; fix it and start again."""


class UnknownEdition(ConfigError):
    """An edition name that is not a slug, or names no edition file (nor ledger rows)."""


class EditionError(ConfigError):
    """An edition file that cannot be read: each line of the message is one mistake, with
    the file, the line and what to do."""


class ClubJaponError(Exception):
    """Base of every runtime error the project raises on purpose."""


class RetryableError(ClubJaponError):
    """A transient failure: the same call may succeed later (429, 5xx, timeout)."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class SkipRecord(ClubJaponError):
    """This record is unusable; report it, skip it and carry on with the others."""

    def __init__(self, reason: str, ref: str = "") -> None:
        super().__init__(f"{ref}: {reason}" if ref else reason)
        self.reason = reason
        self.ref = ref


class InvalidContact(SkipRecord):
    """A contact record failed normalisation or validation."""


class FieldTooLong(InvalidContact):
    """One text field is over its limit: where the field is optional, drop it, keep the record."""


class StopRun(ClubJaponError):
    """The run cannot go on (bad credentials, unreadable source, quota exhausted)."""


class SourceError(StopRun):
    """The contact source cannot be read (missing file, no email column, bad page)."""


class AuthError(StopRun):
    """The provider refused our credentials; the message names the setting to check."""


class StoreError(StopRun):
    """The database cannot be opened or migrated."""


class Interrupted(ClubJaponError):
    """The run was asked to stop (SIGTERM, SIGINT) and did so between batches; rerun to finish.

    Not a failure: everything committed so far is consistent, and ``counts`` says how far it got.
    """

    def __init__(self, message: str, counts: dict[str, object] | None = None) -> None:
        super().__init__(message)
        self.counts = counts or {}


class AlreadyRunning(ClubJaponError):
    """Another process holds the lock this one needs (the scheduler, an edition's send)."""
