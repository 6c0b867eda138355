"""Sending throughput and peak RSS: SMTP to Postfix's smtp-sink, mailmerge, a Brevo-shaped API.

Run: .venv/bin/python bench/bench_send.py [--messages 20000] [--mailmerge-messages 2000]
     .venv/bin/python bench/bench_send.py --smoke   # seconds: does the bench still work?

In one run, for N fictitious contacts (fr/en/ja in thirds) synced into SQLite:
  - N personalised messages through jobs.send_campaign with CLUBJAPON_TRANSPORT=smtp to
    Postfix's smtp-sink on 127.0.0.1, at SMTP_CONNECTIONS 1, 2 and 4 (rate limit off);
  - the same messages (the first --mailmerge-messages of them) through the mailmerge CLI
    to the same sink, and the ratio;
  - N messages with CLUBJAPON_TRANSPORT=brevo to bench/_brevo_sink.py (own process);
  - for each of our measurements, the sending process's peak RSS at N/10 and at N.
Every send runs in a fresh child process on a fresh copy of the synced database, so each
one sends all N messages and its peak RSS is its own. Targets (issue 5, 2-core machine):
>= 2,000 msg/s to smtp-sink and >= 10x mailmerge; >= 3,000 msg/s to the batch API; peak
RSS flat in the number of recipients (here: at most 10% more at N than at N/10).

Downloads, once, into bench/.cache/ (git-ignored): Debian's postfix package (apt-get
download + dpkg -x; nothing is installed) and a venv with mailmerge from PyPI.
--profile adds a cProfile of one SMTP send and one Brevo send (all threads, each thread's
CPU time): top functions, CPU by library and by stage, per message.
--smoke: 30 messages, one SMTP connection, to a Python SMTP sink (bench/_smtp_sink.py)
instead of smtp-sink, no mailmerge, nothing downloaded: the suite runs it
(tests/unit/test_bench_smoke.py); its rates say nothing.
--eight-bit adds quoted-printable (the default) against 8bit bodies (SMTP_EIGHT_BIT=true,
what sends did before issue 23): --eight-bit-rounds pairs back to back (smoke: one), the
target judged on the median of the pairs' ratios.
--dkim adds DKIM signing (a 2048-bit RSA key generated for the run): the build cost per
message unsigned and signed, in process, and one more SMTP send with signing on, beside the
same send unsigned.
"""

from __future__ import annotations

import argparse
import cProfile
import csv
import json
import os
import pstats
import re
import resource
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "bench" / ".cache"
SLUG = "2025-11-04-lille"
SECRET = "bench-secret-0123456789abcdef0123456789"
# A send that leaves the machine needs the club's postal address (CLUBJAPON_POSTAL_ADDRESS).
POSTAL_ADDRESS = "Club Japon des Hauts-de-France; 151 boulevard Hoover; 59000 Lille"
BREVO_KEY = "bench-brevo-key"
LANGS = ("fr", "en", "ja")
NAMES = {
    "fr": (("Camille", "Julien", "Sophie", "Thomas", "Léa", "Hélène"),
           ("Martin", "Dubois", "Lefèvre", "Carpentier", "Dupont", "Lheureux")),
    "en": (("Emily", "James", "Olivia", "George", "Amelia", "Harry"),
           ("Clarke", "Smith", "Taylor", "Brown", "Wilson", "Evans")),
    "ja": (("陽翔", "結衣", "蓮", "葵", "大和", "さくら"),
           ("佐藤", "鈴木", "高橋", "田中", "伊藤", "渡辺")),
}
# Variables a send reads: the children get only ours, never the caller's.
OUR_PREFIXES = ("CLUBJAPON_", "SMTP_", "HUBSPOT_", "BREVO_", "SENDGRID_")
RSS_FLAT = 0.10  # peak RSS at N at most 10% above that at N/10


def load() -> float:
    """The 1-minute load average (the machine is shared with other work)."""
    return os.getloadavg()[0]


# ---------------------------------------------------------------- the project and its store


