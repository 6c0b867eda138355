"""Job declarations: one TOML file per job in jobs/, read and checked field by field.

Every problem is a ConfigError naming the file and the field, so a wrong file stops the
scheduler (and `jobs`, `run`) at start rather than at 02:30.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from clubjapon_ops.errors import ConfigError

# What a job is lives with the jobs (jobs/spec.py); this module reads the files into it, and
# still names it for those that import it from here.
from clubjapon_ops.jobs.spec import DEFAULT_MISFIRE_GRACE
from clubjapon_ops.jobs.spec import JobSpec as JobSpec
from clubjapon_ops.jobs.spec import RetryPolicy as RetryPolicy

DEFAULT_TIMEZONE = "Europe/Paris"
MAX_ATTEMPTS = 20
NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
FUNCTION = re.compile(r"[a-z_][a-z0-9_]{0,63}")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}

_TOP_KEYS = ("name", "description", "function", "enabled", "trigger", "args", "retry")
_TRIGGER_KEYS = ("cron", "date", "timezone", "misfire_grace")
_RETRY_KEYS = ("attempts", "delay")


class _Fields:
    """Reads one table of a job file, naming the file and field in every error."""

    def __init__(self, shown: str, data: Mapping[str, Any], prefix: str = "") -> None:
        self.shown = shown
        self.data = data
        self.prefix = prefix

    def fail(self, key: str, problem: str) -> ConfigError:
        """Return the error to raise for one field."""
        return ConfigError(f"{self.shown}: {self.prefix}{key}: {problem}")

    def check_keys(self, known: tuple[str, ...]) -> None:
        """Refuse a field this table does not have (a typo would otherwise be ignored)."""
        for key in self.data:
            if key not in known:
                raise self.fail(key, f"unknown field (known: {', '.join(known)})")

    def get(self, key: str, kind: type | tuple[type, ...], expected: str) -> Any:
        """Return an optional field, checked against its type."""
        value = self.data.get(key)
        # TOML booleans are ints to isinstance(); never let `true` pass for a number.
        if value is not None and (
            not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool)
        ):
            raise self.fail(key, f"expected {expected}, got {value!r}")
        return value

    def required(self, key: str, kind: type | tuple[type, ...], expected: str) -> Any:
        """Return a field that must be present, checked against its type."""
        value = self.get(key, kind, expected)
        if value is None:
            raise self.fail(key, f"missing: expected {expected}")
        return value


def parse_duration(value: Any) -> float:
    """Return seconds from a number of seconds or a text such as '90s', '10m', '1h30m', '2d'."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and re.fullmatch(rf"(?:{_DURATION_PART.pattern})+", value.strip()):
        seconds = sum(
            float(n) * _UNIT_SECONDS[unit] for n, unit in _DURATION_PART.findall(value.strip())
        )
    else:
        raise ValueError(value)
    if not 0 <= seconds < float("inf"):
        raise ValueError(value)
    return seconds


def _duration(fields: _Fields, key: str, default: float) -> float:
    value = fields.data.get(key)
    if value is None:
        return default
    try:
        return parse_duration(value)
    except ValueError:
        raise fields.fail(
            key, f"expected a duration such as '30s', '10m', '2h' or seconds, got {value!r}"
        ) from None


def _when(fields: _Fields, tz: ZoneInfo) -> datetime | None:
    value = fields.data.get("date")
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            value = None
    if not isinstance(value, datetime):
        # A bare TOML date is a date too: refuse it rather than guess midnight.
        shown = value if isinstance(value, date) else fields.data.get("date")
        raise fields.fail(
            "date", f"expected a date and time such as 2026-12-10T18:00:00, got {shown!r}"
        )
    local = value.replace(tzinfo=tz) if value.tzinfo is None else value
    # Through UTC and back: a time that does not exist (the spring DST gap) becomes real.
    return local.astimezone(UTC).astimezone(tz)


def parse_job(path: Path, shown: str | None = None) -> JobSpec:
    """Read and check one job file; raise ConfigError naming the file and the field."""
    shown = shown or str(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{shown}: cannot be read as TOML: {exc}") from exc
    top = _Fields(shown, data)
    top.check_keys(_TOP_KEYS)

    name = top.get("name", str, "a text") or path.stem
    if name != path.stem:
        raise top.fail("name", f"{name!r} must be the file's name without .toml ({path.stem!r})")
    if not NAME.fullmatch(name):
        raise top.fail("name", "use lower-case letters, digits, '-' and '_' (64 at most)")
    function = top.required("function", str, "the name of a job function such as 'crm_sync'")
    if not FUNCTION.fullmatch(function):
        raise top.fail("function", f"{function!r} is not a job function name")
    enabled = top.required("enabled", bool, "true or false")
    description = top.get("description", str, "a text") or ""

    trigger = _Fields(shown, top.required("trigger", dict, "a [trigger] table"), "trigger.")
    trigger.check_keys(_TRIGGER_KEYS)
    zone = trigger.get("timezone", str, "a time zone name such as 'Europe/Paris'")
    try:
        tz = ZoneInfo(zone or DEFAULT_TIMEZONE)
    except (ZoneInfoNotFoundError, ValueError):
        raise trigger.fail("timezone", f"unknown time zone {zone!r}") from None
    cron = trigger.get("cron", str, "a crontab expression such as '30 2 * * *'")
    when = _when(trigger, tz)
    if (cron is None) == (when is None):
        raise trigger.fail("cron", "give exactly one of cron (repeating) or date (once)")
    grace = _duration(trigger, "misfire_grace", DEFAULT_MISFIRE_GRACE.total_seconds())
    if grace <= 0:
        raise trigger.fail("misfire_grace", "must be longer than zero")

    args = top.get("args", dict, "an [args] table") or {}
    retry = _Fields(shown, top.get("retry", dict, "a [retry] table") or {}, "retry.")
    retry.check_keys(_RETRY_KEYS)
    attempts = retry.get("attempts", int, f"a whole number from 1 to {MAX_ATTEMPTS}")
    if attempts is not None and not 1 <= attempts <= MAX_ATTEMPTS:
        raise retry.fail("attempts", f"expected a whole number from 1 to {MAX_ATTEMPTS}")
    delay = _duration(retry, "delay", 0.0)

    return JobSpec(
        name=name,
        file=shown,
        function=function,
        enabled=enabled,
        timezone=tz,
        cron=cron.strip() if cron else None,
        date=when,
        misfire_grace=timedelta(seconds=grace),
        args=dict(args),
        retry=RetryPolicy(attempts=attempts or 1, delay=delay),
        description=description.strip(),
    )


def load_job_files(folder: Path) -> list[JobSpec]:
    """Read every ``*.toml`` in the folder, sorted by name; a missing folder holds no jobs."""
    if not folder.is_dir():
        return []
    return [
        parse_job(path, shown=f"{folder.name}/{path.name}")
        for path in sorted(folder.glob("*.toml"))
    ]
