from __future__ import annotations

import json
import logging

import pytest

from clubjapon_ops.logs import REDACTED, RedactFilter, setup_logging


@pytest.mark.parametrize("json_lines", [True, False])
def test_secrets_never_reach_the_log(capsys: pytest.CaptureFixture[str], json_lines: bool) -> None:
    setup_logging(json_lines=json_lines, secrets=["tok-123456"])
    log = logging.getLogger("clubjapon_ops.test")
    log.warning("calling %s?token=%s", "https://api", "tok-123456", extra={"url": "x?k=tok-123456"})
    err = capsys.readouterr().err
    assert "tok-123456" not in err
    assert REDACTED in err


def test_json_lines_carry_extra_fields(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging(json_lines=True)
    logging.getLogger("clubjapon_ops.test").info("page done", extra={"page": 3, "fetched": 300})
    record = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert record["msg"] == "page done"
    assert record["page"] == 3
    assert record["level"] == "info"


@pytest.mark.parametrize(("secret", "text", "expected"), [
    ("abc", "abcdef and abc", f"abcdef and {REDACTED}"),
    ("abc", "key=abc&next=1 xabc abc_d", f"key={REDACTED}&next=1 xabc abc_d"),
    ("dact", "dact, then a redacted word", f"{REDACTED}, then a redacted word"),
    ("0123456789abcdef", "k=x0123456789abcdefy", f"k=x{REDACTED}y"),
])
def test_redaction_never_garbles_the_text_around_a_short_secret(
    secret: str, text: str, expected: str
) -> None:
    assert RedactFilter([secret]).redact(text) == expected


def test_redaction_does_not_redact_inside_its_own_marker() -> None:
    # A secret that is part of the marker must not be found again in what was replaced.
    assert RedactFilter(["redacted", "s3cr3t-key-0123456789"]).redact(
        "s3cr3t-key-0123456789 redacted") == f"{REDACTED} {REDACTED}"
    assert RedactFilter(["acte"]).redact("tok=acte") == f"tok={REDACTED}"
