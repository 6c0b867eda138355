"""Secrets the club chooses have a minimum length; the web app needs its signing key."""

from __future__ import annotations

from pathlib import Path

import pytest

from clubjapon_ops.errors import ConfigError
from clubjapon_ops.settings import MASK, check_web_settings, load_settings


@pytest.mark.parametrize(
    "variable", ["CLUBJAPON_SECRET", "BREVO_WEBHOOK_SECRET", "CLUBJAPON_PREVIEW_PASSWORD"])
def test_a_secret_shorter_than_16_characters_is_refused_without_being_shown(
    root: Path, variable: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(root, environ={variable: "  short-secret  "})
    message = str(info.value)
    assert message.startswith(f"{variable}={MASK} (from environment) is invalid")
    assert "at least 16 characters" in message and "short-secret" not in message
    settings = load_settings(root, environ={variable: "x" * 16})
    assert "x" * 16 in settings.secrets()


def test_the_web_app_needs_the_signing_key(root: Path) -> None:
    with pytest.raises(ConfigError, match="CLUBJAPON_SECRET is not set"):
        check_web_settings(load_settings(root, environ={}))
    check_web_settings(load_settings(root, environ={"CLUBJAPON_SECRET": "k" * 16}))
