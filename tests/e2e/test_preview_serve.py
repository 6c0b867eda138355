"""`preview --serve` as marketing runs it: a real server on 127.0.0.1 in a subprocess."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from clubjapon_ops.delivery.tokens import TokenSigner
from tests.conftest import REPO, SAMPLE_CSV, free_port
from tests.newsletter.conftest import SLUG

pytestmark = pytest.mark.e2e

SECRET = "serve-test-secret-3c9e1b7d5f2a4c6e8a0b"
BREVO_SECRET = "brevo-hook-secret-9d2f4b6a8c0e1f3a"
PASSWORD = "preview-password-7e5c3a1f9b2d4e6f"
STORED = "haruto.sato@hokuto.example.com"


def environment(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLUBJAPON_")}
    env.update({"CLUBJAPON_HOME": str(home), "CLUBJAPON_CSV_PATH": str(SAMPLE_CSV),
                "CLUBJAPON_SECRET": SECRET, "BREVO_WEBHOOK_SECRET": BREVO_SECRET, **extra})
    return env


@dataclass
class Server:
    """A running `clubjapon-ops` server and what it printed once stopped."""

    process: subprocess.Popen[str]
    base: str

    def stop(self) -> str:
        """Stop it as Ctrl-C would; return everything it wrote."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            out, err = self.process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            out, err = self.process.communicate()
        return out + err


def start(home: Path, *args: str, **env: str) -> Server:
    """Start `clubjapon-ops ARGS --port P` and wait until it accepts connections."""
    # The port is chosen here and bound by the server: another process on the machine may
    # take it in between, and then the server stops saying so; try another port.
    for _ in range(5):
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "clubjapon_ops", "--log-json", *args, "--port", str(port)],
            env=environment(home, **env), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if process.poll() is not None:
                break
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return Server(process, f"http://127.0.0.1:{port}")
            except OSError:
                time.sleep(0.05)  # polling for readiness, bounded by the deadline
        output = Server(process, "").stop()
        if "in use" not in output:
            break
    raise AssertionError(f"the server did not start: {output}")


@pytest.fixture
def home(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "config", tmp_path / "config")
    shutil.copytree(REPO / "templates", tmp_path / "templates")
    env = environment(tmp_path)
    subprocess.run([sys.executable, "-m", "clubjapon_ops", "-q", "sync"], env=env, check=True,
                   capture_output=True, timeout=60)
    return tmp_path


@pytest.fixture
def served(home: Path) -> Iterator[Server]:
    server = start(home, "preview", SLUG, "--serve")
    yield server
    server.stop()


def test_serving_beyond_loopback_without_a_password_exits_2(home: Path) -> None:
    # 192.0.2.1 (TEST-NET-1) is no address of this machine: nothing is ever bound to it.
    result = subprocess.run(
        [sys.executable, "-m", "clubjapon_ops", "preview", SLUG, "--serve", "--host",
         "192.0.2.1", "--port", str(free_port())],
        env=environment(home), capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 2, result.stderr
    assert "CLUBJAPON_PREVIEW_PASSWORD" in result.stderr


def test_a_page_that_rebinds_its_name_to_loopback_reads_nothing(served: Server) -> None:
    port = served.base.rsplit(":", 1)[1]
    for path in ("/", f"/preview/{SLUG}?lang=ja&contact={STORED}", f"/preview/{SLUG}/email.txt"):
        for host in ("evil.example", f"evil.example:{port}"):
            answer = requests.get(served.base + path, headers={"Host": host}, timeout=10)
            assert answer.status_code == 421, (host, path)
            assert STORED not in answer.text and SLUG not in answer.text
        own = requests.get(served.base + path, headers={"Host": f"localhost:{port}"}, timeout=10)
        assert own.status_code == 200
    assert STORED in requests.get(f"{served.base}/preview/{SLUG}?lang=ja&contact={STORED}",
                                  timeout=10).text  # Host 127.0.0.1:PORT, as the URL says


def test_web_answers_only_to_its_public_host_and_loopback(home: Path) -> None:
    server = start(home, "web", CLUBJAPON_PUBLIC_URL="https://news.club.example")
    try:
        for host in ("evil.example", "news.club.example.evil.example"):
            answer = requests.get(server.base + "/healthz", headers={"Host": host}, timeout=10)
            assert answer.status_code == 421 and "/healthz" not in answer.text
        for host in ("news.club.example", server.base.removeprefix("http://")):
            answer = requests.get(server.base + "/healthz", headers={"Host": host}, timeout=10)
            assert answer.status_code == 200
    finally:
        server.stop()


def test_with_a_password_every_page_asks_for_it(home: Path) -> None:
    server = start(home, "preview", SLUG, "--serve", CLUBJAPON_PREVIEW_PASSWORD=PASSWORD)
    try:
        for path in ("/", f"/preview/{SLUG}", f"/preview/{SLUG}/email.html",
                     f"/preview/{SLUG}/email.txt", "/preview/nowhere"):
            bare = requests.get(server.base + path, timeout=10, allow_redirects=False)
            assert bare.status_code == 401, path
            assert bare.headers["WWW-Authenticate"].startswith("Basic ")
            assert STORED not in bare.text
            wrong = requests.get(server.base + path, auth=("marketing", PASSWORD[:-1]),
                                 timeout=10, allow_redirects=False)
            assert wrong.status_code == 401, path
        page = requests.get(f"{server.base}/preview/{SLUG}?lang=ja", auth=("marketing", PASSWORD),
                            timeout=10)
        assert page.status_code == 200 and STORED in page.text
    finally:
        output = server.stop()
    assert PASSWORD not in output


def test_the_server_logs_no_token_secret_or_address(served: Server) -> None:
    token = TokenSigner(SECRET).make_legacy(SLUG, STORED, "ja")
    requests.post(f"{served.base}/events/brevo/{BREVO_SECRET}", json={}, timeout=10)
    requests.get(f"{served.base}/unsubscribe/{token}", timeout=10)
    requests.post(f"{served.base}/unsubscribe/{token}", timeout=10)
    page = requests.get(f"{served.base}/preview/{SLUG}?lang=ja&contact={STORED}", timeout=10)
    assert page.status_code == 200
    output = served.stop()
    assert token not in output and token[:16] not in output
    assert BREVO_SECRET not in output and STORED not in output


def test_send_me_a_test_from_the_served_preview(home: Path, served: Server) -> None:
    browser = requests.Session()  # keeps the form's cookie, as a browser does
    page = browser.get(f"{served.base}/preview/{SLUG}?lang=en", timeout=10)
    assert page.status_code == 200
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
    assert found, "no send-me-a-test form on the served page"
    form = {"to": "me@example.org", "lang": ["en", "ja"], "csrf": found.group(1)}
    # Posted from another site: no cookie goes with it (SameSite=Strict), nothing is sent.
    forged = requests.post(f"{served.base}/preview/{SLUG}/test-copies", data=form, timeout=10)
    assert forged.status_code == 403
    sent = browser.post(f"{served.base}/preview/{SLUG}/test-copies", data=form, timeout=30)
    assert sent.status_code == 200, sent.text
    folder = home / "var" / "outbox" / "test-copies" / SLUG
    assert sorted(p.name for p in folder.glob("*.eml")) == [
        "en-me@example.org-1.eml", "ja-me@example.org-1.eml"]
    assert "rendered as the sample reader Emily Clarke" in sent.text
