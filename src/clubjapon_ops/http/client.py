"""The one HTTP layer (CRM and email APIs): a session, timeouts, pacing and the only retry
policy.

Retries live here and nowhere else. A call is retried on 429, 5xx, timeouts, dropped
connections and malformed answers (not JSON, wrong shape), with exponential backoff and
jitter, bounded by a number of attempts and a total time; any other 4xx is final. Secrets
never reach a log line or an error message: messages are built from our own words plus a
short, redacted excerpt of what the server said.
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import requests
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_before_delay,
)

from clubjapon_ops import __version__
from clubjapon_ops.errors import AuthError, RetryableError, SourceError
from clubjapon_ops.http.pacing import Pacer, RateHint

log = logging.getLogger(__name__)

T = TypeVar("T")
USER_AGENT = f"clubjapon-ops/{__version__} (+https://github.com/clubjapon/clubjapon-ops)"
_EXCERPT = 200


class TransientError(RetryableError):
    """A call failed in a way that the same call may not fail again (429, 5xx, timeout)."""

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None,
        cause: str | None = None, maybe_taken: bool = False,
    ) -> None:
        super().__init__(message, retry_after=retry_after)
        self.status = status
        # Short words for a person and the ledger: '429', '500', 'timeout', 'connection lost'.
        self.cause = cause or (str(status) if status else "error")
        # True when the server may have acted on the request (a 5xx, no answer in time, a
        # connection lost after the request left); False when it surely did not (a 429, a
        # connection never made).
        self.maybe_taken = maybe_taken


class GaveUp(SourceError):
    """Every attempt of one call failed transiently; says whether the server may have acted.

    ``cause`` is the last attempt's ('500', '429', 'timeout', ...); ``maybe_taken`` is True
    when any attempt may have been acted on, so a caller without an idempotency key must not
    call it a refusal.
    """

    def __init__(self, message: str, *, cause: str, maybe_taken: bool, reason: str = "",
                 detail: str = "") -> None:
        super().__init__(message)
        self.cause = cause
        self.maybe_taken = maybe_taken
        self.reason = reason  # the last attempt's failure: 'POST /v3/x: server error (HTTP 500)'
        self.detail = detail  # how the call gave up: 'gave up after 6 attempts in 197.0 s'


class CredentialsRefused(AuthError):
    """A 401 or 403: the server took nothing; ``status`` says which."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class RetryNotice:
    """One failed attempt of a call, and when the next one goes (for a progress line)."""

    service: str
    cause: str
    attempt: int
    wait_s: float
    next_try_at: datetime


class MalformedPage(TransientError):
    """The answer is not JSON, or not shaped as the API documents: retried like a 5xx."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message, status=status, cause="unreadable answer", maybe_taken=True)


class UncertainError(RetryableError):
    """The request may have reached the server, and it is not safe to send it again."""

    def __init__(self, message: str, *, cause: str = "timeout") -> None:
        super().__init__(message)
        self.cause = cause  # 'timeout' or 'connection lost'


@dataclass(frozen=True)
class RetryPolicy:
    """How hard one call is retried: attempts, total time, and the backoff curve."""

    attempts: int = 6
    total_s: float = 300.0
    initial_wait_s: float = 1.0
    max_wait_s: float = 60.0
    jitter_s: float = 1.0


@dataclass
class HttpStats:
    """What a client did, for logs and the benchmark."""

    requests: int = 0
    rate_limited: int = 0
    retries: int = 0
    paced_s: float = 0.0


def no_hint(_headers: Mapping[str, str]) -> RateHint | None:
    """For APIs that say nothing about their rate limit."""
    return None


def retry_after(response: requests.Response) -> float | None:
    """Read a Retry-After header (seconds or an HTTP date); None when absent or unreadable."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


@dataclass(frozen=True)
class Api:
    """One provider: where it is, how we authenticate, and how it speaks of rate limits."""

    name: str
    base_url: str
    auth_headers: Mapping[str, str]
    auth_setting: str
    rate_hint: Callable[[Mapping[str, str]], RateHint | None] = no_hint
    # Given a 429, return how long to wait (None: back off), or raise StopRun to give up.
    on_rate_limit: Callable[[requests.Response], float | None] = retry_after
    secrets: tuple[str, ...] = field(default=(), repr=False)


