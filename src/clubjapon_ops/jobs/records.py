"""How every job run is recorded in job_runs: the base report, labels, run_recorded."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TypeVar

from clubjapon_ops.errors import Interrupted
from clubjapon_ops.processes import is_gone, process_id
from clubjapon_ops.reports import Report as Report  # re-exported: every job reports one
from clubjapon_ops.store import Store
from clubjapon_ops.store.runs import (
    abandon_dead_runs,
    finish_run,
    start_run,
)

log = logging.getLogger(__name__)


R = TypeVar("R", bound=Report)
@dataclass(frozen=True)
class RunLabels:
    """What job_runs records about where a run came from, beyond its trigger."""

    declared_job: str | None = None  # the jobs/ file, when the run came from one
    attempt: int = 1


# Set by the job runner around each attempt. A context variable rather than two more keyword
# arguments on every job function: the labels only concern the record, not the work.
_labels: ContextVar[RunLabels | None] = ContextVar("run_labels", default=None)


@contextmanager
def labelled(labels: RunLabels) -> Iterator[None]:
    """Record the runs started in this block (in this thread) with these labels."""
    token = _labels.set(labels)
    try:
        yield
    finally:
        _labels.reset(token)


def run_recorded(store: Store, job: str, trigger: str, work: Callable[[], R]) -> R:
    """Run ``work`` and record its outcome in job_runs, failures included."""
    labels = _labels.get() or RunLabels()
    with store.transaction() as conn:
        # Runs of processes that were killed never recorded their end: say so now.
        if abandoned := abandon_dead_runs(conn, is_gone):
            log.warning("runs whose process was killed marked abandoned",
                        extra={"runs": abandoned})
        run_id = start_run(
            conn, job, trigger, attempt=labels.attempt, declared_job=labels.declared_job,
            runner=process_id(),
        )
    try:
        report = work()
    except BaseException as exc:
        error = str(exc) or type(exc).__name__
        # Asked to stop: what was committed is consistent, so this is not a failure.
        status = "stopped" if isinstance(exc, Interrupted | KeyboardInterrupt) else "failed"
        with store.transaction() as conn:
            finish_run(conn, run_id, status, getattr(exc, "counts", {}), error)
        raise
    with store.transaction() as conn:
        finish_run(conn, run_id, report.status, report.counts())
    return report
