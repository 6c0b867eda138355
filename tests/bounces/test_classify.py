"""The classifier on real reports from several MTAs and providers, and on junk."""

from __future__ import annotations

import pytest

from clubjapon_ops.bounces.classify import MAX_RECIPIENTS, UNCLASSIFIED, classify
from tests.bounces.conftest import CORPUS, EXPECTED, corpus, forged_dsn


def test_the_corpus_table_names_every_vendored_message() -> None:
    on_disk = {str(p.relative_to(CORPUS)) for p in CORPUS.glob("*/*.eml")}
    assert on_disk == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_real_report_is_read_as_what_it_is(name: str) -> None:
    kind, addresses = EXPECTED[name]
    verdict = classify(corpus(name))
    assert verdict.kind == kind
    assert tuple(f.address for f in verdict.failures) == addresses


def test_failures_carry_the_dsn_status_which_tells_hard_from_soft() -> None:
    delayed = classify(corpus("flufl/dsn_05.eml"))  # Action: delayed, 4.4.1: still trying
    assert delayed.failures[0].kind == "delayed"
    assert delayed.failures[0].detail and delayed.failures[0].detail.startswith("4.4.1")
    soft = classify(corpus("sisimai/lhost-messagingserver-12.eml"))  # failed, 4.2.2
    assert soft.failures[0].kind == "soft" and soft.failures[0].detail.startswith("4.2.2")
    full = classify(corpus("sisimai/lhost-exchange2007-02.eml"))  # failed, 5.2.2: full
    assert full.failures[0].kind == "soft" and full.failures[0].detail.startswith("5.2.2")
    hard = classify(corpus("sisimai/lhost-postfix-02.eml"))
    assert {f.kind for f in hard.failures} == {"hard"}
    assert {f.detail[:5] for f in hard.failures if f.detail} == {"5.2.1", "5.1.1"}


def test_a_dsn_marked_auto_replied_is_still_a_bounce() -> None:
    # Postfix and Office 365 mark their DSNs Auto-Submitted: auto-replied (RFC 3834 says so).
    raw = corpus("sisimai/lhost-office365-03.eml")
    assert b"Auto-Submitted: auto-replied" in raw
    assert classify(raw).kind == "hard"


def test_the_returned_message_id_is_read_from_the_attached_headers() -> None:
    verdict = classify(corpus("sisimai/lhost-postfix-04.eml"))
    assert verdict.returned_message_id == "<A8F82EDD-E518-4F5C-8C70-BC4EFF24AB9F@example.ne.jp>"


@pytest.mark.parametrize("raw", [
    b"",
    b"\x00\xff\xfe garbage that is no email at all \x00" * 50,
    b"not a header line\r\n\r\nbody",
    corpus("sisimai/lhost-postfix-04.eml")[:400],  # a DSN cut short
    b"Content-Type: multipart/report; boundary=\"x\"\r\n\r\n--x\r\nContent-Type: message/"
    b"delivery-status\r\n\r\n\xff\xfe\x00",
    b"Subject: =?utf-8?b?!!!?=\r\nContent-Type: multipart/mixed\r\n\r\n" + b"--" * 10_000,
])
def test_junk_never_raises_and_is_left_unclassified_or_read(raw: bytes) -> None:
    verdict = classify(raw)
    assert verdict.kind in (UNCLASSIFIED, "hard", "soft", "auto_reply")
    if verdict.kind == UNCLASSIFIED:
        assert verdict.reason


def test_what_a_verdict_carries_is_text_every_store_keeps() -> None:
    raw = corpus("sisimai/lhost-postfix-04.eml")
    dirty = raw.replace(b"Subject:", b"Subject: \x00\xff\xfe\xed\xa0\x80 ", 1)
    verdict = classify(dirty)
    assert verdict.kind == "hard"
    texts = [*verdict.headers.values(), verdict.message_id or "", verdict.reason or "",
             verdict.returned_message_id or "", *(f.address for f in verdict.failures)]
    for text in texts:
        assert "\x00" not in text
        text.encode("utf-8")  # no lone surrogate left from the undecodable bytes


def test_a_report_naming_thousands_is_read_for_its_first_recipients_only() -> None:
    # Our messages have one recipient each; a DSN naming 5,000 is no report of ours, and
    # reading it took seconds (a list searched for each address, the review measured 6.9 s
    # at 20,000). Now the first MAX_RECIPIENTS are kept.
    blocks = "".join(f"Final-Recipient: rfc822; u{i}@example.com\nAction: failed\n"
                     "Status: 5.1.1\n\n" for i in range(5000))
    raw = ("From: MAILER-DAEMON@mx.example\nTo: bounces@example.org\nSubject: Undelivered\n"
           "MIME-Version: 1.0\nContent-Type: multipart/report; report-type=delivery-status; "
           "boundary=B\n\n--B\nContent-Type: text/plain\n\nfailed\n--B\n"
           "Content-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example\n\n"
           + blocks + "--B--\n").encode()
    verdict = classify(raw)
    assert verdict.kind == "hard"
    assert len(verdict.failures) == MAX_RECIPIENTS
    assert len({f.address for f in verdict.failures}) == MAX_RECIPIENTS


@pytest.mark.parametrize(("feedback", "kind"), [
    (b"abuse", "complaint"), (b"fraud", "other_report"), (b"virus", "other_report"),
    (b"opt-out", "opt_out")])
def test_only_a_readers_own_report_is_a_complaint(feedback: bytes, kind: str) -> None:
    # "fraud" (phishing in our name) and "virus" say nothing of the reader's wish.
    raw = corpus("sisimai/arf-02.eml").replace(b"Feedback-Type: abuse",
                                               b"Feedback-Type: " + feedback, 1)
    assert classify(raw).kind == kind


def test_an_address_with_a_control_character_is_no_recipient() -> None:
    hostile = ["victim\x07@example.com", "a\tb@example.com", "c\x1b[2Jd@example.com",
               "e\x9b31m@example.com", "f\x7f@example.com"]
    verdict = classify(forged_dsn(1, [*hostile, "reader@example.com"]))
    assert [f.address for f in verdict.failures] == ["reader@example.com"]