def write_contacts(path: Path, n: int) -> None:
    """A CSV export of n fictitious contacts, languages in turn fr, en, ja."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        out = csv.writer(handle, delimiter=";")
        out.writerow(["email", "first_name", "last_name", "company", "language"])
        for i in range(n):
            lang = LANGS[i % 3]
            firsts, lasts = NAMES[lang]
            out.writerow([f"reader{i}@example.com", firsts[i % 6], lasts[(i // 6) % 6],
                          f"Entreprise {i % 97}", lang])


def make_home(tmp: Path) -> Path:
    """A project root with the real editions and templates, and nothing else."""
    home = tmp / "home"
    (home / "config").mkdir(parents=True)
    shutil.copytree(ROOT / "config" / "editions", home / "config" / "editions")
    shutil.copytree(ROOT / "templates", home / "templates")
    (home / "var").mkdir()
    return home


def base_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a child send: ours only, rate limit off."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(OUR_PREFIXES)}
    env.update({
        "CLUBJAPON_HOME": str(home), "CLUBJAPON_SECRET": SECRET, "CLUBJAPON_SEND_RATE": "0",
        "CLUBJAPON_ERROR_BUDGET": "50", "PYTHONPATH": str(ROOT / "src"),
        "CLUBJAPON_POSTAL_ADDRESS": POSTAL_ADDRESS,
    })
    env.update(extra)
    return env


def synced_db(home: Path, n: int) -> Path:
    """Sync n contacts from a generated CSV into their own SQLite file; return its path."""
    from clubjapon_ops import jobs
    from clubjapon_ops.settings import load_settings
    from clubjapon_ops.store import open_store

    csv_path = home / f"contacts-{n}.csv"
    write_contacts(csv_path, n)
    db = home / "var" / f"synced-{n}.sqlite3"
    settings = load_settings(home, environ={
        "CLUBJAPON_CSV_PATH": str(csv_path), "CLUBJAPON_DATABASE_URL": f"sqlite:///{db}",
        "CLUBJAPON_SECRET": SECRET,
    })
    store = open_store(settings.database_url)
    try:
        report = jobs.crm_sync(settings, store, trigger="bench")
    finally:
        store.close()
    if report.upserts.created != n:
        raise SystemExit(f"sync created {report.upserts.created} contacts, expected {n}")
    return db


def message_sizes(home: Path) -> str:
    """The size of one of our messages in each language, as sent over SMTP."""
    from clubjapon_ops import jobs
    from clubjapon_ops.delivery.message import MimeBuilder
    from clubjapon_ops.newsletter.service import SAMPLE_CONTACTS
    from clubjapon_ops.settings import load_settings

    settings = load_settings(home, environ={"CLUBJAPON_SECRET": SECRET})
    newsletter = jobs.newsletter_for_sending(settings, SLUG)
    builder = MimeBuilder(settings.mail_from)

    def size(contact: Any, eight_bit: bool) -> str:
        message = builder.build(newsletter.personalise(contact), edition=SLUG,
                                eight_bit=eight_bit)
        return f"{len(message) / 1024:.1f}"

    # Quoted-printable is what every send carries by default (issue 23); 8bit only with
    # SMTP_EIGHT_BIT=true and a server that offers 8BITMIME, as smtp-sink does.
    return ", ".join(f"{lang} {size(c, False)} KB quoted-printable ({size(c, True)} KB 8bit)"
                     for lang, c in SAMPLE_CONTACTS.items())


def dkim_key(tmp: Path) -> Path:
    """A 2048-bit RSA key for the run, as ops would generate it."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp / "dkim.pem"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)
    return path


def dkim_env(key: Path) -> dict[str, str]:
    """The settings that turn signing on."""
    return {"CLUBJAPON_DKIM_KEY_FILE": str(key), "CLUBJAPON_DKIM_SELECTOR": "bench",
            "CLUBJAPON_DKIM_DOMAIN": "example.org"}


def signing_cost(home: Path, key: Path, rounds: int = 600) -> tuple[float, float]:
    """Milliseconds of CPU to build one message (quoted-printable, as over SMTP by default),
    unsigned and signed."""
    from clubjapon_ops import jobs
    from clubjapon_ops.delivery.transports import builder_for
    from clubjapon_ops.newsletter.service import SAMPLE_CONTACTS
    from clubjapon_ops.settings import load_settings

    settings = load_settings(home, environ={"CLUBJAPON_SECRET": SECRET, **dkim_env(key)})
    newsletter = jobs.newsletter_for_sending(settings, SLUG)
    messages = [newsletter.personalise(c) for c in SAMPLE_CONTACTS.values()]
    builder = builder_for(settings)
    signer = builder.signer
    costs = []
    for sign in (None, signer):
        builder.signer = sign
        builder.build(messages[0], edition=SLUG)  # warm the caches
        started = time.process_time()
        for i in range(rounds):
            builder.build(messages[i % len(messages)], edition=SLUG)
        costs.append((time.process_time() - started) / rounds * 1000)
    return costs[0], costs[1]


def fresh_copy(db: Path, name: str) -> Path:
    """A copy of a synced database with an empty ledger: every send sends all of it."""
    target = db.parent / f"{name}.sqlite3"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    with sqlite3.connect(db) as source, sqlite3.connect(target) as copy:
        source.backup(copy)
    source.close()
    copy.close()
    return target


# ---------------------------------------------------------------- one send, in a child


