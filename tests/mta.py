"""A real mail path on 127.0.0.1: a Postfix relay signing with OpenDKIM, a second Postfix as
the readers' MX without 8BITMIME, rspamd to score what was delivered, and a DNS server of
the test's own that answers for all of them.

Debian's packages (postfix, opendkim, rspamd), each run from a folder of its own with its own
configuration, never the system's: nothing under /etc is written, no system service is used;
Postfix and OpenDKIM get their whole configuration from the folder, rspamd reads Debian's
stock rules from /etc/rspamd and its own overrides from the folder:

- the relay: ``postfix -c FOLDER/relay/etc``, smtpd on a free port offering 8BITMIME (as
  Postfix does), OpenDKIM as its milter signing every message From ``DOMAIN`` with selector
  ``RELAY_SELECTOR``, and ``relayhost`` the MX;
- the MX: ``postfix -c FOLDER/mx/etc``, smtpd on another port that does not offer 8BITMIME
  (``smtpd_discard_ehlo_keywords``), so the relay must convert an 8bit body to 7 bits on the
  way, as a real later hop may; it delivers to a Maildir (``delivered()`` polls for a
  recipient's file, found by its Delivered-To, with a deadline);
- rspamd: one normal worker on a third port, asked with ``rspamc`` (``scan()``), its DNS the
  test's server (so nothing it looks up leaves the machine: a name the server does not know
  does not exist, which is also what keeps rspamd's remote maps and fuzzy servers away);
- the DNS server: UDP on a fourth port: the DKIM keys, SPF, DMARC, the relay's names.

Postfix's master must start as root (it then runs its daemons as the postfix user): as
another user the tests skip and say so, as they do when a package is missing.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import socket
import socketserver
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from clubjapon_ops.delivery.dkim import dns_record

POSTFIX = shutil.which("postfix") or "/usr/sbin/postfix"
OPENDKIM = shutil.which("opendkim") or "/usr/sbin/opendkim"
RSPAMD = shutil.which("rspamd") or "/usr/bin/rspamd"
RSPAMC = shutil.which("rspamc") or "/usr/bin/rspamc"
RSPAMD_CONFDIR = Path("/etc/rspamd")  # Debian's stock configuration, read only
RSPAMD_SHAREDIR = Path("/usr/share/rspamd")  # and its rules and plugins
# The top-level domains rspamd's URL finder knows here: the edition's links (.org), the
# tests' addresses (.com, .net) and common ones a template might link to.
URL_TLDS = ("com", "org", "net", "fr", "jp", "eu", "io", "info", "be", "de", "uk")
HOW_TO = ("{what} not found: install Debian's postfix, opendkim and rspamd (apt-get install "
          "postfix opendkim rspamd; .ci/run does) to run the mail path tests")

DOMAIN = "example.org"  # the club's From domain, signed by us and by the relay
RELAY_SELECTOR = "relay"  # the relay's OpenDKIM key: relay._domainkey.example.org
# The address the relay sends from, as rspamd is told (a documentation range: never dialled).
RELAY_PUBLIC_IP = "192.0.2.25"
RELAY_HELO = "relay.example.org"


def missing() -> str | None:
    """The first program of the mail path that is not installed, or None."""
    for what, path in (("postfix", POSTFIX), ("opendkim", OPENDKIM), ("rspamd", RSPAMD),
                       ("rspamc", RSPAMC)):
        if not (Path(path).is_file() and os.access(path, os.X_OK)):
            return what
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def new_key() -> bytes:
    """A fresh 2048-bit RSA key, PEM (traditional OpenSSL form, as OpenDKIM and dkimpy read)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM,
                             serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())


# -- DNS ---------------------------------------------------------------------------------


