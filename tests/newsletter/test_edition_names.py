"""Edition names: one resolver decides, for every command, what names an edition file."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from clubjapon_ops import cli, jobs
from clubjapon_ops.errors import ConfigError, UnknownEdition
from clubjapon_ops.newsletter.content import edition_path, list_editions, resolve_edition
from clubjapon_ops.newsletter.service import find_edition
from clubjapon_ops.settings import load_settings
from clubjapon_ops.store import open_store
from tests.conftest import SAMPLE_CSV
from tests.newsletter.conftest import SLUG


def test_a_slug_with_a_file_resolves_to_itself(project: Path) -> None:
    assert resolve_edition(project, SLUG) == SLUG
    assert edition_path(project, SLUG) == project / "config" / "editions" / f"{SLUG}.yaml"


@pytest.mark.parametrize(
    "name",
    ["./2025-11-04-lille", "2025-11-04-lille.yaml", "2025-11-04-Lille", "2025-11-04-lill",
     "2025-11-04-lille\n", "editions/2025-11-04-lille", " 2025-11-04-lille"],
)
def test_a_near_miss_is_refused_with_did_you_mean(project: Path, name: str) -> None:
    with pytest.raises(UnknownEdition, match=f"did you mean '{SLUG}'"):
        resolve_edition(project, name)


@pytest.mark.parametrize("name", ["../x", "/etc/passwd", "", "..", "2025-11-05-x/../../x"])
def test_nothing_builds_a_path_from_an_unchecked_name(project: Path, name: str) -> None:
    (project / "config" / "x.yaml").write_text("number: 1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=f"editions: {SLUG}"):
        edition_path(project, name)
    settings = load_settings(project, environ={})
    with pytest.raises(ConfigError):
        find_edition(settings, name)


def test_a_well_formed_slug_without_a_file_is_unknown(project: Path) -> None:
    expected = f"no edition '2025-11-05-lille'.*did you mean '{SLUG}'"
    with pytest.raises(UnknownEdition, match=expected):
        resolve_edition(project, "2025-11-05-lille")


def test_editions_known_elsewhere_count_for_reading(project: Path) -> None:
    old = "2024-06-01-roubaix"
    assert resolve_edition(project, old, known=[old]) == old
    with pytest.raises(UnknownEdition):
        resolve_edition(project, "../x", known=["../x"])  # a bad name stays bad


def test_only_files_named_like_an_edition_are_editions(project: Path) -> None:
    folder = project / "config" / "editions"
    shutil.copy(folder / f"{SLUG}.yaml", folder / "draft.yaml")
    assert list_editions(project) == [SLUG]
    with pytest.raises(UnknownEdition):
        resolve_edition(project, "draft")


def run_cli(root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
            *args: str) -> tuple[int, str, str]:
    monkeypatch.setenv("CLUBJAPON_HOME", str(root))
    monkeypatch.setenv("CLUBJAPON_CSV_PATH", str(SAMPLE_CSV))
    monkeypatch.setitem(cli._state, "app", cli.App())
    with pytest.raises(SystemExit) as info:
        cli.main(["--log-text", "-q", *args])
    app: cli.App = cli._state["app"]
    if app._store is not None:
        app._store.close()
    out = capsys.readouterr()
    return int(info.value.code or 0), out.out, out.err


@pytest.mark.parametrize(
    "args",
    [["preview", "../x"], ["preview", "../x", "--check"], ["send", "../x", "--dry-run"],
     ["status", "../x"], ["report", "../x"], ["preview", "2025-11-05-lille"],
     ["status", "2025-11-05-lille"], ["report", "2025-11-05-lille"]],
)
def test_every_command_refuses_an_unknown_edition_with_exit_2(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    args: list[str],
) -> None:
    # A file that '../x' would reach from config/editions/ if the name went unchecked.
    shutil.copy(project / "config" / "editions" / f"{SLUG}.yaml", project / "config" / "x.yaml")
    code, out, err = run_cli(project, monkeypatch, capsys, *args)
    assert code == 2, out + err
    assert err.startswith("configuration error: ") and f"{SLUG}" in err
    assert not (project / "var" / "x").exists()


def test_send_of_dot_slash_slug_suggests_the_slug(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(project, monkeypatch, capsys, "send", f"./{SLUG}", "--dry-run")
    assert code == 2
    assert f"did you mean '{SLUG}'" in err


def test_status_and_report_of_an_edition_only_in_the_ledger_still_work(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = load_settings(project, environ={"CLUBJAPON_CSV_PATH": str(SAMPLE_CSV)})
    store = open_store(settings.database_url)
    try:
        jobs.crm_sync(settings, store)
        jobs.send_campaign(settings, store, SLUG, options=jobs.SendOptions(limit=3, force=True))
    finally:
        store.close()
    (project / "config" / "editions" / f"{SLUG}.yaml").unlink()  # the file went, the ledger stays
    code, out, err = run_cli(project, monkeypatch, capsys, "status", SLUG)
    assert code == 0, err
    assert "recipient(s) in the ledger" in out and "sent 3" in out
    code, out, err = run_cli(project, monkeypatch, capsys, "report", SLUG)
    assert code == 0, err
    code, _, err = run_cli(project, monkeypatch, capsys, "send", SLUG, "--dry-run")
    assert code == 2 and "no edition" in err