def child_send(profile_to: str | None) -> None:
    """Run jobs.send_campaign in this process (settings from the environment); print JSON."""
    from clubjapon_ops import jobs
    from clubjapon_ops.settings import load_settings
    from clubjapon_ops.store import open_store

    settings = load_settings()
    store = open_store(settings.database_url)
    marks: dict[str, float] = {}

    def progress(done: int, total: int) -> None:
        if "first" not in marks:
            # The first answer recorded (one message over SMTP, one request over the API):
            # setup is over (edition loaded, lint, audience planned, first batch claimed).
            marks["first"] = time.perf_counter()
            marks["rss_first"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    profiler = ThreadProfiles() if profile_to else None
    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    if profiler:
        profiler.start()
    report = jobs.send_campaign(settings, store, SLUG, trigger="bench", progress=progress)
    if profiler:
        profiler.stop(profile_to or "")
    took = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    store.close()
    print(json.dumps({
        "sent": report.outcomes.get("sent", 0),
        "ledger": report.ledger,
        "status": report.status,
        "errors": dict(report.errors.most_common(3)),
        "seconds": took,
        "setup_s": marks.get("first", started) - started,
        "cpu_s": usage.ru_utime + usage.ru_stime - usage0.ru_utime - usage0.ru_stime,
        "peak_rss_mb": usage.ru_maxrss / 1024,
        "rss_first_mb": marks.get("rss_first", 0.0),
    }))


class ThreadProfiles:
    """cProfile in the calling thread and in every thread started meanwhile (the lanes).

    The timer is each thread's own CPU time: waits (socket replies, locks, the GIL) are not
    counted, so the figures say where the CPU goes, which is what bounds the rate here.
    """

    def __init__(self) -> None:
        self.profiles: list[cProfile.Profile] = []
        self.lock = threading.Lock()

    def start(self) -> None:
        def bootstrap(*_args: Any) -> None:
            # threading calls this once in each new thread before its target: switch that
            # thread over to its own cProfile (which replaces this hook).
            profile = cProfile.Profile(time.thread_time)
            with self.lock:
                self.profiles.append(profile)
            profile.enable()

        threading.setprofile(bootstrap)
        main = cProfile.Profile(time.thread_time)
        self.profiles.append(main)
        main.enable()

    def stop(self, path: str) -> None:
        threading.setprofile(None)  # type: ignore[arg-type]
        self.profiles[0].disable()
        stats = pstats.Stats(self.profiles[0])
        for profile in self.profiles[1:]:
            profile.disable()  # only affects the calling thread; the lanes have ended
            profile.create_stats()
            stats.add(profile)
        stats.dump_stats(path)


@dataclass
class Measure:
    """What one send (at one size) gave."""

    label: str
    n: int
    seconds: float
    wall_s: float
    cpu_s: float
    setup_s: float
    peak_rss_mb: float
    load_before: float
    load_after: float
    rss_first_mb: float = 0.0  # peak RSS at the first answer (setup done)
    sink_cpu_s: float | None = None
    received: int | None = None
    requests: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.n / self.seconds if self.seconds else 0.0


def run_child(label: str, n: int, env: dict[str, str], profile_to: str | None = None
              ) -> tuple[Measure, dict[str, Any]]:
    """Send in a fresh interpreter; fail loudly unless every message was sent."""
    args = [sys.executable, str(Path(__file__).resolve()), "--child-send"]
    if profile_to:
        args += ["--profile-to", profile_to]
    before = load()
    started = time.perf_counter()
    out = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if out.returncode != 0:
        raise SystemExit(f"{label}: the send failed (exit {out.returncode}):\n{out.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    if result["sent"] != n or result["ledger"].get("sent") != n:
        raise SystemExit(f"{label}: sent {result['sent']} of {n}; ledger {result['ledger']}; "
                         f"errors {result['errors']}\n{out.stderr[-2000:]}")
    measure = Measure(label, n, result["seconds"], wall, result["cpu_s"], result["setup_s"],
                      result["peak_rss_mb"], before, load(), result["rss_first_mb"])
    return measure, result


# ---------------------------------------------------------------- smtp-sink


def smtp_sink_binary() -> Path | None:
    """Postfix's smtp-sink from Debian's package, extracted under bench/.cache (not installed)."""
    folder = CACHE / "postfix"
    binary = folder / "root" / "usr" / "sbin" / "smtp-sink"
    if binary.is_file():
        return binary
    if not (shutil.which("apt-get") and shutil.which("dpkg")):
        print("!! apt-get/dpkg not found: the SMTP and mailmerge parts are skipped. To run them,\n"
              "   on Debian/Ubuntu: mkdir -p bench/.cache/postfix && cd bench/.cache/postfix &&\n"
              "   apt-get download postfix && dpkg -x postfix_*.deb root")
        return None
    folder.mkdir(parents=True, exist_ok=True)
    print("downloading Debian's postfix package into bench/.cache/postfix (not installed) ...",
          flush=True)
    got = subprocess.run(["apt-get", "download", "postfix"], cwd=folder, capture_output=True,
                         text=True, check=False)
    debs = sorted(folder.glob("postfix_*.deb"))
    if got.returncode != 0 or not debs:
        print(f"!! apt-get download postfix failed ({got.stderr.strip()[-300:]}); try "
              "'apt-get update' first. The SMTP and mailmerge parts are skipped.")
        return None
    subprocess.run(["dpkg", "-x", str(debs[-1]), str(folder / "root")], check=True)
    return binary if binary.is_file() else None


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a running process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class SmtpSink:
    """smtp-sink on 127.0.0.1, counting what it receives into a file (-c); with no binary,
    bench/_smtp_sink.py (Python, for --smoke), which counts the same way."""

    def __init__(self, binary: Path | None, tmp: Path) -> None:
        self.counts = tmp / "smtp-sink.out"
        self.settle = 0.0
        if binary is None:
            self._out = self.counts.open("wb")
            self.proc = subprocess.Popen(
                [sys.executable, str(ROOT / "bench" / "_smtp_sink.py"), str(self.counts)],
                stdout=subprocess.PIPE, text=True)
            assert self.proc.stdout is not None
            line = self.proc.stdout.readline().strip()  # its port, once it listens
            if not line.isdigit():
                raise SystemExit("bench/_smtp_sink.py did not start")
            self.port = int(line)
            return
        # smtp-sink writes its counter when a session ends, a moment after the last answer.
        self.settle = 0.2
        self.port = free_port()
        lib = binary.parents[2] / "usr" / "lib" / "postfix"
        env = {**os.environ, "LD_LIBRARY_PATH": str(lib)}
        args = [str(binary)]
        if os.geteuid() == 0:
            args += ["-u", "nobody"]  # it refuses to run as root otherwise
        args += ["-c", f"127.0.0.1:{self.port}", "1000"]
        self._out = self.counts.open("wb")
        self.proc = subprocess.Popen(args, env=env, stdout=self._out, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                    raise SystemExit(f"smtp-sink did not start: {err}") from None
                time.sleep(0.05)

    def received(self) -> int:
        """Messages received so far (smtp-sink's running "mesg=" counter)."""
        time.sleep(self.settle)
        data = self.counts.read_bytes()[-200:].decode("ascii", "replace")
        found = re.findall(r"mesg=(\d+)", data)
        return int(found[-1]) if found else 0

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self._out.close()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


# ---------------------------------------------------------------- mailmerge


def mailmerge_binary() -> Path | None:
    """mailmerge from PyPI in the benchmark's own venv under bench/.cache."""
    venv = CACHE / "mailmerge-venv"
    binary = venv / "bin" / "mailmerge"
    if binary.is_file():
        return binary
    print("creating bench/.cache/mailmerge-venv and installing mailmerge from PyPI ...",
          flush=True)
    made = subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)],
                          capture_output=True, text=True, check=False)
    if made.returncode == 0:
        made = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q",
                               "mailmerge"], capture_output=True, text=True, check=False)
    if made.returncode != 0 or not binary.is_file():
        print(f"!! could not install mailmerge ({made.stderr.strip()[-300:]}); do it by hand:\n"
              f"   python3 -m venv {venv} && {venv}/bin/pip install mailmerge")
        return None
    return binary