class _DnsHandler(socketserver.BaseRequestHandler):
    server: _DnsServer

    def handle(self) -> None:
        data, sock = self.request
        try:
            query = dns.message.from_wire(data)
        except dns.exception.DNSException:  # not DNS: nothing to answer
            return
        reply = dns.message.make_response(query)
        reply.flags |= dns.flags.AA
        for question in query.question:
            name = question.name.to_text().lower()
            values = self.server.records.get((name, question.rdtype))
            if values:
                reply.answer.append(dns.rrset.from_text_list(
                    question.name, 60, dns.rdataclass.IN, question.rdtype, values))
            elif name not in self.server.known:
                reply.set_rcode(dns.rcode.NXDOMAIN)
        sock.sendto(reply.to_wire(), self.client_address)


def _quoted(text: str, size: int = 250) -> str:
    """TXT rdata: long strings (a 2048-bit key) as several character-strings of one record."""
    return " ".join(f'"{text[i:i + size]}"' for i in range(0, len(text), size)) or '""'


class _DnsServer(socketserver.ThreadingUDPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _DnsHandler)
        self.records: dict[tuple[str, int], list[str]] = {}
        self.known: set[str] = set()


@dataclass
class FakeDns:
    """Records served on 127.0.0.1; every other name does not exist."""

    server: _DnsServer

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def set(self, name: str, rdtype: str, *values: str) -> None:
        """Serve these records (zone-file text) at ``name``, replacing what was there."""
        fqdn = name.lower().rstrip(".") + "."
        kind = dns.rdatatype.from_text(rdtype)
        if kind == dns.rdatatype.TXT:
            values = tuple(_quoted(value) for value in values)
        self.server.records[(fqdn, kind)] = list(values)
        # Its parents exist too (an empty answer, not NXDOMAIN), as in real DNS.
        labels = fqdn.split(".")
        for i in range(len(labels) - 1):
            self.server.known.add(".".join(labels[i:]))

    def set_txt(self, name: str, *texts: str) -> None:
        """Serve these TXT strings at ``name``."""
        self.set(name, "TXT", *texts)

    def dkimpy(self):  # type: ignore[no-untyped-def]
        """A ``dnsfunc`` for dkim.verify answering from these records."""
        def lookup(qname: bytes, timeout: int = 5) -> bytes | None:
            found = self.server.records.get((qname.decode("ascii").lower(),
                                             dns.rdatatype.TXT))
            if not found:
                return None
            return "".join(found[0].split('"')[1::2]).encode("ascii")
        return lookup


@contextmanager
def running_dns() -> Iterator[FakeDns]:
    """A DNS server on a free UDP port of 127.0.0.1 for the block."""
    server = _DnsServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield FakeDns(server)
    finally:
        server.shutdown()
        server.server_close()


# -- Postfix ------------------------------------------------------------------------------

_MASTER_CF = """\
{listen} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


def _main_cf(folder: Path, name: str, extra: str) -> str:
    # No chroot (master.cf above), no DNS (every next hop is a bracketed loopback address),
    # the log in a file of the instance's own (syslog may not run here).
    return f"""\
