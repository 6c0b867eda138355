"""The bounce mailbox over IMAP (imapclient): list, fetch in batches, move or delete.

Every failure is one of the project's errors naming the setting to check; the password is
never part of a message.
"""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import ssl
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from imapclient import IMAPClient, imap4, tls
from imapclient.exceptions import IMAPClientError, LoginError

from clubjapon_ops.errors import AuthError, ConfigError, RetryableError, StopRun
from clubjapon_ops.hosts import is_loopback
from clubjapon_ops.settings import Settings, unset

log = logging.getLogger(__name__)
PROCESSED = "Processed"  # where handled messages go, created when missing
# Where messages left for a person go (unclassified, unverified): out of the folder read, so
# that junk is not parsed again every run, forever (the review: 23 s of CPU each run).
REVIEW = "Review"
# Each message is fetched whole up to this size: a DSN that returns a 20 MB attachment
# is classified on its first 256 KiB (the report and the returned headers come first; one
# of our messages is 40-50 KB). A batch of 250 then holds at most 64 MiB, and the bounce
# detectors' time on junk stays bounded (0.6 s a message at 1.5 MB, the review measured).
MAX_FETCH = 256 << 10
_BODY = f"BODY.PEEK[]<0.{MAX_FETCH}>".encode()
_BODY_KEYS = (b"BODY[]<0>", b"BODY[]")
# What a server may send for one command besides the messages asked for (a SEARCH of a big
# folder, a LIST, untagged chatter): beyond, it is stopped, never buffered (the review's
# server answered a 256 KiB FETCH with a 400 MB literal, then with an endless stream).
OTHER_BYTES = 16 << 20
_DISCARD_CHUNK = 1 << 20
_LITERAL = re.compile(rb"\{(\d+)\}\r?\n?$")  # a line announcing a literal of N bytes


# Without these there is no mailbox to read (the scheduler leaves the job out).
IMAP_NEEDS = ("BOUNCE_IMAP_HOST", "BOUNCE_IMAP_USERNAME", "BOUNCE_IMAP_PASSWORD")


@dataclass(frozen=True)
class ImapConfig:
    """Where the mailbox is and how to log in."""

    host: str
    port: int
    username: str
    password: str
    folder: str = "INBOX"
    security: str = "tls"  # tls | starttls | none
    delete: bool = False
    timeout: float = 60.0
    deadline: float = 600.0  # seconds one run may take, BOUNCE_IMAP_DEADLINE


def imap_config(settings: Settings) -> ImapConfig:
    """The BOUNCE_IMAP_* settings, or ConfigError naming the ones missing."""
    missing = unset(settings, IMAP_NEEDS)
    if missing:
        raise ConfigError(f"{', '.join(missing)} not set: the bounce mailbox cannot be read "
                          "(see docs/ops.md, 'Bounce mailbox')")
    security = settings.bounce_imap_security
    port = settings.bounce_imap_port or (993 if security == "tls" else 143)
    assert settings.bounce_imap_host and settings.bounce_imap_username  # checked above
    return ImapConfig(settings.bounce_imap_host, port, settings.bounce_imap_username,
                      settings.bounce_imap_password or "", settings.bounce_imap_folder,
                      security, settings.bounce_imap_delete,
                      deadline=settings.bounce_imap_deadline)


OnSocket = Callable[[socket.socket], None]


class _Client(IMAPClient):  # type: ignore[misc]  # imapclient is untyped
    """IMAPClient that hands its socket over as soon as it exists, before the greeting, and
    counts what the server sends from then on (_Guard): a server can stall or flood the login
    as well as a FETCH, and the run's watchdog must be able to cut it there too."""

    def __init__(self, *args: Any, on_socket: OnSocket | None = None, **kwargs: Any) -> None:
        self._on_socket = on_socket
        super().__init__(*args, **kwargs)

    def _create_IMAP4(self) -> Any:
        # imapclient's own choice of class (we never use its 'stream' mode), each made to
        # report its socket.
        on_socket = self._on_socket
        connect_timeout = getattr(self._timeout, "connect", None)
        base: Any = tls.IMAP4_TLS if self.ssl else imap4.IMAP4WithTimeout

        class Reporting(base):  # type: ignore[misc]
            def _create_socket(self, timeout: float | None = None) -> socket.socket:
                sock: socket.socket = super()._create_socket(timeout)
                if on_socket is not None:
                    on_socket(sock)
                # Counted and capped from the greeting on (imaplib reads it next).
                self.guard = _Guard(self)
                return sock

        if self.ssl:
            return Reporting(self.host, self.port, self.ssl_context, connect_timeout)
        return Reporting(self.host, self.port, connect_timeout)


class TooMuchData(Exception):
    """The server sent more than a command may bring back (raised inside imaplib)."""