def _jinja_part(text: str) -> str:
    return "{% raw %}" + text + "{% endraw %}"


def mailmerge_files(home: Path, m: int, port: int) -> tuple[Path, Path, Path]:
    """Template (the edition's three languages, per-row values), database and server config.

    The template holds the same rendered and inlined HTML and text as our messages, with
    Jinja2 placeholders where ours has slots; the database holds each row's greeting,
    address and signed unsubscribe link, computed here with the project's own code.
    """
    from clubjapon_ops import jobs
    from clubjapon_ops.contacts import Contact
    from clubjapon_ops.delivery.message import MimeBuilder, format_mailbox
    from clubjapon_ops.delivery.transports.api import templated
    from clubjapon_ops.newsletter.render import display_name
    from clubjapon_ops.settings import load_settings

    settings = load_settings(home, environ={"CLUBJAPON_SECRET": SECRET})
    newsletter = jobs.newsletter_for_sending(settings, SLUG)
    builder = MimeBuilder(settings.mail_from)
    folder = home / "mailmerge"
    folder.mkdir()

    def tag(slot: str, part: str) -> str:
        name = f"{slot}_html" if part == "html" else slot
        return "{% endraw %}{{ " + name + " }}{% raw %}"

    text_parts, html_parts = [], []
    for n, (lang, rendered) in enumerate(newsletter.rendered.items()):
        html, text = templated(rendered, tag)
        keyword = "if" if n == 0 else "elif"
        text_parts.append(f"{{% {keyword} lang == '{lang}' %}}{_jinja_part(text)}")
        html_parts.append(f"{{% {keyword} lang == '{lang}' %}}{_jinja_part(html)}")
    boundary = "=_mailmerge_bench"
    template = "\n".join([
        "TO: {{ to }}",
        f"FROM: {builder.from_header}",
        "SUBJECT: {{ subject }}",
        "MIME-Version: 1.0",
        "List-Unsubscribe: <{{ unsubscribe_url }}>, <" + builder.unsubscribe_mailto + ">",
        "List-Unsubscribe-Post: List-Unsubscribe=One-Click",
        f'Content-Type: multipart/alternative; boundary="{boundary}"',
        "",
        f"--{boundary}",
        "Content-Type: text/plain; charset=utf-8",
        "",
        "".join(text_parts) + "{% endif %}",
        f"--{boundary}",
        "Content-Type: text/html; charset=utf-8",
        "",
        "".join(html_parts) + "{% endif %}",
        f"--{boundary}--",
        "",
    ])
    template_path = folder / "template.txt"
    template_path.write_text(template, encoding="utf-8")

    database = folder / "database.csv"
    contacts = home / f"contacts-{m}.csv"
    write_contacts(contacts, m)
    with contacts.open(encoding="utf-8") as source, database.open(
            "w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["to", "lang", "subject", "greeting", "email", "unsubscribe_url",
                         "greeting_html", "email_html", "unsubscribe_url_html"])
        for row in csv.DictReader(source, delimiter=";"):
            contact = Contact(email=row["email"], source="bench", first_name=row["first_name"],
                              last_name=row["last_name"], company=row["company"],
                              language=row["language"])
            msg = newsletter.personalise(contact)
            plain, html_values = msg.plain_values, msg.html_values
            writer.writerow([
                format_mailbox(display_name(contact), contact.email), msg.lang, msg.subject,
                plain["greeting"], plain["email"], plain["unsubscribe_url"],
                html_values["greeting"], html_values["email"], html_values["unsubscribe_url"],
            ])

    config = folder / "server.conf"
    config.write_text(
        "[smtp_server]\nhost = 127.0.0.1\n"
        f"port = {port}\nsecurity = Never\nratelimit = 0\n", encoding="utf-8")
    return template_path, database, config


def run_mailmerge(binary: Path, files: tuple[Path, Path, Path], m: int) -> Measure:
    """Send the database through mailmerge (no limit, not a dry run); time the whole run."""
    template, database, config = files
    args = [str(binary), "--no-dry-run", "--no-limit", "--output-format", "text",
            "--template", str(template), "--database", str(database), "--config", str(config)]
    before = load()
    started = time.perf_counter()
    # Its printout of each message goes nowhere; the printing itself is part of its run.
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            cwd=config.parent)
    _, status, usage = os.wait4(proc.pid, 0)
    took = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode != 0:
        raise SystemExit(f"mailmerge failed (exit {proc.returncode}):\n{err[-3000:]}")
    return Measure("mailmerge", m, took, took, usage.ru_utime + usage.ru_stime, 0.0,
                   usage.ru_maxrss / 1024, before, load())