compatibility_level = 3.6
queue_directory = {folder}/queue
data_directory = {folder}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = {name}.example.net
mydomain = example.net
myorigin = $myhostname
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtp_dns_support_level = disabled
smtp_tls_security_level = none
smtpd_tls_security_level = none
maillog_file_prefixes = {folder}
maillog_file = {folder}/maillog
biff = no
alias_maps =
alias_database =
{extra}"""


@dataclass
class Postfix:
    """One Postfix instance: its folder (etc/, queue/, data/, maillog) and smtpd port."""

    folder: Path
    port: int

    @property
    def config(self) -> Path:
        return self.folder / "etc"

    def log(self) -> str:
        """The end of its maillog, for a failure message."""
        path = self.folder / "maillog"
        return path.read_text(errors="replace")[-3000:] if path.is_file() else "(no maillog)"

    def stop(self) -> None:
        """Stop its master (and so every daemon of this instance, none other)."""
        subprocess.run([POSTFIX, "-c", str(self.config), "stop"], stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=60, check=False)


class _PortTaken(Exception):
    """A server could not listen on a port chosen for it."""


def _start_postfix(folder: Path, name: str, extra: str) -> Postfix:
    """Configure and start an instance in ``folder``; _PortTaken if its port was taken."""
    port = _free_port()
    for sub in ("etc", "queue", "data"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    # The master (root) creates its lock there, then the postfix user writes to it.
    os.chown(folder / "data", pwd.getpwnam("postfix").pw_uid, -1)
    (folder / "etc" / "main.cf").write_text(_main_cf(folder, name, extra), encoding="ascii")
    (folder / "etc" / "master.cf").write_text(_MASTER_CF.format(listen=f"127.0.0.1:{port}"),
                                              encoding="ascii")
    server = Postfix(folder, port)
    result = subprocess.run([POSTFIX, "-c", str(server.config), "start"],
                            stdin=subprocess.DEVNULL, capture_output=True, text=True,
                            timeout=60, check=False)
    if result.returncode != 0:
        log = server.log()
        if "Address already in use" in log:
            raise _PortTaken(log)
        raise RuntimeError(f"postfix {name} did not start: {result.stderr.strip()} {log}")
    _wait_listening(port, lambda: f"postfix {name} does not answer on port {port}: "
                    + server.log())
    return server


def _wait_listening(port: int, why: object, seconds: float = 20) -> None:
    """Return once something accepts TCP connections on ``port``; RuntimeError after."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(str(why() if callable(why) else why)) from None
            time.sleep(0.05)


def _retrying(start):  # type: ignore[no-untyped-def]
    """Call ``start`` until its ports were not taken by someone else meanwhile (5 times)."""
    for _ in range(5):
        try:
            return start()
        except _PortTaken:
            continue
    raise RuntimeError("a mail path server did not start: its ports were taken five times")


# -- OpenDKIM -----------------------------------------------------------------------------


@dataclass
class OpenDkim:
    """OpenDKIM as a milter on a loopback port, signing mail From DOMAIN."""

    process: subprocess.Popen[bytes]
    port: int

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def _start_opendkim(folder: Path, key: bytes) -> OpenDkim:
    folder.mkdir(parents=True, exist_ok=True)
    key_file = folder / "relay.pem"
    key_file.write_bytes(key)
    key_file.chmod(0o600)
    port = _free_port()
    conf = folder / "opendkim.conf"
    conf.write_text(f"""\
Syslog no
# The key is 0600 in a 0755 folder, but under /tmp, which everyone may write to (sticky):
# OpenDKIM's path check would refuse it for that alone.
RequireSafeKeys no
Mode s
Domain {DOMAIN}
Selector {RELAY_SELECTOR}
KeyFile {key_file}
Canonicalization relaxed/relaxed
InternalHosts 127.0.0.1
Socket inet:{port}@127.0.0.1
PidFile {folder}/opendkim.pid
""", encoding="ascii")
    with (folder / "opendkim.log").open("wb") as out:
        process = subprocess.Popen([OPENDKIM, "-f", "-x", str(conf)], stdin=subprocess.DEVNULL,
                                   stdout=out, stderr=out)
    server = OpenDkim(process, port)

    def why() -> str:
        return ("opendkim does not answer on port "
                f"{port}: {(folder / 'opendkim.log').read_text(errors='replace')}")
    try:
        _wait_listening(port, why)
    except RuntimeError:
        server.stop()
        if "Address already in use" in why():
            raise _PortTaken(why()) from None
        raise
    return server


# -- rspamd -------------------------------------------------------------------------------


