"""Secrets checked at start: the CLI as a subprocess, with its real exit code and stderr."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import free_port

pytestmark = pytest.mark.e2e
GOOD = "0123456789abcdef"  # 16 characters: the shortest accepted


def run(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items()
            if not k.startswith(("CLUBJAPON_", "HUBSPOT_", "BREVO_", "SMTP_", "SENDGRID_"))}
    full.update({"CLUBJAPON_HOME": str(home), **env})
    try:
        return subprocess.run([sys.executable, "-m", "clubjapon_ops", *args], env=full,
                              capture_output=True, text=True, timeout=60, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{' '.join(args)} did not stop: it started instead of refusing")


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / "config").mkdir()
    return tmp_path


def test_web_without_the_signing_key_refuses_to_start(home: Path) -> None:
    result = run(home, "web", "--port", str(free_port()))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "CLUBJAPON_SECRET" in result.stderr and "Serving" not in result.stdout


@pytest.mark.parametrize("variable", ["CLUBJAPON_SECRET", "BREVO_WEBHOOK_SECRET"])
@pytest.mark.parametrize("command", ["config", "web"])
def test_a_short_secret_stops_every_command_at_start(
    home: Path, variable: str, command: str
) -> None:
    env = {"CLUBJAPON_SECRET": GOOD, variable: "abc1234567890de"}  # 15 characters
    args = ["web", "--port", str(free_port())] if command == "web" else [command]
    result = run(home, *args, **env)
    assert result.returncode == 2, result.stdout + result.stderr
    assert variable in result.stderr and "at least 16 characters" in result.stderr
    assert "abc1234567890de" not in result.stderr + result.stdout


def test_secrets_of_16_characters_are_enough(home: Path) -> None:
    result = run(home, "config", CLUBJAPON_SECRET=GOOD, BREVO_WEBHOOK_SECRET=GOOD[::-1])
    assert result.returncode == 0, result.stderr
    assert GOOD not in result.stdout
