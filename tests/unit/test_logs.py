from __future__ import annotations

import json
import logging

import pytest

from clubjapon_ops.logs import REDACTED, setup_logging


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