@dataclass
class Rspamd:
    """rspamd's normal worker on a loopback port."""

    process: subprocess.Popen[bytes]
    port: int
    folder: Path

    def log(self) -> str:
        path = self.folder / "log" / "rspamd.log"
        return path.read_text(errors="replace")[-3000:] if path.is_file() else "(no log)"

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def _start_rspamd(folder: Path, dns_port: int) -> Rspamd:
    """Launch rspamd (see _rspamd_ready) with its own folders and configuration."""
    local = folder / "local"
    for sub in ("local/local.d", "db", "run", "log"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:  # rspamd refuses to run its workers as root
        info = pwd.getpwnam("_rspamd")
        for sub in ("db", "run", "log"):
            os.chown(folder / sub, info.pw_uid, info.pw_gid)
    port = _free_port()
    # Debian's stock rules and modules (common.conf), but only a normal worker of our own,
    # no controller, proxy or fuzzy storage; its DNS is the test's server.
    (folder / "rspamd.conf").write_text(f"""\
.include "$CONFDIR/common.conf"
options {{
    pidfile = "$RUNDIR/rspamd.pid";
    .include "$CONFDIR/options.inc"
    .include(try=true; priority=1,duplicate=merge) "$LOCAL_CONFDIR/local.d/options.inc"
}}
logging {{
    type = "file";
    filename = "$LOGDIR/rspamd.log";
    level = "info";
}}
worker "normal" {{
    bind_socket = "127.0.0.1:{port}";
    .include "$CONFDIR/worker-normal.inc"
    count = 1;
}}
""", encoding="ascii")
    # Its fuzzy servers (rspamd.com) are resolved with the system's resolver, at start:
    # off. Its URL finder compiles the public suffix list, 5 ms a suffix (most of a minute)
    # at each start: it gets the top-level domains the tests' mail links to and a few
    # common ones, from that same list (a missing one would not be found as a URL).
    tlds = [line for line in (RSPAMD_SHAREDIR / "effective_tld_names.dat").read_text(
        encoding="utf-8").splitlines() if line in URL_TLDS]
    assert sorted(tlds) == sorted(URL_TLDS), "rspamd's public suffix list changed"
    (local / "tlds.dat").write_text("\n".join(tlds) + "\n", encoding="utf-8")
    (local / "local.d" / "fuzzy_check.conf").write_text("enabled = false;\n", encoding="ascii")
    (local / "local.d" / "options.inc").write_text(f"""\
url_tld = "{local / 'tlds.dat'}";
dns {{
    nameserver = ["127.0.0.1:{dns_port}"];
    timeout = 1s;
    retransmits = 2;
}}
""", encoding="ascii")
    args = [RSPAMD, "-f", "-c", str(folder / "rspamd.conf"),
            "--var", f"CONFDIR={RSPAMD_CONFDIR}", "--var", f"LOCAL_CONFDIR={local}",
            "--var", f"DBDIR={folder / 'db'}", "--var", f"RUNDIR={folder / 'run'}",
            "--var", f"LOGDIR={folder / 'log'}"]
    if os.geteuid() == 0:
        args += ["-u", "_rspamd", "-g", "_rspamd"]
    with (folder / "start.log").open("wb") as out:
        process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
    return Rspamd(process, port, folder)


def _rspamd_ready(server: Rspamd) -> Rspamd:
    """``server`` once it answers (it loads its rules for seconds); _PortTaken if its port
    was taken meanwhile."""
    def why() -> str:
        return (f"rspamd does not answer on port {server.port}: "
                f"{(server.folder / 'start.log').read_text(errors='replace')[-2000:]} "
                f"{server.log()}")
    try:
        _wait_listening(server.port, why, seconds=90)
    except RuntimeError:
        server.stop()
        if "Address already in use" in why():
            raise _PortTaken(why()) from None
        raise
    return server


@dataclass
class Scan:
    """What rspamd said of one message: its score and symbols (name -> score)."""

    score: float
    symbols: dict[str, float]
    raw: dict[str, object] = field(repr=False)

    def shown(self) -> str:
        """One line per symbol, highest first, for a failure message or ``-s``."""
        return "\n".join(f"  {points:+.2f} {name}" for name, points in
                         sorted(self.symbols.items(), key=lambda item: -abs(item[1])))


# -- the whole path -----------------------------------------------------------------------


@dataclass
class MailPath:
    """The running relay, MX, OpenDKIM, rspamd and DNS; helpers to read what arrived."""

    folder: Path
    relay: Postfix
    mx: Postfix
    opendkim: OpenDkim
    rspamd: Rspamd
    dns: FakeDns
    relay_key: bytes

    @property
    def relay_port(self) -> int:
        return self.relay.port

    @property
    def maildir(self) -> Path:
        """The Maildir the MX delivers every recipient to (new/ holds what arrived)."""
        return self.folder / "mail" / "all"

    def delivered(self, recipient: str, count: int = 1, seconds: float = 120) -> list[bytes]:
        """The messages the MX delivered to ``recipient`` (its Delivered-To header), once
        there are ``count`` of them: polled, with a deadline; past it, both hops' logs."""
        wanted = f"\ndelivered-to: {recipient.lower()}\n".encode("ascii")
        deadline = time.monotonic() + seconds
        while True:
            found = [raw for raw in (path.read_bytes()
                                     for path in sorted((self.maildir / "new").glob("*")))
                     if wanted in b"\n" + raw.split(b"\n\n", 1)[0].lower() + b"\n"]
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{len(found)} message(s) delivered to {recipient}, {count} expected, "
                    f"after {seconds} s\nrelay:\n{self.relay.log()}\nmx:\n{self.mx.log()}")
            time.sleep(0.05)

    def scan(self, message: bytes, envelope_from: str, recipient: str) -> Scan:
        """rspamd's verdict on a delivered message, as the MX would ask it: from the relay's
        address and HELO, with the message's envelope sender and recipient."""
        result = subprocess.run(
            [RSPAMC, "-h", f"127.0.0.1:{self.rspamd.port}", "-j", "-t", "30",
             "-i", RELAY_PUBLIC_IP, "--helo", RELAY_HELO, "--hostname", RELAY_HELO,
             "-F", envelope_from,
             "-r", recipient, "symbols"],
            input=message, capture_output=True, timeout=60, check=False)
        out = result.stdout.decode("utf-8", "replace")
        try:
            reply = json.loads(out)
        except ValueError:
            raise AssertionError(f"rspamc said: {out} {result.stderr!r}\n{self.rspamd.log()}"
                                 ) from None
        symbols = {name: float(value.get("score", 0.0))
                   for name, value in reply.get("symbols", {}).items()}
        return Scan(float(reply["score"]), symbols, reply)

    def publish_dkim(self, selector: str, key: bytes, domain: str = DOMAIN) -> None:
        """Publish the public half of ``key`` at <selector>._domainkey.<domain>."""
        self.dns.set_txt(f"{selector}._domainkey.{domain}", dns_record(key))

    def dkim_results(self, message: bytes) -> list[tuple[str, str, bool]]:
        """(d=, s=, verified) for each DKIM-Signature of ``message``, checked by dkimpy
        against the records published here."""
        import dkim
        import dkim.util

        signatures = [value for name, value in dkim.DKIM(message).headers
                      if name.lower() == b"dkim-signature"]
        results = []
        for index, value in enumerate(signatures):
            tags = dkim.util.parse_tag_value(b"".join(value.split()))
            # A fresh verifier each time: dkimpy keeps state from the previous signature.
            try:
                ok = dkim.DKIM(message).verify(idx=index, dnsfunc=self.dns.dkimpy())
            except dkim.DKIMException:  # a body hash mismatch is raised, not returned
                ok = False
            results.append((tags[b"d"].decode(), tags[b"s"].decode(), bool(ok)))
        return results



