"""The systemd units under deploy/: systemd accepts them, and the CLI their ExecStart runs."""

from __future__ import annotations

import getpass
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UNITS = sorted((REPO / "deploy").glob("*.service"))
INSTALLED_AT = "/opt/clubjapon-ops"


def _exec_start(unit: Path) -> list[str]:
    line = next(x for x in unit.read_text().splitlines() if x.startswith("ExecStart="))
    return shlex.split(line.removeprefix("ExecStart="))


def test_there_is_a_unit_for_the_scheduler_and_one_for_the_public_app() -> None:
    commands = {_subcommand(u) for u in UNITS}
    assert commands == {"scheduler", "web"}


def _subcommand(unit: Path) -> str:
    return next(arg for arg in _exec_start(unit)[1:] if not arg.startswith("-"))


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_systemd_accepts_the_unit(unit: Path, tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    # As installed here: this checkout for /opt/clubjapon-ops, this user for 'clubjapon'.
    user = getpass.getuser()
    text = unit.read_text().replace(INSTALLED_AT, str(REPO))
    text = re.sub(r"^(User|Group)=.*$", lambda m: f"{m[1]}={user}", text, flags=re.M)
    local = tmp_path / unit.name
    local.write_text(text)
    result = subprocess.run([analyze, "verify", str(local)], capture_output=True, text=True,
                            timeout=60)
    said = result.stdout + result.stderr
    # Lines about other units (the host's own) are not this file's business.
    ours = [line for line in said.splitlines() if unit.name in line or str(local) in line]
    assert result.returncode == 0 and not ours, said


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_the_command_a_unit_runs_is_one_the_cli_takes(unit: Path) -> None:
    program, *args = _exec_start(unit)
    assert program == f"{INSTALLED_AT}/.venv/bin/clubjapon-ops"
    # --help is eager, but every option before it must still be one the CLI knows.
    result = subprocess.run([sys.executable, "-m", "clubjapon_ops", *args, "--help"],
                            capture_output=True, text=True, timeout=60, cwd=REPO)
    assert result.returncode == 0, result.stderr


def test_the_public_app_listens_where_nginx_proxies() -> None:
    args = _exec_start(REPO / "deploy" / "clubjapon-ops-web.service")
    host, port = args[args.index("--host") + 1], args[args.index("--port") + 1]
    nginx = (REPO / "deploy" / "nginx.conf").read_text()
    assert f"server {host}:{port};" in nginx
