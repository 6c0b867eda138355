"""jobs/bounce-mailbox.toml: shipped enabled, scheduled only once the mailbox is configured."""

from __future__ import annotations

from pathlib import Path

from clubjapon_ops.scheduler import JobScheduler, load_jobs
from clubjapon_ops.settings import Settings
from clubjapon_ops.store import Store
from tests.conftest import REPO


def _scheduled(settings: Settings, store: Store) -> list[str]:
    return [spec.name for spec in JobScheduler(settings, store, load_jobs(REPO / "jobs")).specs]


def test_the_scheduler_leaves_the_job_out_until_the_mailbox_is_configured(
        settings: Settings, store: Store, root: Path) -> None:
    specs = {spec.name: spec for spec in load_jobs(REPO / "jobs")}
    job = specs["bounce-mailbox"]
    assert job.enabled and job.function == "bounce_mailbox"
    assert job.cron == "*/15 * * * *"
    assert "bounce-mailbox" not in _scheduled(settings, store)
    configured = settings.with_overrides(bounce_imap_host="imap.example.org",
                                         bounce_imap_username="bounces",
                                         bounce_imap_password="secret-password")
    assert "bounce-mailbox" in _scheduled(configured, store)
    assert "nightly-crm-sync" in _scheduled(settings, store)
