"""A throwaway dovecot IMAP server on 127.0.0.1, for the bounce mailbox tests and bench.

Debian's dovecot-imapd, run from a folder of its own with its own configuration (never the
system's): any user name logs in with PASSWORD (a static passdb), each user's mail is a
maildir under the folder; plain IMAP with STARTTLS on one port, IMAPS on another, with a
self-signed certificate made for the run (``cert``: trust it to test tls and starttls).
As root (CI) the login process runs as dovenull and mail is kept as the dovecot user, as
dovecot requires; otherwise everything runs as the current user.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from imapclient import IMAPClient

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
PASSWORD = "test-imap-password-1234"
HOW_TO = ("dovecot not found: install Debian's dovecot-imapd (apt-get install dovecot-imapd; "
          ".ci/run does) to run the bounce mailbox tests")


def dovecot_available() -> bool:
    """Whether the dovecot binary is installed."""
    return Path(DOVECOT).is_file() and os.access(DOVECOT, os.X_OK)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _users() -> tuple[str, str, str]:
    """(internal user, login user, mail user) dovecot may run as here."""
    if os.geteuid() != 0:
        me = pwd.getpwuid(os.geteuid()).pw_name
        return me, me, me
    for name in ("dovecot", "dovenull"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            pytest.skip(f"running as root without the {name!r} user that dovecot-core creates")
    return "dovecot", "dovenull", "dovecot"


@dataclass
class Dovecot:
    """A running server: where it listens, and helpers to fill a user's mailbox."""

    folder: Path
    port: int
    tls_port: int
    cert: Path
    host: str = "127.0.0.1"
    password: str = PASSWORD

    def new_user(self) -> str:
        """A user name nobody used yet: an empty mailbox."""
        return f"u{uuid.uuid4().hex[:12]}"

    def client(self, user: str) -> IMAPClient:
        """A logged-in IMAP session of ``user``."""
        client = IMAPClient(self.host, self.port, ssl=False, timeout=30)
        client.login(user, self.password)
        return client

    def append(self, user: str, messages: Iterable[bytes], folder: str = "INBOX") -> None:
        """Put messages in a folder of ``user`` (IMAP APPEND, many per command)."""
        client = self.client(user)
        try:
            if not client.folder_exists(folder):
                client.create_folder(folder)
            batch: list[bytes] = []
            for message in messages:
                batch.append(message)
                if len(batch) >= 500:
                    client.multiappend(folder, batch)
                    batch = []
            if batch:
                client.multiappend(folder, batch)
        finally:
            client.logout()

    def count(self, user: str, folder: str) -> int:
        """How many messages (not marked deleted) a folder of ``user`` holds."""
        client = self.client(user)
        try:
            if not client.folder_exists(folder):
                return 0
            client.select_folder(folder, readonly=True)
            return len(client.search(["UNDELETED"]))
        finally:
            client.logout()

    def env(self, user: str, **extra: str) -> dict[str, str]:
        """The BOUNCE_IMAP_* settings to read ``user``'s mailbox."""
        return {"BOUNCE_IMAP_HOST": self.host, "BOUNCE_IMAP_PORT": str(self.port),
                "BOUNCE_IMAP_USERNAME": user, "BOUNCE_IMAP_PASSWORD": self.password,
                "BOUNCE_IMAP_SECURITY": "none", **extra}

    def stop(self) -> None:
        """Stop the server."""
        subprocess.run([DOVECOT, "-c", str(self.folder / "dovecot.conf"), "stop"],
                       check=False, capture_output=True, timeout=30)


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A key and a certificate for 127.0.0.1 (and localhost), valid for a day."""
    from datetime import UTC, datetime, timedelta
    from ipaddress import IPv4Address

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.IPAddress(IPv4Address("127.0.0.1")), x509.DNSName("localhost")]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    key_path, cert_path = folder / "key.pem", folder / "cert.pem"
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path


def start_dovecot(folder: Path, prefix: str = "") -> Dovecot:
    """Start dovecot with its configuration, state and mail under ``folder``; ``prefix``:
    every folder under it, as Courier and Cyrus keep them ("INBOX.", separator ".")."""
    if not dovecot_available():
        pytest.skip(HOW_TO)
    # Ports are chosen here and bound by dovecot: another process may take one in between,
    # and dovecot then refuses to start; try other ports.
    for _ in range(5):
        try:
            return _start_dovecot(folder, prefix, _free_port(), _free_port())
        except _PortTaken:
            continue
    raise RuntimeError("dovecot did not start: its ports were taken five times in a row")


class _PortTaken(Exception):
    """Dovecot could not listen on a port chosen for it."""


def _start_dovecot(folder: Path, prefix: str, port: int, tls_port: int) -> Dovecot:
    """Start dovecot on these ports, or raise _PortTaken."""
    internal, login, mail = _users()
    for sub in ("run", "state", "mail"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    # The mail user writes the maildirs, and must be able to reach them.
    folder.chmod(0o755)
    info = pwd.getpwnam(mail)
    os.chown(folder / "mail", info.pw_uid, info.pw_gid)
    key, cert = _self_signed(folder)
    (folder / "dovecot.conf").write_text(f"""\
base_dir = {folder}/run
state_dir = {folder}/state
log_path = {folder}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
default_internal_user = {internal}
default_internal_group = {pwd.getpwnam(internal).pw_name}
default_login_user = {login}
first_valid_uid = 0
mail_location = maildir:{folder}/mail/%u
mail_fsync = never
passdb {{
  driver = static
  args = password={PASSWORD}
}}
userdb {{
  driver = static
  args = uid={info.pw_uid} gid={info.pw_gid} home={folder}/mail/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls_port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
""" + (f"""namespace inbox {{
  inbox = yes
  prefix = {prefix}
  separator = .
}}
""" if prefix else ""), encoding="utf-8")
    # Its daemon keeps the standard streams: a file, not a pipe nobody would close.
    with (folder / "start.log").open("wb") as out:
        result = subprocess.run([DOVECOT, "-c", str(folder / "dovecot.conf")],
                                stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                timeout=30, check=False)
    if result.returncode != 0:
        said = (folder / "start.log").read_text(errors="replace").strip()
        log = folder / "dovecot.log"
        if "Address already in use" in said + (log.read_text(errors="replace") if log.is_file()
                                                else ""):
            raise _PortTaken(said)
        raise RuntimeError("dovecot did not start: " + said)
    server = Dovecot(folder, port, tls_port, cert)
    deadline = time.monotonic() + 15
    while True:
        try:
            server.client(server.new_user()).logout()
            return server
        except OSError:
            if time.monotonic() > deadline:
                server.stop()
                log = (folder / "dovecot.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"dovecot does not answer on port {port}: {log}") from None
            time.sleep(0.1)


@contextmanager
def running_dovecot(prefix: str = "") -> Iterator[Dovecot]:
    """A dovecot in a folder of its own under /tmp, removed afterwards.

    Not under pytest's tmp_path: its parents are owner-only, and as root the mail user
    (dovecot) must reach the maildirs.
    """
    folder = Path(tempfile.mkdtemp(prefix="clubjapon-dovecot-"))
    try:
        server = start_dovecot(folder, prefix)
        try:
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
