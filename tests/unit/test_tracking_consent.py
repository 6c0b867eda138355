"""Issue 25, item 1: the consent field is read like the opt-out, from whichever CRM syncs."""

from __future__ import annotations

from pathlib import Path

import pytest

from clubjapon_ops.contacts import consents
from clubjapon_ops.crm.hubspot import hubspot_source
from clubjapon_ops.errors import ConfigError
from clubjapon_ops.settings import load_settings


@pytest.mark.parametrize(("value", "agreed"), [
    ("yes", True), ("Oui", True), ("TRUE", True), ("1", True), (True, True),
    ("no", False), ("non", False), ("", False), ("0", False), ("maybe", False), (None, False),
])
def test_the_field_says_yes_as_the_opt_out_does(value: object, agreed: bool) -> None:
    assert consents({"Tracking_Consent": value}, "tracking_consent") is agreed


def test_no_field_or_no_setting_is_no() -> None:
    assert not consents({"other": "yes"}, "tracking_consent")
    assert not consents({"tracking_consent": "yes"}, None)


def test_hubspot_asks_for_the_consent_property(tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    settings = load_settings(tmp_path, environ={
        "CLUBJAPON_CRM": "hubspot", "HUBSPOT_TOKEN": "pat-test",
        "CLUBJAPON_TRACKING_CONSENT_FIELD": "club_tracking_consent"})
    assert "club_tracking_consent" in hubspot_source(settings).properties


def test_a_wrong_mode_is_refused(tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    with pytest.raises(ConfigError, match="CLUBJAPON_LINK_TRACKING"):
        load_settings(tmp_path, environ={"CLUBJAPON_LINK_TRACKING": "everyone"})
