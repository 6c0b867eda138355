"""SMTP over persistent connections, several at once; 4xx is transient, 5xx permanent."""

from __future__ import annotations

import contextlib
import logging
import select
import smtplib
import ssl
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_result,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from clubjapon_ops.delivery.message import MimeBuilder
from clubjapon_ops.delivery.transports.base import NEEDS_SMTPUTF8, Outgoing, Result, Status
from clubjapon_ops.errors import AuthError, StopRun

log = logging.getLogger(__name__)

# Rows claimed at once per connection. Each claim costs a few ms and its lanes wait for the
# slowest at its end: 250 keeps that under 5% of a send (50 cost 15% of the throughput,
# bench/bench_send.py), with memory still bounded.
CLAIM_PER_CONNECTION = 250

# Replies that prove the mailbox does not exist or cannot take mail: suppress the address.
_BAD_MAILBOX = (550, 551, 553)
# The check before a send waits at most this long for a connection (SMTP_TIMEOUT may be
# longer): an address that drops packets should stop the send in seconds, not minutes.
CHECK_TIMEOUT = 10.0


@dataclass(frozen=True)
class SmtpConfig:
    """Where and how to connect."""

    host: str
    port: int
    security: str = "none"  # none | starttls | tls
    username: str | None = None
    password: str | None = None
    timeout: float = 30.0
    connections: int = 4
    attempts: int = 3
    retry_wait: float = 2.0
    # SMTP_EIGHT_BIT: 8bit bodies where the server offers 8BITMIME; else quoted-printable.
    eight_bit: bool = False


class _Connection:
    """One SMTP session, reopened when it drops."""

    def __init__(self, config: SmtpConfig) -> None:
        self.config = config
        self.client: smtplib.SMTP | None = None
        # The envelope of the message expected next, sent ahead with the previous message's
        # content (RFC 2920), and the server's replies to it: (row id, MAIL, RCPT, DATA).
        self.ahead: tuple[int, Reply, Reply, Reply] | None = None

    def open(self) -> smtplib.SMTP:
        if self.client is not None:
            return self.client
        c = self.config
        client: smtplib.SMTP
        if c.security == "tls":
            client = smtplib.SMTP_SSL(c.host, c.port, timeout=c.timeout,
                                      context=ssl.create_default_context())
        else:
            client = smtplib.SMTP(c.host, c.port, timeout=c.timeout)
        client.ehlo()
        if c.security == "starttls":
            client.starttls(context=ssl.create_default_context())
            client.ehlo()
        if c.username:
            client.login(c.username, c.password or "")
        self.client = client
        return client

    def drop(self) -> None:
        # Closing is the one way out of a DATA the server accepted (354) for a message that
        # will not follow: the server discards the unfinished transaction.
        self.ahead = None
        if self.client is not None:
            try:
                self.client.close()
            finally:
                self.client = None

    def close(self) -> None:
        if self.ahead is not None:
            self.drop()  # QUIT would be read as message content
        if self.client is not None:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                self.client.quit()
            self.drop()


Reply = tuple[int, bytes]


def _server_spoke(client: smtplib.SMTP) -> bool:
    """True when the server sent something, or closed, while nothing was asked of it."""
    sock = client.sock
    if sock is None:
        return True
    if isinstance(sock, ssl.SSLSocket) and sock.pending():
        return True  # already decrypted, waiting to be read
    readable, _, _ = select.select([sock], [], [], 0)
    return bool(readable)


def _reply(code: int, text: bytes | str) -> str:
    message = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    return f"{code} {message}".strip()


def _data(client: smtplib.SMTP, data: bytes) -> tuple[int, bytes]:
    """DATA with content already dot-stuffed and CRLF-ended (smtplib's data() would scan
    every message with two regular expressions to do it again)."""
    client.putcmd("data")
    code, text = client.getreply()
    if code != 354:
        raise smtplib.SMTPDataError(code, text)
    client.send(data + b".\r\n")
    return client.getreply()


