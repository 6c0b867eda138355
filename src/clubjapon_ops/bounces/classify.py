"""What one message of the bounce mailbox is: a bounce (which addresses, permanent or not), a
complaint (ARF, RFC 5965), an auto-reply (RFC 3834) to ignore, or something we cannot tell.

Bounces are read by flufl.bounce (Mailman's detectors: RFC 3464 DSNs and the shapes of
Postfix, Exim, qmail, Exchange, Yahoo ...). Its "permanent" failures are the messages a
server gave up on: hard, unless the DSN's status says the cause was transient (4.x.x) or a
full mailbox (x.2.2), then soft. Its "temporary" ones are delay warnings (Action: delayed,
the server still tries): delayed, never a bounce. classify() never raises: a message it
cannot parse is unclassified, with the reason.
"""

from __future__ import annotations

import email
import email.policy
import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import Message
from email.parser import HeaderParser
from email.utils import getaddresses, parsedate_to_datetime

from flufl.bounce import all_failures

from clubjapon_ops.printable import has_control

HARD, SOFT, DELAYED, COMPLAINT, OPT_OUT = "hard", "soft", "delayed", "complaint", "opt_out"
BLOCKED = "blocked"  # refused for a policy (x.7.x: a blocklist, DMARC): not the address
AUTO_REPLY, OTHER_REPORT, UNCLASSIFIED = "auto_reply", "other_report", "unclassified"

# flufl.bounce logs every detector it runs at INFO and a detector's crash with a traceback
# before raising it; we count such a message as unclassified, so its own lines are noise.
logging.getLogger("flufl.bounce").setLevel(logging.CRITICAL)

# RFC 5965 feedback types (and RFC 6591, 6650): which are a reader's complaint. "fraud"
# (phishing in our name) and "virus" are reports about the message, not its reader's wish:
# other reports, filed, never suppressing.
_COMPLAINT_TYPES = {"abuse", "other", ""}
_OPT_OUT_TYPES = {"opt-out", "optout", "unsubscribe"}
# Out-of-office and other automatic replies: RFC 3834's header and the ones vendors use.
_AUTO_HEADERS = ("x-autoreply", "x-autorespond", "x-autoresponse", "x-mailautoreply")
_AUTO_PRECEDENCE = {"auto_reply", "junk", "bulk"}  # not "list": list mail is no reply
_AUTO_SUBJECT = re.compile(
    r"^\s*(auto(matic)?[ -]?(reply|response|antwort|respons)|out of (the )?office|"
    r"absence|abwesen|r[ée]ponse automatique|away from|on vacation|vacation|"
    r"respuesta autom[áa]tica|risposta automatica|自動応答|不在)",
    re.IGNORECASE)
_MESSAGE_ID = re.compile(rb"^message-id:[ \t]*(<[^>\s]{3,250}>)", re.IGNORECASE | re.MULTILINE)
_MAX_DETAIL = 300
# Each of our messages has one recipient: a DSN about it names one, an MTA's digest a few.
# More is no report of ours; the first ones are read, the rest ignored (time stays linear).
MAX_RECIPIENTS = 50
_STATUS = re.compile(r"^\s*([245])\.(\d{1,3}\.\d{1,3})")


@dataclass(frozen=True)
class Failure:
    """One address a bounce names, and how it failed."""

    address: str
    kind: str  # HARD or SOFT
    detail: str | None = None  # Status and Diagnostic-Code of the DSN, when it has them


@dataclass(frozen=True)
class Verdict:
    """What a message of the bounce mailbox says."""

    kind: str  # HARD/SOFT (see failures), COMPLAINT, OPT_OUT, AUTO_REPLY, OTHER_REPORT ...
    failures: tuple[Failure, ...] = ()
    message_id: str | None = None  # the report's own Message-ID
    date: datetime | None = None
    # What the report quotes of the message it is about: its Message-ID, Return-Path, To.
    returned_message_id: str | None = None
    # Addresses the report was delivered to or quotes as return path: where a VERP token is.
    envelope: tuple[str, ...] = ()
    # The unsubscribe tokens of the returned message's List-Unsubscribe: signed by us, they
    # prove which reader a complaint is about.
    returned_tokens: tuple[str, ...] = ()
    reason: str | None = None  # feedback type, or why it is unclassified
    headers: dict[str, str] = field(default_factory=dict)


def _safe(text: str) -> str:
    """Text every store keeps: no NUL, no lone surrogate (undecodable header bytes)."""
    return text.encode("utf-8", "replace").decode("utf-8").replace("\x00", "")


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return _safe(value.decode("utf-8", "replace"))
    return _safe(str(value or ""))


