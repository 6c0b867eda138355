from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from clubjapon_ops.errors import ConfigError
from clubjapon_ops.jobfiles import load_job_files, parse_duration
from clubjapon_ops.scheduler import load_jobs

REPO = Path(__file__).resolve().parents[2]

GOOD = """\
function = "crm_sync"
enabled = true
[trigger]
cron = "30 2 * * *"
"""


def write_job(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / f"{name}.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_shipped_job_files_load() -> None:
    specs = {spec.name: spec for spec in load_jobs(REPO / "jobs")}
    sync = specs["nightly-crm-sync"]
    assert (sync.function, sync.enabled, sync.cron) == ("crm_sync", True, "30 2 * * *")
    assert sync.timezone.key == "Europe/Paris"
    assert (sync.retry.attempts, sync.retry.delay) == (3, 600)
    assert sync.misfire_grace == timedelta(hours=20)
    send = specs["send-edition-example"]
    # Disabled, and naming a function this version does not have yet: it still loads.
    assert (send.function, send.enabled) == ("send_campaign", False)
    assert send.date == datetime(2026, 12, 10, 17, 0, tzinfo=UTC)
    assert specs["outbox-cleanup"].args == {"older_than_days": 30}


def test_defaults(tmp_path: Path) -> None:
    write_job(tmp_path / "jobs", "sync", GOOD)
    (spec,) = load_jobs(tmp_path / "jobs")
    assert spec.name == "sync" and spec.file == "jobs/sync.toml"
    assert spec.timezone.key == "Europe/Paris"
    assert (spec.retry.attempts, spec.retry.delay) == (1, 0)
    assert spec.misfire_grace == timedelta(hours=1)
    assert spec.args == {}


def test_a_local_date_is_read_in_the_job_time_zone(tmp_path: Path) -> None:
    write_job(tmp_path / "jobs", "once", """\
function = "crm_sync"
enabled = true
[trigger]
date = 2026-07-14T09:00:00
timezone = "Asia/Tokyo"
""")
    (spec,) = load_jobs(tmp_path / "jobs")
    assert spec.date == datetime(2026, 7, 14, 0, 0, tzinfo=UTC)
    assert spec.schedule == "once at 2026-07-14 09:00 (Asia/Tokyo)"


def test_other_files_and_a_missing_folder_are_ignored(tmp_path: Path) -> None:
    assert load_job_files(tmp_path / "nope") == []
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "README.md").write_text("not a job")
    assert load_job_files(tmp_path / "jobs") == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("function = \n", "jobs/bad.toml: cannot be read as TOML"),
        ('enabled = true\n[trigger]\ncron = "30 2 * * *"\n', "jobs/bad.toml: function: missing"),
        (GOOD.replace("enabled = true", 'enabled = "yes"'),
         "jobs/bad.toml: enabled: expected true or false"),
        (GOOD.replace("enabled", "enabeld"), "jobs/bad.toml: enabeld: unknown field"),
        (GOOD + "date = 2026-12-10T18:00:00\n", "jobs/bad.toml: trigger.cron: give exactly one"),
        ('function = "crm_sync"\nenabled = true\n[trigger]\n', "jobs/bad.toml: trigger.cron"),
        ('function = "crm_sync"\nenabled = true\n', "jobs/bad.toml: trigger: missing"),
        (GOOD + 'timezone = "Europe/Pariss"\n', "jobs/bad.toml: trigger.timezone: unknown"),
        (GOOD.replace("30 2 * * *", "30 2 * *"), "jobs/bad.toml: trigger.cron: Wrong number"),
        (GOOD.replace("30 2 * * *", "61 2 * * *"), "jobs/bad.toml: trigger.cron:"),
        (GOOD.replace("30 2 * * *", "30 2 * * 0"), "jobs/bad.toml: trigger.cron: write the day"),
        (GOOD + "misfire_grace = 0\n", "jobs/bad.toml: trigger.misfire_grace: must be longer"),
        (GOOD + 'misfire_grace = "soon"\n', "jobs/bad.toml: trigger.misfire_grace: expected"),
        ('function = "crm_sync"\nenabled = true\n[trigger]\ndate = 2026-12-10\n',
         "jobs/bad.toml: trigger.date: expected a date and time"),
        (GOOD + "[retry]\nattempts = 0\n", "jobs/bad.toml: retry.attempts: expected a whole"),
        (GOOD + "[retry]\nattempts = true\n", "jobs/bad.toml: retry.attempts: expected a whole"),
        (GOOD + '[retry]\ndelay = "ten minutes"\n', "jobs/bad.toml: retry.delay: expected a dur"),
        (GOOD + "[retry]\nbackoff = 2\n", "jobs/bad.toml: retry.backoff: unknown field"),
        ('name = "other"\n' + GOOD, "jobs/bad.toml: name: 'other' must be the file's name"),
        (GOOD.replace("crm_sync", "nope"), "jobs/bad.toml: function: unknown job function 'nope'"),
        (GOOD + "[args]\nfulll = true\n", "jobs/bad.toml: args.fulll: crm_sync takes no such"),
        (GOOD + '[args]\nfull = "yes"\n', "jobs/bad.toml: args.full: expected true or false"),
        (GOOD.replace("crm_sync", "send_campaign") + '[args]\nedition = "../x"\n',
         "jobs/bad.toml: args.edition: '../x' is not an edition name"),
        (GOOD.replace("crm_sync", "send_campaign") + '[args]\nedition = "./2025-11-04-lille"\n',
         "jobs/bad.toml: args.edition: './2025-11-04-lille' is not an edition name"),
    ],
    ids=lambda v: v if len(v) < 40 else None,
)
def test_an_invalid_file_is_refused_naming_file_and_field(
    tmp_path: Path, text: str, message: str
) -> None:
    write_job(tmp_path / "jobs", "good", GOOD)
    write_job(tmp_path / "jobs", "bad", text)
    with pytest.raises(ConfigError) as info:
        load_jobs(tmp_path / "jobs")
    assert str(info.value).startswith(message), str(info.value)


def test_a_disabled_job_may_name_an_unknown_function_but_its_fields_are_checked(
    tmp_path: Path,
) -> None:
    text = GOOD.replace("crm_sync", "send_campaign").replace("true", "false")
    write_job(tmp_path / "jobs", "later", text)
    assert [s.function for s in load_jobs(tmp_path / "jobs")] == ["send_campaign"]
    write_job(tmp_path / "jobs", "later", text.replace("30 2", "99 2"))
    with pytest.raises(ConfigError, match=r"jobs/later.toml: trigger.cron"):
        load_jobs(tmp_path / "jobs")


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(600, 600), (0.01, 0.01), ("90s", 90), ("10m", 600), ("2h", 7200), ("1h30m", 5400),
     ("3d", 259200)],
)
def test_durations(value: object, seconds: float) -> None:
    assert parse_duration(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value", ["", "10", "-5s", "10 minutes", -1, True, None])
def test_bad_durations(value: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(value)