# ---------------------------------------------------------------- the Brevo-shaped sink


@contextmanager
def brevo_sink() -> Iterator[tuple[str, int]]:
    """bench/_brevo_sink.py in its own process; yields its base URL and process id."""
    proc = subprocess.Popen([sys.executable, str(ROOT / "bench" / "_brevo_sink.py"),
                             "--key", BREVO_KEY], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        yield proc.stdout.readline().strip(), proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def brevo_stats(url: str) -> dict[str, int]:
    with urllib.request.urlopen(url + "/__stats", timeout=10) as answer:
        stats: dict[str, int] = json.loads(answer.read())
        return stats


# ---------------------------------------------------------------- reporting


def show(m: Measure) -> None:
    where = ""
    if m.received is not None:
        where = f" | sink got {m.received:,}"
    if m.requests is not None:
        where = f" | {m.requests} requests"
    if m.sink_cpu_s is not None:
        where += f", sink CPU {m.sink_cpu_s / m.n * 1e6:.0f} µs/msg"
    setup = f" (1st answer {m.setup_s:4.2f})" if m.setup_s else " " * 18
    print(f"  {m.label:<20} {m.n:>6,} msgs {m.rate:>6,.0f} msg/s  send {m.seconds:6.2f} s"
          f"{setup}  whole run {m.wall_s:6.2f} s  CPU {m.cpu_s / m.n * 1e6:5.0f} µs/msg"
          f"  peak RSS {m.peak_rss_mb:5.1f} MB  load {loads(m)}{where}", flush=True)


# Stages of the per-message path, by the inclusive time of the functions that do them:
# (label, [(file suffix, function), ...] added, [(file suffix, function), ...] taken away).
STAGES = (
    ("setup: load, render, lint, plan", [("jobs/send.py", "newsletter_for_sending"),
                                         ("jobs/send.py", "lint_before_send"),
                                         ("sender.py", "prepare")], []),
    ("claim batches (ledger)", [("deliveries.py", "claim")], []),
    ("personalise (slots)", [("render.py", "personalise")], []),
    ("MIME build", [("message.py", "build")], []),
    ("SMTP dialogue (smtplib, socket)", [("smtp.py", "_send_once")], [("message.py", "build")]),
    ("Brevo request (JSON, HTTP)", [("brevo.py", "send")], []),
    ("ledger writes, begin/commit", [("deliveries.py", "mark_sending"),
                                     ("deliveries.py", "record"),
                                     ("deliveries.py", "set_batch_key"),
                                     ("engine/base.py", "_begin_impl"),
                                     ("engine/base.py", "_commit_impl")], []),
    ("outcomes, counters", [("sender.py", "_outcome"), ("sender.py", "_count")], []),
)


def _inclusive(stats: dict[Any, Any], suffix: str, name: str) -> float:
    return sum(v[3] for (file, _line, func), v in stats.items()
               if func == name and file.endswith(suffix))


def print_profile(label: str, path: str, n: int, top: int, cpu_s: float) -> None:
    """Where the CPU goes, per message, across all threads, from a cProfile of one send.

    cProfile adds a cost to every call it sees; the unprofiled run of the same send measured
    ``cpu_s``. The corrected column takes a uniform per-call overhead off each function,
    fitted so that the corrected total equals the unprofiled CPU time.
    """
    stats: dict[Any, Any] = pstats.Stats(path).stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in stats.values())
    calls = sum(v[1] for v in stats.values())
    per_call = max(0.0, (total - cpu_s) / calls) if calls else 0.0
    corrected = {k: max(0.0, v[2] - v[1] * per_call) for k, v in stats.items()}
    fixed = sum(corrected.values()) or 1.0
    print(f"\nprofile, {label}: {total / n * 1e6:.0f} µs CPU/msg under cProfile, "
          f"{cpu_s / n * 1e6:.0f} µs unprofiled; corrected = own time less "
          f"{per_call * 1e6:.2f} µs per call (fitted)")
    print(f"  {'raw µs':>7} {'corr. µs':>8} {'share':>6} {'calls':>6}   function (per message)")
    for key in sorted(corrected, key=lambda k: corrected[k], reverse=True)[:top]:
        file, line, name = key
        where = file.replace(str(ROOT) + "/", "")
        where = re.sub(r".*/(site-packages|lib/python3\.\d+)/", "", where)
        raw, ncalls = stats[key][2], stats[key][1]
        print(f"  {raw / n * 1e6:>7.1f} {corrected[key] / n * 1e6:>8.1f} "
              f"{corrected[key] / fixed:>6.1%} {ncalls / n:>6.2f}   {name} ({where}:{line})")
    areas: dict[str, float] = {}
    for (file, _line, name), value in corrected.items():
        areas[_area(file, name)] = areas.get(_area(file, name), 0.0) + value
    print("  by library (corrected): " + ", ".join(
        f"{a} {t / n * 1e6:.0f} µs ({t / fixed:.0%})"
        for a, t in sorted(areas.items(), key=lambda kv: -kv[1]) if t / fixed >= 0.005))
    # Stages: inclusive profiled time, scaled to the unprofiled CPU time.
    scale = cpu_s / total if total else 0.0
    parts = []
    for stage, plus, minus in STAGES:
        t = sum(_inclusive(stats, f, fn) for f, fn in plus)
        t -= sum(_inclusive(stats, f, fn) for f, fn in minus)
        if t > 0:
            parts.append((stage, t))
    print("  by stage (inclusive, scaled to unprofiled CPU): " + ", ".join(
        f"{stage} ~{t * scale / n * 1e6:.0f} µs ({t / total:.0%})" for stage, t in parts))