def _address(value: object) -> str | None:
    text = _text(value).strip().strip("<>").strip().lower()
    if text.startswith(("rfc822;", "rfc822 ;")):
        text = text.split(";", 1)[1].strip().strip("<>")
    # No space nor control character (a forged Final-Recipient carried BEL, ESC, TAB): no
    # real address has one, and stored, it would reach a terminal raw.
    if "@" not in text or " " in text or has_control(text) or len(text) > 320:
        return None
    return text


def _addresses(values: list[str]) -> list[str]:
    found: dict[str, None] = {}  # ordered, and a set: a report may list thousands
    for _, addr in getaddresses([_text(v) for v in values]):
        clean = _address(addr)
        if clean:
            found[clean] = None
    return list(found)


def _date(msg: Message) -> datetime | None:
    try:
        value = parsedate_to_datetime(_text(msg.get("Date")))
    except (TypeError, ValueError, IndexError):
        return None
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def _sub_headers(part: Message) -> list[Message]:
    """The header blocks inside a message/* or text/rfc822-headers part."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return [p for p in payload if isinstance(p, Message)]
    if isinstance(payload, Message):
        return [payload]
    text = part.get_payload(decode=True)
    if isinstance(text, bytes) and text.strip():
        block = text.decode("utf-8", "replace").replace("\r\n", "\n")
        return [HeaderParser().parsestr(chunk) for chunk in block.split("\n\n") if chunk.strip()]
    return []


def _returned(msg: Message) -> Message | None:
    """The headers of the message the report is about, when it quotes them."""
    for part in msg.walk():
        kind = part.get_content_type()
        if kind in ("message/rfc822", "text/rfc822-headers", "message/rfc822-headers"):
            blocks = _sub_headers(part)
            if blocks:
                return blocks[0]
    return None


def _statuses(msg: Message) -> dict[str, tuple[str, str]]:
    """(Status, Status and Diagnostic-Code) per recipient, from the delivery-status parts."""
    found: dict[str, tuple[str, str]] = {}
    for part in msg.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        for block in _sub_headers(part):
            for name in ("Original-Recipient", "Final-Recipient"):
                rcpt = _address(block.get(name))
                if rcpt is None:
                    continue
                status = _text(block.get("Status")).strip()
                detail = " ".join(_text(v) for v in (status, block.get("Diagnostic-Code")) if v)
                found[rcpt] = (status, " ".join(detail.split())[:_MAX_DETAIL])
    return found


def _given_up_kind(status: str) -> str:
    """HARD; SOFT when the server gave up on a transient cause or a full mailbox; BLOCKED
    when it refused for a policy (RFC 3463 x.7.x: a blocklist, DMARC, spam), which says
    nothing of the address: the webhooks call that 'blocked' too, and it never suppresses."""
    code = _STATUS.match(status)
    if code is None:
        return HARD
    if code.group(2).startswith("7."):
        return BLOCKED
    return SOFT if code.group(1) == "4" or code.group(2) == "2.2" else HARD


def _feedback(msg: Message) -> Message | None:
    for part in msg.walk():
        if part.get_content_type() == "message/feedback-report":
            blocks = _sub_headers(part)
            return blocks[0] if blocks else Message()
    return None


def _is_auto_reply(msg: Message) -> bool:
    submitted = _text(msg.get("Auto-Submitted")).strip().lower()
    if submitted and submitted != "no":
        return True
    if any(msg.get(name) is not None for name in _AUTO_HEADERS):
        return True
    if _text(msg.get("Precedence")).strip().lower() in _AUTO_PRECEDENCE:
        return True
    suppress = _text(msg.get("X-Auto-Response-Suppress")).lower()
    if "oof" in suppress or "all" in suppress:
        return True
    return bool(_AUTO_SUBJECT.match(_decoded_subject(msg)))


def _decoded_subject(msg: Message) -> str:
    try:
        return _safe(str(email.header.make_header(
            email.header.decode_header(_text(msg.get("Subject"))))))
    except (ValueError, LookupError, UnicodeError):
        return _text(msg.get("Subject"))


def _envelope(msg: Message, returned: Message | None) -> tuple[str, ...]:
    values = [v for name in ("Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To",
                             "To")
              for v in msg.get_all(name, [])]
    if returned is not None:
        values += returned.get_all("Return-Path", [])
    return tuple(_addresses(values))


# Today's tokens (lang-row-signature) and those of links sent before (payload.signature).
_UNSUBSCRIBE_TOKEN = re.compile(
    r"/unsubscribe/([a-z]{2,3}-[a-z2-7]{1,13}-[a-z2-7]{26}|[A-Za-z0-9_=-]+\.[A-Za-z0-9_=-]+)")


def _returned_tokens(returned: Message | None) -> tuple[str, ...]:
    """The unsubscribe tokens in the List-Unsubscribe of the message a report returns."""
    if returned is None:
        return ()
    values = " ".join(_text(v) for v in returned.get_all("List-Unsubscribe", []))
    return tuple(dict.fromkeys(_UNSUBSCRIBE_TOKEN.findall("".join(values.split()))))[:4]


def _returned_id(raw: bytes, msg: Message, returned: Message | None) -> str | None:
    own = _text(msg.get("Message-ID")).strip()
    if returned is not None and returned.get("Message-ID"):
        return _text(returned.get("Message-ID")).strip()[:300] or None
    # Some MTAs (qmail, Exchange) quote the headers as text in the body.
    body = raw.split(b"\n\n", 1)[-1] if b"\n\n" in raw else raw.split(b"\r\n\r\n", 1)[-1]
    for match in _MESSAGE_ID.finditer(body):
        found = _safe(match.group(1).decode("utf-8", "replace"))
        if found != own:
            return found
    return None


def _complaint(msg: Message, report: Message | None, returned: Message | None,
               **common: object) -> Verdict:
    kind_name = _text(report.get("Feedback-Type") if report is not None else "abuse")
    kind_name = kind_name.strip().lower()
    kind = (COMPLAINT if kind_name in _COMPLAINT_TYPES
            else OPT_OUT if kind_name in _OPT_OUT_TYPES else OTHER_REPORT)
    rcpts = _addresses(report.get_all("Original-Rcpt-To", []) if report is not None else [])
    if not rcpts and returned is not None:
        rcpts = _addresses(returned.get_all("X-HmXmrOriginalRecipient", [])
                           or returned.get_all("To", []))[:1]
    failures = tuple(Failure(a, kind, f"feedback-type {kind_name or 'abuse'}") for a in rcpts)
    return Verdict(kind, failures, reason=f"feedback-type {kind_name or 'abuse'}",
                   **common)  # type: ignore[arg-type]


def classify(raw: bytes) -> Verdict:
    """Read one message of the bounce mailbox; never raises."""
    try:
        return _classify(raw)
    except Exception as exc:  # a malformed message must never stop the run
        return Verdict(UNCLASSIFIED, reason=f"cannot be read: {type(exc).__name__}")


def _classify(raw: bytes) -> Verdict:
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    if not msg.keys():
        return Verdict(UNCLASSIFIED, reason="not an email message (no headers)")
    returned = _returned(msg)
    common: dict[str, object] = {
        "message_id": _text(msg.get("Message-ID")).strip()[:300] or None,
        "date": _date(msg),
        "returned_message_id": _returned_id(raw, msg, returned),
        "envelope": _envelope(msg, returned),
        "returned_tokens": _returned_tokens(returned),
        "headers": {"from": _text(msg.get("From"))[:200],
                    "subject": _decoded_subject(msg)[:200]},
    }
    report = _feedback(msg)
    hotmail = returned is not None and returned.get("X-HmXmrOriginalRecipient") is not None
    if report is not None or hotmail:
        return _complaint(msg, report, returned, **common)
    try:
        temporary, permanent = all_failures(msg)
    except Exception as exc:
        return Verdict(UNCLASSIFIED, reason=f"bounce detectors failed: {type(exc).__name__}",
                       **common)  # type: ignore[arg-type]
    statuses = _statuses(msg)
    failures: list[Failure] = []
    seen: set[str] = set()
    for given_up, found in ((True, permanent), (False, temporary)):
        for value in sorted(found)[:MAX_RECIPIENTS]:
            address = _address(value)
            if address and address not in seen and len(failures) < MAX_RECIPIENTS:
                seen.add(address)
                status, detail = statuses.get(address, ("", ""))
                kind = _given_up_kind(status) if given_up else DELAYED
                failures.append(Failure(address, kind, detail or None))
    if failures:
        kinds = {f.kind for f in failures}
        kind = next(k for k in (HARD, SOFT, BLOCKED, DELAYED) if k in kinds)
        return Verdict(kind, tuple(failures), **common)  # type: ignore[arg-type]
    if _is_auto_reply(msg):
        return Verdict(AUTO_REPLY, **common)  # type: ignore[arg-type]
    return Verdict(UNCLASSIFIED, reason="neither a bounce, a complaint nor an auto-reply",
                   **common)  # type: ignore[arg-type]
