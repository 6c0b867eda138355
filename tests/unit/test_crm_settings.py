from __future__ import annotations

from pathlib import Path

import pytest

from clubjapon_ops.crm import BrevoSource, HubSpotSource, make_source
from clubjapon_ops.errors import ConfigError
from clubjapon_ops.settings import load_settings


def test_crm_settings_defaults(root: Path) -> None:
    s = load_settings(root, environ={})
    assert s.hubspot_extra_properties == ()
    # The usual spellings: Brevo's own FIRSTNAME / FIRST_NAME, French accounts' PRENOM / NOM,
    # and FNAME / LNAME of Brevo's create-contact example; the first one present wins.
    assert dict(s.brevo_attributes) == {
        "first_name": "FIRSTNAME|FIRST_NAME|PRENOM|FNAME",
        "last_name": "LASTNAME|LAST_NAME|NOM|LNAME",
        "company": "COMPANY|SOCIETE|ENTREPRISE", "language": "LANGUAGE|LANGUE"}
    shown = {name: value for name, value, _ in s.describe()}
    assert shown["BREVO_ATTRIBUTES"] == (
        "first_name=FIRSTNAME|FIRST_NAME|PRENOM|FNAME,last_name=LASTNAME|LAST_NAME|NOM|LNAME,"
        "company=COMPANY|SOCIETE|ENTREPRISE,language=LANGUAGE|LANGUE")
    assert (s.http_timeout, s.http_attempts, s.http_retry_seconds) == (30.0, 6, 300.0)
    assert s.brevo_full_sync_days == 7


def test_crm_settings_are_read(root: Path) -> None:
    s = load_settings(root, environ={
        "HUBSPOT_EXTRA_PROPERTIES": " jobtitle, city ,",
        "BREVO_ATTRIBUTES": "first_name=prenom, company = firma|Societe",
        "CLUBJAPON_HTTP_TIMEOUT": "2.5",
    })
    assert s.hubspot_extra_properties == ("jobtitle", "city")
    assert dict(s.brevo_attributes)["first_name"] == "PRENOM"
    assert dict(s.brevo_attributes)["last_name"] == "LASTNAME|LAST_NAME|NOM|LNAME"
    assert dict(s.brevo_attributes)["company"] == "FIRMA|SOCIETE"
    assert s.http_timeout == 2.5
    shown = {name: value for name, value, _ in s.describe()}
    assert shown["HUBSPOT_EXTRA_PROPERTIES"] == "jobtitle,city"
    assert shown["BREVO_ATTRIBUTES"].startswith("first_name=PRENOM,last_name=LASTNAME|")


@pytest.mark.parametrize(
    ("variable", "value", "accepts"),
    [
        ("HUBSPOT_EXTRA_PROPERTIES", "Job Title", "comma-separated HubSpot property names"),
        ("BREVO_ATTRIBUTES", "nickname=SURNOM", "fields among first_name"),
        ("BREVO_ATTRIBUTES", "first_name", "field=ATTRIBUTE pairs"),
        ("BREVO_ATTRIBUTES", "first_name=A||B", "field=ATTRIBUTE pairs"),
        ("BREVO_FULL_SYNC_DAYS", "0", ">= 1"),
        ("CLUBJAPON_HTTP_TIMEOUT", "0", "a number > 0"),
        ("CLUBJAPON_HTTP_ATTEMPTS", "0", ">= 1"),
        ("CLUBJAPON_HTTP_RETRY_SECONDS", "-5", "a number > 0"),
    ],
)
def test_invalid_crm_settings_name_the_variable(
    root: Path, variable: str, value: str, accepts: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(root, environ={variable: value})
    assert str(info.value).startswith(f"{variable}=") and accepts in str(info.value)


@pytest.mark.parametrize(
    ("crm", "secret", "kind"),
    [("hubspot", "HUBSPOT_TOKEN", HubSpotSource), ("brevo", "BREVO_API_KEY", BrevoSource)],
)
def test_make_source_builds_the_crm_adapters_and_names_a_missing_secret(
    root: Path, crm: str, secret: str, kind: type
) -> None:
    with pytest.raises(ConfigError, match=f"{secret} is not set"):
        make_source(load_settings(root, environ={"CLUBJAPON_CRM": crm}))
    source = make_source(load_settings(root, environ={"CLUBJAPON_CRM": crm,
                                                      secret: "s3cret-value",
                                                      "CLUBJAPON_HTTP_ATTEMPTS": "3"}))
    assert isinstance(source, kind)
    assert source.client.retry.attempts == 3
    assert source.full_sync_every.days == 7
