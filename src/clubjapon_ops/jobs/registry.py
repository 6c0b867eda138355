"""The job functions a jobs/ file may name, and the runner that tries them as the file says.

Both `clubjapon-ops run JOB` and the scheduler go through :func:`execute`, so a job run by hand
behaves exactly as a scheduled one: same arguments, same retries, same records.

A job function is called as ``function(settings, store, *, trigger, stop, **args)`` and returns
a :class:`~clubjapon_ops.jobs.Report`. It records itself with ``jobs.run_recorded`` (which picks
up the attempt number and the job's name from the runner), and when ``stop`` (a
``threading.Event``) is set it finishes its current batch and raises ``Interrupted``.

Adding a job function is one line in ``REGISTRY``. Only enabled jobs must name a known
function: a disabled file may name one that this version does not have yet (the example send
in jobs/ does), so it loads, is listed, and is checked in full once it is enabled.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from clubjapon_ops import jobs
from clubjapon_ops.bounces.mailbox import IMAP_NEEDS
from clubjapon_ops.errors import ConfigError, Interrupted
from clubjapon_ops.jobs.records import Report, RunLabels
from clubjapon_ops.jobs.spec import JobSpec
from clubjapon_ops.newsletter.content import is_slug
from clubjapon_ops.settings import Settings, unset
from clubjapon_ops.store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobFunction:
    """A callable a job file may name, and the arguments ([args]) it may be given."""

    call: Callable[..., Report]
    args: Mapping[str, type] = field(default_factory=dict)  # name -> its TOML type
    help: str = ""
    # Settings (environment names) the job needs: without them the scheduler leaves the job
    # out, saying so, as if disabled; `run` says which are missing.
    needs: tuple[str, ...] = ()


REGISTRY: dict[str, JobFunction] = {
    "crm_sync": JobFunction(jobs.crm_sync, {"full": bool},
                            "pull contacts from the CRM, then write suppressions back to it"),
    "crm_push": JobFunction(jobs.crm_push, {}, "write suppressions back to the CRM"),
    "campaign_reports": JobFunction(
        jobs.campaign_reports, {"days": int}, "write the HTML report of editions sent lately"
    ),
    "outbox_cleanup": JobFunction(
        jobs.outbox_cleanup, {"older_than_days": int}, "delete old messages from the outbox"
    ),
    "send_campaign": JobFunction(jobs.send_campaign, {"edition": str},
                                 "send an edition to its audience (lint first)"),
    "bounce_mailbox": JobFunction(
        jobs.bounce_mailbox, {}, "read bounces and complaints from the IMAP bounce mailbox",
        needs=IMAP_NEEDS,
    ),
}

_TYPE_NAMES = {bool: "true or false", int: "a whole number", float: "a number", str: "a text"}

Wait = Callable[[float], bool]  # waits up to n seconds; True means "stop now"


def check_functions(specs: Iterable[JobSpec], registry: Mapping[str, JobFunction]) -> None:
    """Raise ConfigError, naming file and field, for an unknown function or a wrong argument."""
    for spec in specs:
        function = registry.get(spec.function)
        if function is None:
            if spec.enabled:
                raise ConfigError(
                    f"{spec.file}: function: unknown job function {spec.function!r} "
                    f"(known: {', '.join(sorted(registry))}); disable the job to keep the file"
                )
            continue
        for key, value in spec.args.items():
            kind = function.args.get(key)
            if kind is None:
                takes = ", ".join(sorted(function.args)) or "none"
                raise ConfigError(
                    f"{spec.file}: args.{key}: {spec.function} takes no such argument "
                    f"(takes: {takes})"
                )
            if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
                expected = _TYPE_NAMES.get(kind, kind.__name__)
                raise ConfigError(f"{spec.file}: args.{key}: expected {expected}, got {value!r}")
            if key == "edition" and not (isinstance(value, str) and is_slug(value)):
                # Only its shape here: the file may be written after the job is scheduled;
                # the send itself resolves it (newsletter.content.resolve_edition).
                raise ConfigError(
                    f"{spec.file}: args.edition: {value!r} is not an edition name: expected "
                    "the stem of a file in config/editions/, like 2025-11-04-lille"
                )


def missing_settings(spec: JobSpec, settings: Settings,
                     registry: Mapping[str, JobFunction] = REGISTRY) -> list[str]:
    """The settings the job's function needs that are not set (none: it may run)."""
    function = registry.get(spec.function)
    if function is None:
        return []
    return unset(settings, function.needs)


def resolve(spec: JobSpec, registry: Mapping[str, JobFunction]) -> JobFunction:
    """Return the job's function, or raise ConfigError if this version does not have it."""
    function = registry.get(spec.function)
    if function is None:
        raise ConfigError(
            f"{spec.file}: function: job function {spec.function!r} is not available in this "
            f"version (known: {', '.join(sorted(registry))})"
        )
    check_functions([spec], registry)
    return function


def execute(
    spec: JobSpec,
    settings: Settings,
    store: Store,
    *,
    trigger: str,
    stop: threading.Event,
    registry: Mapping[str, JobFunction] = REGISTRY,
    wait: Wait | None = None,
) -> Report:
    """Run a declared job once, now, retrying as its file says; every attempt is recorded."""
    function = resolve(spec, registry)
    pause: Wait = wait or stop.wait
    attempts = spec.retry.attempts
    for attempt in range(1, attempts + 1):
        context = {"job": spec.name, "attempt": attempt, "attempts": attempts, "trigger": trigger}
        log.info("job started", extra=context)
        try:
            with jobs.labelled(RunLabels(declared_job=spec.name, attempt=attempt)):
                report = function.call(settings, store, trigger=trigger, stop=stop, **spec.args)
        except (ConfigError, Interrupted):
            raise  # retrying cannot fix a setting, and a stop request is not a failure
        except Exception as exc:
            error = str(exc) or type(exc).__name__
            if attempt == attempts:
                log.error("job failed", extra={**context, "error": error})
                raise
            # A provider's Retry-After, when longer than the file's delay, wins.
            delay = max(spec.retry.delay, getattr(exc, "retry_after", None) or 0.0)
            log.warning(
                "job attempt failed", extra={**context, "error": error, "retry_in_s": delay}
            )
            if stop.is_set() or pause(delay):
                log.warning("retry abandoned: stopping", extra=context)
                raise
            continue
        log.info("job finished", extra={**context, "status": report.status,
                                        "counts": report.counts()})
        return report
    raise AssertionError("unreachable: the last attempt returns or raises")