class SmtpTransport:
    """Sends through an SMTP server over a few persistent connections in parallel."""

    name = "smtp"
    idempotent = False
    per_message = True

    def __init__(self, config: SmtpConfig, mail_from: str, builder: MimeBuilder,
                 return_path: Callable[[Outgoing], str] | None = None) -> None:
        self.config = config
        self.mail_from = mail_from
        # The envelope sender of each message (bounce address, VERP); mail_from by default.
        self.return_path = return_path or (lambda item: self.mail_from)
        self.builder = builder
        self.batch_size = CLAIM_PER_CONNECTION * config.connections
        self.concurrency = config.connections
        # One connection per calling thread: the sender runs one lane per connection.
        self._local = threading.local()
        self._all: list[_Connection] = []
        self._lock = threading.Lock()

    def check(self) -> None:
        """Open one session (TLS and login included) and close it, before a send plans
        anything: an unreachable server or a refused login stops the run at once, naming
        the settings, instead of failing and retrying every message."""
        c = self.config
        where = f"the SMTP server at {c.host}:{c.port} (SMTP_HOST, SMTP_PORT)"
        conn = _Connection(replace(c, timeout=min(c.timeout, CHECK_TIMEOUT)))
        try:
            conn.open()
        except smtplib.SMTPAuthenticationError as exc:
            raise AuthError(f"{where} refused the login of SMTP_USERNAME {c.username!r}: "
                            f"{_reply(exc.smtp_code, exc.smtp_error)}; check SMTP_USERNAME "
                            "and SMTP_PASSWORD") from None
        except smtplib.SMTPNotSupportedError as exc:
            raise StopRun(f"{where} does not support what SMTP_SECURITY={c.security} or "
                          f"SMTP_USERNAME asks: {exc}") from None
        except smtplib.SMTPResponseException as exc:
            raise StopRun(f"{where} refused a session: "
                          f"{_reply(exc.smtp_code, exc.smtp_error)}") from None
        except ssl.SSLError as exc:
            raise StopRun(f"TLS with {where} failed (SMTP_SECURITY={c.security}): "
                          f"{exc.reason or exc}") from None
        except (smtplib.SMTPException, OSError) as exc:
            # Refused, unreachable, no such host, a timeout, a server that hung up at once.
            reason = exc.strerror or str(exc) or type(exc).__name__
            raise StopRun(f"cannot connect to {where}: {reason}") from None
        finally:
            conn.close()

    def _connection(self) -> _Connection:
        conn: _Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = _Connection(self.config)
            with self._lock:
                self._all.append(conn)
        return conn

    def send(self, batch: Sequence[Outgoing], idempotency_key: str | None = None,
             then: Outgoing | None = None) -> list[Result]:
        """Send each message in turn over this thread's connection.

        ``then`` is the message this thread will send next, if known: with PIPELINING its
        envelope goes out with the last message's content, so each message costs one round
        trip instead of two. Only its envelope: its content waits for its own call.
        """
        followers = [*batch[1:], then]
        return [self._send_with_retries(item, following)
                for item, following in zip(batch, followers, strict=True)]

    def _send_with_retries(self, item: Outgoing, then: Outgoing | None = None) -> Result:
        first = self._send_once(item, then)
        if first.status is not Status.RETRY or self.config.attempts <= 1:
            return first
        # Only a transient failure pays for the retry machinery.
        return self._retry(item, first)

    def _retry(self, item: Outgoing, first: Result) -> Result:
        def log_retry(state: RetryCallState) -> None:
            result = state.outcome.result() if state.outcome else None
            wait = state.next_action.sleep if state.next_action else 0
            log.warning("smtp transient failure, retrying", extra={
                "attempt": state.attempt_number, "error": getattr(result, "error", None),
                "wait_s": round(wait, 2)})

        retrying = Retrying(
            stop=stop_after_attempt(self.config.attempts),
            # Exponential from retry_wait, with up to one retry_wait of jitter.
            wait=wait_exponential(multiplier=self.config.retry_wait, max=60)
            + wait_random(0, self.config.retry_wait),
            retry=retry_if_result(lambda r: r.status is Status.RETRY),
            before_sleep=log_retry,
            retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
        )
        # The first attempt already happened: replay its answer, then tenacity waits and tries.
        answers = iter([first])
        result: Result = retrying(lambda: next(answers, None) or self._send_once(item))
        return result

    def _send_once(self, item: Outgoing, then: Outgoing | None = None) -> Result:
        conn = self._connection()
        if conn.ahead is not None and conn.ahead[0] != item.id:
            # The envelope sent ahead was for a message that did not come next (a retry, a
            # row taken back): hang up, which cancels it, and start afresh.
            conn.drop()
        if not item.envelope_to.isascii():
            return Result(item.id, Status.FAILED, error=NEEDS_SMTPUTF8)
        stage = "connect"
        try:
            client = conn.open()
            # 8BITMIME (RFC 6152), when asked: bodies go as UTF-8. Not by default, nor
            # signed: a later hop without it converts the body, which breaks a signature.
            eight_bit = (self.config.eight_bit and self.builder.signer is None
                         and client.has_extn("8bitmime"))
            mime = item.mime(self.builder, eight_bit=eight_bit)
            body = " BODY=8BITMIME" if eight_bit else ""
            mail_from = f"FROM:<{self.return_path(item)}>{body}"
            # Dot-stuffing (RFC 5321 4.5.2) only where the builder saw a line start with '.';
            # the builder's lines always end with CRLF.
            data = mime.data.replace(b"\r\n.", b"\r\n..") if mime.dot_lines else mime.data
            if client.has_extn("pipelining"):
                next_from = (f"FROM:<{self.return_path(then)}>{body}"
                             if then is not None else "")
                return self._send_pipelined(conn, client, item, data, mail_from, then,
                                            next_from)
            stage = "mail"
            # Addresses are normalised already: skip smtplib's slow address parsing.
            client.putcmd("mail", mail_from)
            code, text = client.getreply()
            if code != 250:
                return self._refused(conn, item, code, text, envelope=True)
            stage = "rcpt"
            client.putcmd("rcpt", f"TO:<{item.envelope_to}>")
            code, text = client.getreply()
            if code not in (250, 251):
                return self._refused(conn, item, code, text, envelope=False)
            stage = "data"
            code, text = _data(client, data)
        except smtplib.SMTPResponseException as exc:
            # _data() raises instead of returning for a refused DATA command.
            if exc.smtp_code == 421:  # the server is closing the session
                conn.drop()
            else:
                self._reset(conn)
            status = Status.RETRY if 400 <= exc.smtp_code < 500 else Status.FAILED
            return Result(item.id, status, error=_reply(exc.smtp_code, exc.smtp_error))
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            conn.drop()
            if stage == "data":
                # The message may have been taken before the line dropped: never resend it
                # on our own.
                return Result(item.id, Status.UNKNOWN, error=f"connection lost during DATA: {exc}")
            if stage == "connect":
                c = self.config
                return Result(item.id, Status.RETRY,
                              error=f"cannot connect to {c.host}:{c.port}: {exc}")
            return Result(item.id, Status.RETRY, error=f"connection lost at {stage}: {exc}")
        if code == 250:
            return Result(item.id, Status.SENT, provider_id=_reply(code, text)[:300])
        status = Status.RETRY if 400 <= code < 500 else Status.FAILED
        return Result(item.id, status, error=_reply(code, text))

    def _send_pipelined(self, conn: _Connection, client: smtplib.SMTP, item: Outgoing,
                        data: bytes, mail_from: str, then: Outgoing | None,
                        next_from: str = "") -> Result:
        """MAIL, RCPT and DATA in one write (RFC 2920); the content, dot-stuffed already, in
        the next, together with the envelope of ``then``: one round trip per message."""
        ahead, conn.ahead = conn.ahead, None
        # Encoded before anything is written: a next address that cannot go is not announced.
        following = (f"MAIL {next_from}\r\nRCPT TO:<{then.envelope_to}>\r\nDATA\r\n"
                     .encode("ascii") if then is not None and then.envelope_to.isascii()
                     else b"")
        if ahead is not None and _server_spoke(client):
            # It hung up (or said 421) while this DATA waited, open: the content was never
            # sent, so the message is not in doubt.
            conn.drop()
            return Result(item.id, Status.RETRY,
                          error="connection closed by the server before the content")
        try:
            if ahead is None:
                client.send(f"MAIL {mail_from}\r\nRCPT TO:<{item.envelope_to}>\r\n"
                            "DATA\r\n".encode("ascii"))
                mail, rcpt, data_reply = client.getreply(), client.getreply(), client.getreply()
            else:
                _, mail, rcpt, data_reply = ahead
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            conn.drop()  # the message itself was never sent
            return Result(item.id, Status.RETRY, error=f"connection lost at envelope: {exc}")
        try:
            if data_reply[0] == 354 and (mail[0] != 250 or rcpt[0] not in (250, 251)):
                # A server that took DATA despite a refusal: end it with an empty message
                # ourselves never counts as sent, then reset below.
                client.send(b".\r\n")
                client.getreply()
            if mail[0] != 250:
                return self._refused(conn, item, *mail, envelope=True)
            if rcpt[0] not in (250, 251):
                return self._refused(conn, item, *rcpt, envelope=False)
            if data_reply[0] != 354:
                self._reset(conn)
                status = Status.RETRY if 400 <= data_reply[0] < 500 else Status.FAILED
                return Result(item.id, status, error=_reply(*data_reply))
            client.send(b"".join((data, b".\r\n", following)))
            code, text = client.getreply()
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            conn.drop()
            return Result(item.id, Status.UNKNOWN, error=f"connection lost during DATA: {exc}")
        if then is not None and following:
            try:
                conn.ahead = (then.id, client.getreply(), client.getreply(), client.getreply())
            except (smtplib.SMTPServerDisconnected, OSError):
                conn.drop()  # only the next envelope is lost; this message has its answer
        if code == 250:
            return Result(item.id, Status.SENT, provider_id=_reply(code, text)[:300])
        status = Status.RETRY if 400 <= code < 500 else Status.FAILED
        return Result(item.id, status, error=_reply(code, text))

    def _refused(self, conn: _Connection, item: Outgoing, code: int, text: bytes,
                 *, envelope: bool) -> Result:
        self._reset(conn)
        reply = _reply(code, text)
        if 400 <= code < 500:
            if code == 421:
                conn.drop()
            return Result(item.id, Status.RETRY, error=reply)
        suppress = reply if not envelope and code in _BAD_MAILBOX else None
        status = Status.REJECTED if not envelope else Status.FAILED
        return Result(item.id, status, error=reply, suppress=suppress)

    @staticmethod
    def _reset(conn: _Connection) -> None:
        try:
            if conn.client is not None:
                conn.client.rset()
        except (smtplib.SMTPException, OSError):
            conn.drop()

    def close(self) -> None:
        """Say QUIT on every connection."""
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