class _Guard:
    """Counts and caps what the server sends: a literal past MAX_FETCH is read in chunks and
    dropped (the message is classified on its first MAX_FETCH bytes, as asked), and a
    command whose kept answer passes its budget stops with TooMuchData. Memory stays bounded
    whatever the server sends; imaplib alone would buffer a literal of any size whole."""

    def __init__(self, imap: Any) -> None:
        self.budget = OTHER_BYTES
        self.oversized = 0  # literals longer than asked, in this session
        self._extra = 0  # bytes of the literal announced last that are read and dropped
        self._read, self._readline = imap.read, imap.readline
        imap.read, imap.readline = self.read, self.readline  # this session's object only

    def allow(self, nbytes: int) -> None:
        """What the next command may bring back, in bytes."""
        self.budget = nbytes

    def _spend(self, nbytes: int) -> None:
        self.budget -= nbytes
        if self.budget < 0:
            raise TooMuchData

    def readline(self) -> bytes:
        """One response line (imaplib caps it at 1 MB), counted; a literal announced longer
        than MAX_FETCH is announced as MAX_FETCH, and read() drops the rest of it."""
        line: bytes = self._readline()
        self._spend(len(line))
        announced = _LITERAL.search(line)
        if announced is not None and len(announced.group(1)) > 15:
            raise TooMuchData  # a literal of a petabyte or more (and int() of 5,000 digits fails)
        if announced is not None and int(announced.group(1)) > MAX_FETCH:
            self._extra = int(announced.group(1)) - MAX_FETCH
            self.oversized += 1
            line = line[:announced.start()] + b"{%d}\r\n" % MAX_FETCH
        return line

    def read(self, size: int) -> bytes:
        """A literal (at most MAX_FETCH bytes, see readline), then what was cut off of it
        read in chunks and dropped: memory stays flat, the run's deadline bounds the time."""
        kept: bytes = self._read(size)
        self._spend(len(kept))
        left, self._extra = self._extra, 0
        while left > 0:
            chunk: bytes = self._read(min(left, _DISCARD_CHUNK))
            if not chunk:
                break  # the connection closed: imaplib says so on the next line
            left -= len(chunk)
        return kept


@dataclass(frozen=True)
class Fetched:
    """One message as the server keeps it."""

    uid: int
    raw: bytes
    received: datetime