def _allow(path: Path) -> None:
    """Let the postfix and _rspamd users through ``path`` (mkdtemp makes it owner-only)."""
    path.chmod(0o755)


def _publish(server: FakeDns, relay_key: bytes) -> None:
    """The club's DNS as docs/ops.md has it published: the relay's DKIM key, SPF naming the
    relay, DMARC at p=reject; and the relay's name and address, forward and reverse."""
    server.set_txt(f"{RELAY_SELECTOR}._domainkey.{DOMAIN}", dns_record(relay_key))
    server.set_txt(DOMAIN, f"v=spf1 ip4:{RELAY_PUBLIC_IP} -all")
    server.set(DOMAIN, "A", "192.0.2.80")
    server.set(DOMAIN, "MX", f"10 {RELAY_HELO}.")
    server.set_txt(f"_dmarc.{DOMAIN}", "v=DMARC1; p=reject")
    server.set(RELAY_HELO, "A", RELAY_PUBLIC_IP)
    reverse = ".".join(reversed(RELAY_PUBLIC_IP.split("."))) + ".in-addr.arpa"
    server.set(reverse, "PTR", f"{RELAY_HELO}.")


@contextmanager
def running_mail_path() -> Iterator[MailPath]:
    """The whole path in a folder of its own under /tmp, stopped and removed afterwards.

    Not under pytest's tmp_path: its parents are owner-only, and Postfix's and rspamd's
    users must reach their folders.
    """
    what = missing()
    if what is not None:
        pytest.skip(HOW_TO.format(what=what))
    if os.geteuid() != 0:
        pytest.skip("the mail path tests start Postfix, whose master must run as root: run "
                    "them as root (CI does) or in a container")
    for user in ("postfix", "_rspamd"):
        try:
            pwd.getpwnam(user)
        except KeyError:
            pytest.skip(f"no {user!r} user: reinstall Debian's postfix and rspamd packages")
    folder = Path(tempfile.mkdtemp(prefix="clubjapon-mta-"))
    _allow(folder)
    started: list[object] = []
    try:
        with running_dns() as dns_server:
            relay_key = new_key()
            _publish(dns_server, relay_key)
            # rspamd first: it loads for seconds, while the Postfixes start.
            (folder / "rspamd").mkdir()
            _allow(folder / "rspamd")
            launched = _start_rspamd(folder / "rspamd", dns_server.port)
            started.append(launched)
            mail = folder / "mail"
            mail.mkdir()
            owner = pwd.getpwnam("nobody")
            os.chown(mail, owner.pw_uid, owner.pw_gid)
            # SMTPUTF8 goes too: it implies 8BITMIME (RFC 6531), and Postfix sends 8-bit
            # bodies unchanged to a server that offers it.
            mx = _retrying(lambda: _start_postfix(folder / "mx", "mx", f"""\
smtpd_discard_ehlo_keywords = 8bitmime, smtputf8
virtual_mailbox_domains = static:all
virtual_mailbox_base = {mail}
virtual_mailbox_maps = static:all/
virtual_uid_maps = static:{owner.pw_uid}
virtual_gid_maps = static:{owner.pw_gid}
virtual_minimum_uid = 1
"""))
            started.append(mx)
            opendkim = _retrying(lambda: _start_opendkim(folder / "opendkim", relay_key))
            started.append(opendkim)
            relay = _retrying(lambda: _start_postfix(folder / "relay", "relay", f"""\
relayhost = [127.0.0.1]:{mx.port}
smtpd_milters = inet:127.0.0.1:{opendkim.port}
milter_default_action = tempfail
"""))
            started.append(relay)
            try:
                rspamd = _rspamd_ready(launched)
            except _PortTaken:
                started.remove(launched)
                rspamd = _retrying(lambda: _rspamd_ready(
                    _start_rspamd(folder / "rspamd", dns_server.port)))
                started.append(rspamd)
            path = MailPath(folder, relay, mx, opendkim, rspamd, dns_server, relay_key)
            yield path
    finally:
        # All at once: each waits for its processes to exit, for seconds.
        with ThreadPoolExecutor(max_workers=max(1, len(started))) as pool:
            for server in started:
                pool.submit(server.stop)  # type: ignore[attr-defined]
        shutil.rmtree(folder, ignore_errors=True)