def _area(file: str, name: str) -> str:
    """Which part of the stack a profiled function belongs to."""
    if "clubjapon_ops" in file:
        part = file.split("clubjapon_ops/")[-1]
        return "ours:" + part.split("/")[0].removesuffix(".py")
    if file == "~":  # C functions
        for marker, area in (("_socket", "socket I/O (C)"), ("sqlite3", "sqlite3 (C)"),
                             ("_ssl", "ssl (C)"), ("_thread", "locks (C)"),
                             ("_queue", "locks (C)")):
            if marker in name:
                return area
        return "builtins (C)"
    for lib in ("sqlalchemy", "requests", "urllib3", "http/client", "smtplib", "json",
                "tenacity", "yaml", "jinja2", "markupsafe", "email", "socket", "ssl",
                "threading", "concurrent", "logging"):
        if f"/{lib}" in file:
            return lib
    return "other"


def eight_bit_rows(send: Any, sink: Any, c: int, n: int, rounds: int) -> list[tuple[str, ...]]:
    """Quoted-printable (the default since issue 23) against 8bit bodies (SMTP_EIGHT_BIT=true,
    what every send did before), in pairs run back to back, so both see the same load."""
    print(f"\nquoted-printable (default) and 8bit (SMTP_EIGHT_BIT=true), {rounds} pair(s) "
          f"back to back, which goes first alternating, {c} connection(s)")
    kinds: tuple[tuple[str, dict[str, str]], ...] = (
        ("quoted-printable", {}), ("8bit", {"SMTP_EIGHT_BIT": "true"}))
    pairs: list[dict[str, Measure]] = []
    for i in range(rounds):
        pair: dict[str, Measure] = {}
        # ABBA order: a load that rises or falls through a pair favours neither kind.
        for kind, more in (kinds if i % 2 == 0 else kinds[::-1]):
            before = sink.received()
            m, _ = send(f"smtp, {kind}", **more)
            m.received = sink.received() - before
            show(m)
            pair[kind] = m
        pairs.append(pair)
    # The load on a 2-core machine (the sink, the sender's lanes, anything else) drifts from
    # one send to the next: each pair's ratio cancels it, a ratio of medians taken at
    # different moments does not. Both are printed; the target is judged on the pairs.
    ratios = sorted(p["quoted-printable"].rate / p["8bit"].rate - 1 for p in pairs)
    change = statistics.median(ratios)
    qp, eight = (statistics.median(p[k].rate for p in pairs) for k in ("quoted-printable", "8bit"))
    cpu = {k: statistics.median(p[k].cpu_s / p[k].n for p in pairs) * 1e6
           for k in ("quoted-printable", "8bit")}
    cpu_change = statistics.median(
        p["quoted-printable"].cpu_s / p["8bit"].cpu_s - 1 for p in pairs)
    return [
        (f"smtp-sink, {c} conn., quoted-printable / 8bit ({n:,} msgs, {rounds} pairs)",
         f"{change:+.1%} (pairs {ratios[0]:+.1%} to {ratios[-1]:+.1%})",
         "within 10% (issue 23)", verdict(change >= -0.10), ""),
        ("  medians apart",
         f"{qp:,.0f} / {eight:,.0f} msg/s ({qp / eight - 1:+.1%})", "", "", ""),
        ("  CPU/msg quoted-printable / 8bit",
         f"{cpu['quoted-printable']:.0f} / {cpu['8bit']:.0f} µs ({cpu_change:+.1%} by pair)",
         "(load-independent)", "", ""),
    ]


def loads(m: Measure) -> str:
    return f"{m.load_before:.2f} -> {m.load_after:.2f}"


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


