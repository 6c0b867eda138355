"""SMTP pipelining across messages: the next envelope travels with this message's content,
and a message announced but not sent next is never delivered."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from clubjapon_ops import jobs
from clubjapon_ops.contacts import Contact
from clubjapon_ops.delivery.message import MimeBuilder
from clubjapon_ops.delivery.transports.base import Outgoing, Status
from clubjapon_ops.delivery.transports.smtp import SmtpConfig, SmtpTransport
from tests.delivery.conftest import SLUG, home, make_settings  # noqa: F401
from tests.fakes.smtp_server import Behaviour, RecordingHandler, smtp_server

FROM = "club-japon@example.org"


@pytest.fixture
def outgoing(home: Path):  # type: ignore[no-untyped-def]  # noqa: F811
    newsletter = jobs.newsletter_for_sending(make_settings(home), SLUG)

    def make(row_id: int, email: str) -> Outgoing:
        contact = Contact(email=email, source="csv", first_name="Aki", language="ja")
        return Outgoing(row_id, email, newsletter.personalise(contact), SLUG)

    return make


# Longer than any test may last: a step that waited for an answer that never comes would
# hang past without_waiting()'s limit instead of ending in a timeout that looks like a reply.
NEVER = 3600.0


def transport(port: int, timeout: float = 30.0) -> SmtpTransport:
    return SmtpTransport(SmtpConfig("127.0.0.1", port, connections=1, retry_wait=0.01,
                                    timeout=timeout), FROM, MimeBuilder(FROM))


def without_waiting(step: Callable[[], None]) -> None:
    """Run ``step``, which must not wait for the server; fail if it is still waiting after a
    minute (it would wait an hour for the answer: no stopwatch near its normal duration)."""
    failure: list[BaseException] = []

    def run() -> None:
        try:
            step()
        except BaseException as exc:  # re-raised in the test's thread
            failure.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(60)
    assert not thread.is_alive(), "waited for an answer the server will never send"
    if failure:
        raise failure[0]


def delivered(server: RecordingHandler) -> dict[str, int]:
    return dict(server.counts)


def test_each_announced_message_is_delivered_once_in_order(outgoing) -> None:  # type: ignore[no-untyped-def]
    items = [outgoing(i, f"r{i}@example.com") for i in range(5)]
    with smtp_server(Behaviour(pipelining=True)) as (port, server):
        smtp = transport(port)
        try:
            results = [smtp.send([item], then=items[i + 1] if i + 1 < len(items) else None)[0]
                       for i, item in enumerate(items)]
        finally:
            smtp.close()
    assert [r.status for r in results] == [Status.SENT] * 5
    assert [address for address, _ in server.received] == [i.envelope_to for i in items]


def test_an_announced_message_that_does_not_come_is_never_delivered(outgoing) -> None:  # type: ignore[no-untyped-def]
    a, b, c = (outgoing(i, f"{n}@example.com") for i, n in enumerate("abc"))
    with smtp_server(Behaviour(pipelining=True)) as (port, server):
        smtp = transport(port, timeout=NEVER)
        try:
            assert smtp.send([a], then=b)[0].status is Status.SENT
            # c comes instead of b (b's row was taken back): b's open transaction is dropped.
            assert smtp.send([c], then=b)[0].status is Status.SENT
        finally:
            # With b's envelope still open: hang up, never QUIT into DATA (the QUIT would be
            # taken as message content, and its answer would never come).
            without_waiting(smtp.close)
    assert delivered(server) == {"a@example.com": 1, "c@example.com": 1}


def test_a_refused_announced_recipient_is_recorded_and_the_next_goes_on(outgoing) -> None:  # type: ignore[no-untyped-def]
    a, bad, c = outgoing(1, "a@example.com"), outgoing(2, "nobody@example.com"), outgoing(
        3, "c@example.com")
    with smtp_server(Behaviour(pipelining=True, reject=("nobody",))) as (port, server):
        smtp = transport(port)
        try:
            results = [smtp.send([a], then=bad)[0], smtp.send([bad], then=c)[0],
                       smtp.send([c])[0]]
        finally:
            smtp.close()
    assert [r.status for r in results] == [Status.SENT, Status.REJECTED, Status.SENT]
    assert results[1].suppress and "550" in results[1].suppress
    assert delivered(server) == {"a@example.com": 1, "c@example.com": 1}


def test_a_batch_announces_each_next_message_itself(outgoing) -> None:  # type: ignore[no-untyped-def]
    items = [outgoing(i, f"b{i}@example.com") for i in range(4)]
    with smtp_server(Behaviour(pipelining=True, tempfail_times={"b2": 1})) as (port, server):
        smtp = transport(port)
        try:
            results = smtp.send(items)
        finally:
            smtp.close()
    # b2 is greylisted once, retried on a fresh transaction, and b3 still goes once.
    assert [r.status for r in results] == [Status.SENT] * 4
    assert delivered(server) == {i.envelope_to: 1 for i in items}
    assert server.tempfailed["b2@example.com"] == 1


def test_a_non_ascii_address_fails_alone_and_is_never_announced(outgoing) -> None:  # type: ignore[no-untyped-def]
    # Accepted by the address check (internationalised local part), but SMTP without
    # SMTPUTF8 cannot carry it: that message fails, its neighbours go as usual.
    a, odd, c = outgoing(1, "a@example.com"), outgoing(2, "jérôme@example.com"), outgoing(
        3, "c@example.com")
    with smtp_server(Behaviour(pipelining=True)) as (port, server):
        smtp = transport(port, timeout=NEVER)
        try:
            results = [smtp.send([a], then=odd)[0], smtp.send([odd], then=c)[0]]
            without_waiting(lambda: results.append(smtp.send([c])[0]))
        finally:
            smtp.close()
    assert [r.status for r in results] == [Status.SENT, Status.FAILED, Status.SENT]
    assert "SMTPUTF8" in (results[1].error or "") and results[1].suppress is None
    assert delivered(server) == {"a@example.com": 1, "c@example.com": 1}


def test_a_server_gone_while_an_announced_data_waited_means_retry_not_unknown(
    outgoing,  # type: ignore[no-untyped-def]
) -> None:
    a, b = outgoing(1, "a@example.com"), outgoing(2, "b@example.com")
    with smtp_server(Behaviour(pipelining=True)) as (port, _server):
        smtp = SmtpTransport(SmtpConfig("127.0.0.1", port, connections=1, attempts=1),
                             FROM, MimeBuilder(FROM))
        assert smtp.send([a], then=b)[0].status is Status.SENT
    # The server went away (a restart, an idle timeout) before b's content was written:
    # b was never taken, so it is retried later rather than left for the operator.
    result = smtp.send([b])[0]
    smtp.close()
    assert result.status is Status.RETRY, result
