"""Settings as ops meets them, through the CLI: `cp .env.example .env` as docs/deploy.md says,
then edits in config/clubjapon.toml; a misspelt key; a .env value shadowing the TOML's."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from clubjapon_ops.settings import SPECS
from tests.conftest import REPO

pytestmark = pytest.mark.e2e


def config(home: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CLUBJAPON_", "SMTP_", "HUBSPOT_", "BREVO_", "SENDGRID_",
                                "BOUNCE_"))}
    env["CLUBJAPON_HOME"] = str(home)
    return subprocess.run([sys.executable, "-m", "clubjapon_ops", "config"], env=env,
                          capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / "config").mkdir()
    shutil.copy(REPO / "config" / "clubjapon.toml", tmp_path / "config" / "clubjapon.toml")
    shutil.copy(REPO / ".env.example", tmp_path / ".env")  # as docs/deploy.md says
    return tmp_path


def edit_toml(home: Path, old: str, new: str) -> None:
    path = home / "config" / "clubjapon.toml"
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")


def row(output: str, name: str) -> str:
    return next(line for line in output.splitlines() if line.startswith(f"{name} "))


def test_after_copying_env_example_the_toml_edits_take_effect(home: Path) -> None:
    edit_toml(home, "send_rate = 0", "send_rate = 12")
    edit_toml(home, '# smtp_host = "127.0.0.1"', 'smtp_host = "relay.example.org"')
    result = config(home)
    assert result.returncode == 0, result.stderr
    assert row(result.stdout, "CLUBJAPON_SEND_RATE").split() == [
        "CLUBJAPON_SEND_RATE", "12.0", "[config/clubjapon.toml]"]
    assert row(result.stdout, "SMTP_HOST").split() == [
        "SMTP_HOST", "relay.example.org", "[config/clubjapon.toml]"]
    assert "overrides" not in result.stdout


def test_a_dotenv_value_that_shadows_the_tomls_is_marked(home: Path) -> None:
    edit_toml(home, "send_rate = 0", "send_rate = 12")
    with (home / ".env").open("a", encoding="utf-8") as env:
        env.write("CLUBJAPON_SEND_RATE=5\nCLUBJAPON_CRM=csv\n")
    result = config(home)
    assert result.returncode == 0, result.stderr
    assert row(result.stdout, "CLUBJAPON_SEND_RATE").endswith(
        "5.0  [.env]  (overrides config/clubjapon.toml's 12.0: change or remove it in .env)")
    assert "overrides" not in row(result.stdout, "CLUBJAPON_CRM")  # the same value: no shadow


def test_a_misspelt_toml_key_gets_the_name_meant_and_no_list_of_names(home: Path) -> None:
    edit_toml(home, "send_rate = 0", "sendrate = 0")
    result = config(home)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"configuration error: {home / 'config' / 'clubjapon.toml'}: unknown setting "
        "[settings].sendrate: did you mean send_rate?")
    assert not any(spec.attr in result.stderr for spec in SPECS if spec.secret)