class HttpClient:
    """JSON calls to one API with connection reuse, a timeout, pacing and bounded retries."""

    def __init__(
        self,
        api: Api,
        *,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        pacer: Pacer | None = None,
        sleep: Callable[[float], None] = time.sleep,
        session: requests.Session | None = None,
    ) -> None:
        self.api = api
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.pacer = pacer or Pacer(sleep=sleep)
        self.stats = HttpStats()
        self.sleep = sleep
        self._secrets = sorted(
            {s for s in (*api.secrets, *api.auth_headers.values()) if len(s) >= 4},
            key=len, reverse=True,
        )
        self.session = session or requests.Session()
        self.session.headers.update({"User-Agent": USER_AGENT, "Accept": "application/json"})
        self.session.headers.update(api.auth_headers)
        # Told of every failed attempt before its wait (a progress line); never retries itself.
        self.on_retry: Callable[[RetryNotice], None] | None = None

    def close(self) -> None:
        """Release the pooled connections."""
        self.session.close()

    def get(
        self, path: str, parse: Callable[[Any], T], *, params: Mapping[str, Any] | None = None,
        pacer: Pacer | None = None,
    ) -> T:
        """GET a JSON document and return ``parse(document)``, retrying as the policy says."""
        return self.call("GET", path, parse, params=params, pacer=pacer)

    def post(
        self, path: str, parse: Callable[[Any], T], *, body: Any, pacer: Pacer | None = None
    ) -> T:
        """POST a JSON body and return ``parse(answer)``, retrying as the policy says."""
        return self.call("POST", path, parse, body=body, pacer=pacer)

    def call(
        self,
        method: str,
        path: str,
        parse: Callable[[Any], T],
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        pacer: Pacer | None = None,
        decode: Callable[[requests.Response], T] | None = None,
        headers: Mapping[str, str] | None = None,
        resend_safe: bool = True,
    ) -> T:
        """Make one logical call; raise AuthError, SourceError or StopRun when it cannot succeed.

        ``decode``, when given, reads the answer itself, including a final 4xx (an email API
        says per message what it refused); ``resend_safe=False`` (a send without an
        idempotency key) turns a timeout or a dropped connection after the request may have
        left into UncertainError instead of a retry.
        """
        policy = self.retry
        retrying = Retrying(
            sleep=self.sleep,
            stop=stop_after_attempt(policy.attempts) | stop_before_delay(policy.total_s),
            wait=self._wait,
            retry=retry_if_exception_type(TransientError),
            before_sleep=self._log_retry,
            reraise=True,
        )
        started = time.monotonic()
        maybe_taken = False
        try:
            for attempt in retrying:
                with attempt:
                    try:
                        return self._once(method, path, parse, params, body, pacer, decode,
                                          headers, resend_safe)
                    except TransientError as exc:
                        maybe_taken = maybe_taken or exc.maybe_taken
                        raise
        except TransientError as exc:
            state = retrying.statistics
            took = time.monotonic() - started
            detail = f"gave up after {state.get('attempt_number', 1)} attempts in {took:.1f} s"
            if exc.retry_after is not None and exc.retry_after + took >= policy.total_s:
                detail = (
                    f"it asked us to wait {exc.retry_after:.0f} s, more than the "
                    f"{policy.total_s:.0f} s one call may spend retrying "
                    "(CLUBJAPON_HTTP_RETRY_SECONDS)"
                )
            raise GaveUp(
                self._redact(f"{self.api.name}: {exc} ({detail}); nothing from this call was "
                             "saved"),
                cause=exc.cause, maybe_taken=maybe_taken or exc.maybe_taken,
                reason=self._redact(str(exc)), detail=detail,
            ) from None
        raise AssertionError("unreachable: Retrying either returns or raises")

    def _once(
        self,
        method: str,
        path: str,
        parse: Callable[[Any], T],
        params: Mapping[str, Any] | None,
        body: Any,
        pacer: Pacer | None,
        decode: Callable[[requests.Response], T] | None = None,
        headers: Mapping[str, str] | None = None,
        resend_safe: bool = True,
    ) -> T:
        for each in (self.pacer, pacer):
            if each is not None:
                before = each.waited
                each.wait()
                self.stats.paced_s += each.waited - before
        name = self.api.name
        url = self.api.base_url + path
        self.stats.requests += 1
        try:
            response = self.session.request(
                method, url, params=params, json=body, timeout=self.timeout, headers=headers
            )
        except requests.ConnectTimeout:
            # Never connected: nothing was sent, so a retry is always safe.
            raise TransientError(f"{method} {path}: could not connect in time",
                                 cause="no connection") from None
        except requests.Timeout:
            if not resend_safe:
                raise UncertainError(f"{method} {path}: no answer within {self.timeout:g} s; "
                                     "the request may have been taken") from None
            raise TransientError(f"{method} {path}: no answer within {self.timeout:g} s",
                                 cause="timeout", maybe_taken=True) from None
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
            kind = type(exc).__name__
            refused = "NewConnectionError" in repr(exc) or "Connection refused" in repr(exc)
            if not resend_safe and not refused:
                raise UncertainError(f"{method} {path}: connection lost ({kind}); the request "
                                     "may have been taken", cause="connection lost") from None
            raise TransientError(
                f"{method} {path}: connection {'refused' if refused else 'lost'} ({kind})",
                cause="no connection" if refused else "connection lost",
                maybe_taken=not refused) from None
        except requests.RequestException as exc:
            raise SourceError(f"{name}: {method} {path} failed ({type(exc).__name__})") from None
        self.pacer.observe(self.api.rate_hint(response.headers))
        status = response.status_code
        log.debug(
            "api call",
            extra={"service": name, "method": method, "path": path, "status": status,
                   "took_s": round(response.elapsed.total_seconds(), 3)},
        )
        if status == 429:
            self.stats.rate_limited += 1
            wait = self.api.on_rate_limit(response)
            raise TransientError(f"{method} {path}: rate limited (HTTP 429)", status=429,
                                 retry_after=wait)
        if status >= 500:
            raise TransientError(f"{method} {path}: server error (HTTP {status})", status=status,
                                 maybe_taken=True)
        if status in (401, 403):
            raise CredentialsRefused(
                f"{name} refused our credentials (HTTP {status}): check "
                f"{self.api.auth_setting}{self._excerpt(response)}", status=status,
            )
        if decode is not None:
            return decode(response)
        if status >= 400:
            raise SourceError(
                self._redact(f"{name}: {method} {path} answered HTTP {status}"
                             f"{self._excerpt(response)}")
            )
        try:
            document = response.json()
        except ValueError:
            raise MalformedPage(f"{method} {path}: the answer is not JSON", status=status) from None
        return parse(document)

    def _wait(self, state: RetryCallState) -> float:
        """Wait as long as the server asked, else back off exponentially with jitter."""
        policy = self.retry
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, TransientError) and exc.retry_after is not None:
            return exc.retry_after
        backoff = policy.initial_wait_s * 2.0 ** (state.attempt_number - 1)
        return min(backoff, policy.max_wait_s) + random.uniform(0, policy.jitter_s)

    def _log_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        self.stats.retries += 1
        wait = state.upcoming_sleep
        next_try = datetime.now(UTC) + timedelta(seconds=wait)
        cause = getattr(exc, "cause", None) or "error"
        # One line per failed attempt, with when the next one goes (UTC, as every log time).
        log.warning(
            "api call retried",
            extra={
                "service": self.api.name,
                "attempt": state.attempt_number,
                "status": getattr(exc, "status", None),
                "cause": cause,
                "wait_s": round(wait, 3),
                "next_try_at": next_try.isoformat(timespec="seconds"),
                "reason": self._redact(str(exc)),
            },
        )
        if self.on_retry is not None:
            self.on_retry(RetryNotice(self.api.name, cause, state.attempt_number, wait,
                                      next_try))

    def _excerpt(self, response: requests.Response) -> str:
        """A short, redacted piece of an error answer: the API's own message when it has one."""
        text = ""
        try:
            document = response.json()
        except ValueError:
            document = None
        if isinstance(document, dict):
            text = str(document.get("message") or document.get("code") or "")
        text = " ".join(text.split())[:_EXCERPT]
        return f": {self._redact(text)}" if text else ""

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "[redacted]")
        return text


def parse_int_header(headers: Mapping[str, str], name: str) -> int | None:
    """Read an integer header; None when absent or not a number."""
    value = headers.get(name)
    try:
        return int(float(value)) if value is not None else None
    except ValueError:
        return None

