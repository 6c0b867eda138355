"""A busy port stops `web` and `preview --serve` before they print an address: one sentence
naming the port and, when it is one of ours, the command holding it; exit 2."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.test_preview_serve import environment, home, start  # noqa: F401
from tests.newsletter.conftest import SLUG

pytestmark = pytest.mark.e2e


def run(home: Path, *args: str) -> subprocess.CompletedProcess[str]:  # noqa: F811
    return subprocess.run([sys.executable, "-m", "clubjapon_ops", *args],
                          env=environment(home), capture_output=True, text=True, timeout=60,
                          check=False)


def port_of(base: str) -> str:
    return base.rsplit(":", 1)[1]


def test_web_on_the_previews_port_names_the_preview_and_exits_2(home: Path) -> None:  # noqa: F811
    preview = start(home, "preview", SLUG, "--serve")
    try:
        port = port_of(preview.base)
        result = run(home, "web", "--port", port)
    finally:
        preview.stop()
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Serving on" not in result.stdout
    assert result.stderr.splitlines()[-1] == (
        f"configuration error: port {port} on 127.0.0.1 is already in use (probably "
        "`clubjapon-ops preview --serve`): stop it or choose another with --port")
    assert "Traceback" not in result.stderr and "Errno" not in result.stderr


def test_the_preview_on_webs_port_names_web(home: Path) -> None:  # noqa: F811
    web = start(home, "web")
    try:
        port = port_of(web.base)
        result = run(home, "preview", SLUG, "--serve", "--port", port)
    finally:
        web.stop()
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Preview of" not in result.stdout
    assert f"port {port} on 127.0.0.1 is already in use (probably `clubjapon-ops web`)" in (
        result.stderr)


def test_a_port_held_by_another_program_says_so(home: Path) -> None:  # noqa: F811
    with socket.create_server(("127.0.0.1", 0)) as other:  # listens, never answers
        port = str(other.getsockname()[1])
        result = run(home, "preview", SLUG, "--serve", "--port", port)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Preview of" not in result.stdout
    assert f"port {port} on 127.0.0.1 is already in use (by a program that is not one of " in (
        result.stderr)
    assert "choose another with --port" in result.stderr