# ---------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--mailmerge-messages", type=int, default=2_000,
                        help="mailmerge sends this many of them (it does ~200 msg/s)")
    parser.add_argument("--connections", default="1,2,4", help="SMTP_CONNECTIONS to measure")
    parser.add_argument("--commit-every", type=int, default=1,
                        help="CLUBJAPON_SEND_COMMIT_EVERY for the SMTP sends (default 1)")
    parser.add_argument("--profile", action="store_true",
                        help="also profile one SMTP and one Brevo send")
    parser.add_argument("--top", type=int, default=18, help="profile rows to print")
    parser.add_argument("--dkim", action="store_true",
                        help="also measure DKIM signing: per message, and one signed SMTP send")
    parser.add_argument("--eight-bit", action="store_true",
                        help="also compare quoted-printable bodies (the default) with 8bit "
                             "(SMTP_EIGHT_BIT=true) at the last connection count, in pairs")
    parser.add_argument("--eight-bit-rounds", type=int, default=3,
                        help="pairs of that comparison (default 3; the median of the "
                             "pairs' ratios is kept)")
    parser.add_argument("--smoke", action="store_true",
                        help="30 messages, 1 connection, a Python sink, no mailmerge: seconds")
    parser.add_argument("--child-send", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--profile-to", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_send:
        child_send(args.profile_to)
        return
    if args.smoke:
        # The comparison's code runs too (one round), so that it cannot rot either.
        args.messages, args.connections, args.eight_bit = min(args.messages, 30), "1", True

    n = args.messages
    small = max(1, n // 10)
    # The peak RSS at N/10 and at N says whether memory stays flat; a smoke run sends once.
    sizes = (n,) if args.smoke else (small, n)
    connections = [int(c) for c in args.connections.split(",") if c.strip()]
    print(f"cpus: {os.cpu_count()}, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
          " (1, 5, 15 min; machine shared with other work)")
    print(f"edition {SLUG}; {n:,} fictitious contacts (fr/en/ja in thirds); rate limit off; "
          "each send in a fresh process on a fresh copy of the synced database")
    sink_binary = None if args.smoke else smtp_sink_binary()
    merge_binary = mailmerge_binary() if sink_binary else None
    use_sink = sink_binary is not None or args.smoke

    table: list[tuple[str, ...]] = [("measure", "figure", "target", "", "load 1 min")]
    rss: list[tuple[str, Measure, Measure]] = []
    smtp: dict[int, Measure] = {}
    with tempfile.TemporaryDirectory(prefix="bench-send-") as tmp_name:
        tmp = Path(tmp_name)
        home = make_home(tmp)
        started = time.perf_counter()
        dbs = {size: synced_db(home, size) for size in sorted(set(sizes))}
        synced = " and ".join(f"{size:,}" for size in sizes)
        print(f"synced {synced} contacts in {time.perf_counter() - started:.1f} s; "
              f"one message: {message_sizes(home)}")
        profiles: list[tuple[str, str, int, float]] = []

        def send(label: str, size: int, **env: str) -> tuple[Measure, dict[str, Any]]:
            db = fresh_copy(dbs[size], re.sub(r"\W+", "-", f"{label}-{size}"))
            return run_child(label, size, base_env(
                home, CLUBJAPON_DATABASE_URL=f"sqlite:///{db}", **env))

        if use_sink:
            sink = SmtpSink(sink_binary, tmp)
            try:
                sink_name = "smtp-sink" if sink_binary else "bench/_smtp_sink.py"
                print(f"\nSMTP to {sink_name} on 127.0.0.1:{sink.port} (jobs.send_campaign, "
                      f"CLUBJAPON_TRANSPORT=smtp, CLUBJAPON_SEND_COMMIT_EVERY={args.commit_every})")
                for c in connections:
                    env = {"CLUBJAPON_TRANSPORT": "smtp", "SMTP_HOST": "127.0.0.1",
                           "SMTP_PORT": str(sink.port), "SMTP_CONNECTIONS": str(c),
                           "CLUBJAPON_SEND_COMMIT_EVERY": str(args.commit_every)}
                    pair = []
                    for size in sizes:
                        before, cpu = sink.received(), process_cpu(sink.proc.pid)
                        m, _ = send(f"smtp, {c} connection{'s' if c > 1 else ''}", size, **env)
                        m.received = sink.received() - before
                        m.sink_cpu_s = process_cpu(sink.proc.pid) - cpu
                        show(m)
                        pair.append(m)
                    smtp[c] = pair[-1]
                    if len(pair) > 1:
                        rss.append((pair[1].label, pair[0], pair[1]))
                if args.eight_bit:
                    c = connections[-1]
                    env = {"CLUBJAPON_TRANSPORT": "smtp", "SMTP_HOST": "127.0.0.1",
                           "SMTP_PORT": str(sink.port), "SMTP_CONNECTIONS": str(c),
                           "CLUBJAPON_SEND_COMMIT_EVERY": str(args.commit_every)}
                    table += eight_bit_rows(
                        lambda label, **more: send(label, n, **env, **more), sink, c, n,
                        1 if args.smoke else args.eight_bit_rounds)
                    key = dkim_key(tmp)
                    unsigned_ms, signed_ms = signing_cost(home, key)
                    print(f"\nDKIM (rsa-sha256, 2048-bit key, relaxed/relaxed): building one "
                          f"message takes {unsigned_ms:.2f} ms CPU unsigned, {signed_ms:.2f} ms "
                          f"signed (+{signed_ms - unsigned_ms:.2f} ms)")
                    c = connections[-1]
                    before = sink.received()
                    signed, _ = send(f"smtp, {c} conn., DKIM", n, **{
                        "CLUBJAPON_TRANSPORT": "smtp", "SMTP_HOST": "127.0.0.1",
                        "SMTP_PORT": str(sink.port), "SMTP_CONNECTIONS": str(c),
                        "CLUBJAPON_SEND_COMMIT_EVERY": str(args.commit_every),
                        **dkim_env(key)})
                    signed.received = sink.received() - before
                    show(signed)
                    plain = smtp[c]
                    table.append(("DKIM cost per message (in process)",
                                  f"+{signed_ms - unsigned_ms:.2f} ms CPU",
                                  f"{unsigned_ms:.2f} -> {signed_ms:.2f} ms", "", ""))
                    table.append((f"smtp-sink, {c} conn., DKIM ({n:,} msgs)",
                                  f"{signed.rate:,.0f} msg/s",
                                  f"unsigned {plain.rate:,.0f} msg/s", "",
                                  loads(signed)))
                    table.append(("  CPU/msg signed / unsigned",
                                  f"{signed.cpu_s / signed.n * 1000:.2f} / "
                                  f"{plain.cpu_s / plain.n * 1000:.2f} ms", "", "", ""))
                if args.profile:
                    c = connections[-1]
                    path = str(tmp / "smtp.prof")
                    db = fresh_copy(dbs[n], "smtp-profile")
                    run_child("smtp profiled", n, base_env(
                        home, CLUBJAPON_DATABASE_URL=f"sqlite:///{db}",
                        CLUBJAPON_TRANSPORT="smtp", SMTP_HOST="127.0.0.1",
                        SMTP_PORT=str(sink.port), SMTP_CONNECTIONS=str(c)), profile_to=path)
                    profiles.append((f"smtp, {c} connections", path, n, smtp[c].cpu_s))

                merged: Measure | None = None
                if merge_binary:
                    m_count = min(n, args.mailmerge_messages)
                    subset = (f" (a subset: the first {m_count:,} of the {n:,}; "
                              "--mailmerge-messages)" if m_count < n else "")
                    print(f"\nmailmerge {merge_binary.parent.parent.name} to the same sink"
                          f"{subset}")
                    files = mailmerge_files(home, m_count, sink.port)
                    before, cpu = sink.received(), process_cpu(sink.proc.pid)
                    merged = run_mailmerge(merge_binary, files, m_count)
                    merged.received = sink.received() - before
                    merged.sink_cpu_s = process_cpu(sink.proc.pid) - cpu
                    show(merged)
                    if merged.received != m_count:
                        print(f"  !! the sink counted {merged.received} messages, "
                              f"expected {m_count}")
            finally:
                sink.stop()
            for c, m in smtp.items():
                table.append((f"smtp-sink, {c} conn. ({n:,} msgs)", f"{m.rate:,.0f} msg/s",
                              ">= 2,000 msg/s", verdict(m.rate >= 2000), loads(m)))
            if merged is not None and smtp:
                best_c, best = max(smtp.items(), key=lambda kv: kv[1].rate)
                ratio = best.rate / merged.rate
                table.append((f"mailmerge ({merged.n:,} msgs)", f"{merged.rate:,.0f} msg/s",
                              "(reference)", "", loads(merged)))
                table.append((f"ours ({best_c} conn.) / mailmerge", f"{ratio:.1f}x",
                              ">= 10x", verdict(ratio >= 10), ""))
                # CPU per message does not depend on what else runs on the machine.
                cpu_ratio = (merged.cpu_s / merged.n) / (best.cpu_s / best.n)
                table.append((f"  CPU/msg mailmerge / ours ({best_c} conn.)",
                              f"{cpu_ratio:.1f}x", "(load-independent)", "", ""))
                four = smtp.get(4)
                if four is not None and best_c != 4:
                    table.append(("ours (4 conn., default) / mailmerge",
                                  f"{four.rate / merged.rate:.1f}x", ">= 10x",
                                  verdict(four.rate / merged.rate >= 10), ""))
        else:
            table.append(("smtp-sink / mailmerge", "skipped", "", "no apt-get", ""))

        print("\nBrevo-shaped API on 127.0.0.1 (bench/_brevo_sink.py, own process; "
              "CLUBJAPON_TRANSPORT=brevo)")
        with brevo_sink() as (url, sink_pid):
            env = {"CLUBJAPON_TRANSPORT": "brevo", "BREVO_BASE_URL": url,
                   "BREVO_API_KEY": BREVO_KEY}
            pair = []
            for size in sizes:
                before, cpu = brevo_stats(url), process_cpu(sink_pid)
                m, _ = send("brevo API", size, **env)
                after = brevo_stats(url)
                m.sink_cpu_s = process_cpu(sink_pid) - cpu
                m.requests = after["requests"] - before["requests"]
                versions = after["versions"] - before["versions"]
                show(m)
                if versions != size or after["refused"] != before["refused"]:
                    print(f"  !! the sink accepted {versions} versions, expected {size}; "
                          f"refused {after['refused'] - before['refused']}")
                pair.append(m)
            if len(pair) > 1:
                rss.append((pair[1].label, pair[0], pair[1]))
            table.append((f"Brevo API ({n:,} msgs, {pair[-1].requests} requests)",
                          f"{pair[-1].rate:,.0f} msg/s", ">= 3,000 msg/s",
                          verdict(pair[-1].rate >= 3000), loads(pair[-1])))
            if args.profile:
                path = str(tmp / "brevo.prof")
                db = fresh_copy(dbs[n], "brevo-profile")
                run_child("brevo profiled", n, base_env(
                    home, CLUBJAPON_DATABASE_URL=f"sqlite:///{db}", **env), profile_to=path)
                profiles.append(("brevo API", path, n, pair[-1].cpu_s))

        for label, path, size, cpu_s in profiles:
            print_profile(label, path, size, args.top, cpu_s)

    for label, a, b in rss:
        growth = b.peak_rss_mb / a.peak_rss_mb - 1
        table.append((f"peak RSS, {label}", f"{a.peak_rss_mb:.1f} -> {b.peak_rss_mb:.1f} MB "
                      f"({growth:+.1%})", f"flat: {small:,} -> {n:,} <= +10%",
                      verdict(growth <= RSS_FLAT), ""))
        table.append(("  of which at the 1st answer", f"{a.rss_first_mb:.1f} -> "
                      f"{b.rss_first_mb:.1f} MB", "(setup: load, lint, plan, claim)", "", ""))

    print(f"\nSummary ({n:,} messages; load average (1, 5, 15 min) at the end "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())})")
    widths = [max(len(row[i]) for row in table) for i in range(5)]
    for row in table:
        print("  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))


if __name__ == "__main__":
    main()