class Mailbox:
    """One IMAP session on the bounce folder."""

    def __init__(self, config: ImapConfig, *, use_move: bool | None = None,
                 ssl_context: ssl.SSLContext | None = None, readonly: bool = False,
                 on_socket: OnSocket | None = None) -> None:
        self.config = config
        self._where = (f"the IMAP server at {config.host}:{config.port} "
                       "(BOUNCE_IMAP_HOST, BOUNCE_IMAP_PORT)")
        context = ssl_context or ssl.create_default_context()
        if config.security == "none" and not is_loopback(config.host):
            log.warning("BOUNCE_IMAP_SECURITY=none: the IMAP password travels in clear text",
                        extra={"host": config.host})
        with self._capped("the login"):
            self._open(config, context, readonly, on_socket)
        self.use_move = self.client.has_capability("MOVE") if use_move is None else use_move
        self._folders: dict[str, str] = {}  # our folders known to exist, by name

    def _open(self, config: ImapConfig, context: ssl.SSLContext, readonly: bool,
              on_socket: OnSocket | None) -> None:
        """Connect, log in and open the folder; each failure one of the project's errors."""
        try:
            self.client = _Client(config.host, config.port, ssl=config.security == "tls",
                                  ssl_context=context, timeout=config.timeout,
                                  on_socket=on_socket)
            if config.security == "starttls":
                self.client.starttls(context)
                if on_socket is not None:
                    on_socket(self.client.socket())  # the TLS socket took the old one's place
        except ssl.SSLError as exc:
            raise StopRun(f"TLS with {self._where} failed (BOUNCE_IMAP_SECURITY="
                          f"{config.security}): {exc.reason or exc}") from None
        except (OSError, IMAPClientError) as exc:
            raise RetryableError(f"cannot connect to {self._where}: {_why(exc)}") from None
        try:
            self.client.login(config.username, config.password)
        except LoginError:
            self.close()
            raise AuthError(f"{self._where} refused the login of BOUNCE_IMAP_USERNAME "
                            f"{config.username!r}: check BOUNCE_IMAP_USERNAME and "
                            "BOUNCE_IMAP_PASSWORD") from None
        except (OSError, IMAPClientError) as exc:
            self.close()
            raise RetryableError(f"{self._where} failed at login: {_why(exc)}") from None
        # On the private imaplib object: the only place where a literal's size is known
        # before it is read.
        self._guard: _Guard = self.client._imap.guard
        try:
            # Read-only (EXAMINE) for a dry run: not even the \Recent flags change.
            status = self.client.select_folder(config.folder, readonly=readonly)
        except IMAPClientError as exc:
            self.close()
            raise StopRun(f"BOUNCE_IMAP_FOLDER={config.folder!r}: cannot be opened on "
                          f"{self._where}: {_why(exc)}") from None
        self.uidvalidity = int(status.get(b"UIDVALIDITY", 0))

    def uids(self) -> list[int]:
        """Every message of the folder not marked deleted, oldest first."""
        self._guard.allow(OTHER_BYTES)
        with self._capped("SEARCH"):
            return sorted(int(u) for u in self.client.search(["UNDELETED"]))

    def fetch(self, uids: Sequence[int]) -> Iterator[Fetched]:
        """The messages with these UIDs (those still there), in UID order; each cut at
        MAX_FETCH bytes whatever the server sends."""
        # As many messages as asked, each at most MAX_FETCH, and room for their framing.
        self._guard.allow(len(uids) * (MAX_FETCH + 1024) + OTHER_BYTES)
        oversized = self._guard.oversized
        with self._capped("FETCH"):
            data: dict[int, dict[bytes, Any]] = self.client.fetch(
                list(uids), [_BODY, b"INTERNALDATE"])
        if self._guard.oversized > oversized:
            log.warning(f"{self._where} sent messages longer than the {MAX_FETCH >> 10} KiB "
                        "asked for: only their first part was read",
                        extra={"messages": self._guard.oversized - oversized})
        for uid in sorted(data):
            item = data[uid]
            raw = next((item[k] for k in _BODY_KEYS if k in item), b"") or b""
            received = item.get(b"INTERNALDATE")
            if isinstance(received, datetime):
                received = (received.astimezone(UTC) if received.tzinfo
                            else received.replace(tzinfo=UTC))
            else:
                received = datetime.now(UTC)
            yield Fetched(int(uid), bytes(raw), received)

    @contextlib.contextmanager
    def _capped(self, command: str) -> Iterator[None]:
        """TooMuchData as the StopRun a person reads (the session cannot go on after it)."""
        try:
            yield
        except TooMuchData:
            raise StopRun(f"{self._where} answered {command} with more data than was asked "
                          f"for (over {OTHER_BYTES >> 20} MiB past the messages' "
                          f"{MAX_FETCH >> 10} KiB each): stopped; check that server") from None

    def processed_folder(self, name: str = PROCESSED) -> str:
        """Processed (or another folder of ours), under the server's personal namespace
        prefix when it has one.

        Courier, Cyrus and some dovecot set-ups keep every folder under "INBOX." (RFC 2342
        NAMESPACE): there a top-level "Processed" cannot be created.
        """
        if not self.client.has_capability("NAMESPACE"):
            return name
        try:
            personal = self.client.namespace().personal or ()
        except IMAPClientError:
            return name
        prefix = personal[0][0] if personal else ""
        prefix = prefix.decode("utf-8", "replace") if isinstance(prefix, bytes) else prefix
        return f"{prefix}{name}"

    def _ensure(self, name: str) -> str:
        self._guard.allow(OTHER_BYTES)
        if name in self._folders:
            return self._folders[name]
        folder = self.processed_folder(name)
        try:
            if not self.client.folder_exists(folder):
                try:
                    self.client.create_folder(folder)
                except IMAPClientError:
                    # Another run created it meanwhile; if not, say so below.
                    if not self.client.folder_exists(folder):
                        raise
        except IMAPClientError as exc:
            raise StopRun(f"cannot create the folder {folder!r} for the bounce mailbox's "
                          f"messages on {self._where}: {_why(exc)}") from None
        self._folders[name] = folder
        return folder

    def finish(self, uids: Sequence[int]) -> None:
        """Move handled messages to Processed, or delete them with BOUNCE_IMAP_DELETE."""
        if not uids:
            return
        self._guard.allow(OTHER_BYTES)
        if self.config.delete:
            self.client.delete_messages(list(uids))
            self._expunge(uids)
            return
        self._move(uids, self._ensure(PROCESSED))

    def set_aside(self, uids: Sequence[int]) -> str:
        """Move messages left for a person to Review (never deleted); return the folder."""
        folder = self._ensure(REVIEW)
        if uids:
            self._guard.allow(OTHER_BYTES)
            self._move(uids, folder)
        return folder

    def _move(self, uids: Sequence[int], folder: str) -> None:
        if self.use_move:
            self.client.move(list(uids), folder)
            return
        # No MOVE (RFC 6851): copy, then delete the originals. A crash in between leaves a
        # copy in both folders, never none.
        self.client.copy(list(uids), folder)
        self.client.delete_messages(list(uids))
        self._expunge(uids)

    def _expunge(self, uids: Sequence[int]) -> None:
        if self.client.has_capability("UIDPLUS"):
            self.client.uid_expunge(list(uids))  # only these, never another's \Deleted
        else:
            self.client.expunge()

    def close(self) -> None:
        """Log out, ignoring a connection already gone (or a server still flooding it)."""
        try:
            self.client.logout()
        except (OSError, IMAPClientError, AttributeError, TooMuchData):
            with contextlib.suppress(OSError, IMAPClientError, AttributeError):
                self.client.shutdown()


def _why(exc: BaseException) -> str:
    if isinstance(exc, socket.timeout):
        return "timed out"
    text = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return text or type(exc).__name__
