"""The jobs: plain functions that the CLI and the scheduler both call, each returning a report.

One module per job (sync, push, send, cleanup, reports, bounces), the run records they
share, and the registry of the functions a jobs/ file may name (jobs.registry, which the
scheduler and `run` use). The names below are the jobs' public face:
`from clubjapon_ops import jobs`.
"""

from clubjapon_ops.jobs.bounces import BounceReport, bounce_mailbox
from clubjapon_ops.jobs.cleanup import CleanupReport, outbox_cleanup
from clubjapon_ops.jobs.push import PushReport, crm_push, process_events, push_suppressions
from clubjapon_ops.jobs.records import Report, RunLabels, labelled, run_recorded
from clubjapon_ops.jobs.reports import ReportsWritten, campaign_reports
from clubjapon_ops.jobs.send import (
    SendOptions,
    ensure_no_send_running,
    lint_before_send,
    newsletter_for_sending,
    refuse_draft,
    refuse_workers_on,
    send_campaign,
)
from clubjapon_ops.jobs.sync import COMMIT_BATCH, SyncReport, crm_sync

__all__ = [
    "COMMIT_BATCH", "BounceReport", "CleanupReport", "PushReport", "Report", "ReportsWritten",
    "RunLabels",
    "SendOptions", "SyncReport", "bounce_mailbox", "campaign_reports", "crm_push", "crm_sync",
    "ensure_no_send_running", "labelled", "lint_before_send", "newsletter_for_sending",
    "outbox_cleanup", "process_events", "push_suppressions", "refuse_draft", "refuse_workers_on",
    "run_recorded", "send_campaign",
]
