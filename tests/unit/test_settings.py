from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from clubjapon_ops.errors import ConfigError
from clubjapon_ops.settings import MASK, SPEC_BY_ATTR, SPECS, load_settings
from clubjapon_ops.store import open_store

REPO = Path(__file__).resolve().parents[2]


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def test_defaults_are_anchored_in_the_root(root: Path) -> None:
    s = load_settings(root, environ={})
    assert s.crm == "csv"
    assert s.transport == "outbox"
    assert s.send_rate == 0
    assert s.database_url == f"sqlite:///{root}/var/clubjapon.sqlite3"
    assert s.outbox_dir == root / "var" / "outbox"
    assert set(s.sources.values()) == {"default"}


def test_precedence_toml_then_dotenv_then_environment(root: Path) -> None:
    write(root / "config/clubjapon.toml", '[settings]\nsmtp_port = 2525\nsmtp_host = "toml"\n'
          'send_rate = 3\n')
    write(root / ".env", "SMTP_HOST=dotenv\nSEND_IGNORED=1\nCLUBJAPON_SEND_RATE=5\n")
    s = load_settings(root, environ={"CLUBJAPON_SEND_RATE": "7.5"})
    assert (s.smtp_port, s.sources["smtp_port"]) == (2525, "config/clubjapon.toml")
    assert (s.smtp_host, s.sources["smtp_host"]) == ("dotenv", ".env")
    assert (s.send_rate, s.sources["send_rate"]) == (7.5, "environment")


@pytest.mark.parametrize(
    ("variable", "value", "accepts"),
    [
        ("CLUBJAPON_CRM", "salesforce", "csv | hubspot | brevo"),
        ("CLUBJAPON_TRANSPORT", "pigeon", "outbox | smtp | brevo | sendgrid"),
        ("SMTP_PORT", "70000", "1-65535"),
        ("SMTP_PORT", "smtp", "1-65535"),
        ("SMTP_SECURITY", "ssl", "none | starttls | tls"),
        ("CLUBJAPON_SEND_RATE", "-1", ">= 0"),
        ("CLUBJAPON_SEND_RATE", "nan", ">= 0"),
        ("CLUBJAPON_PUBLIC_URL", "club-japon.example.org", "http(s) URL"),
        ("CLUBJAPON_DATABASE_URL", "mysql://x/y", "SQLAlchemy URL"),
        ("CLUBJAPON_DATABASE_URL", "not a url", "SQLAlchemy URL"),
        ("CLUBJAPON_MAIL_FROM", "nobody", "mailbox"),
        ("HUBSPOT_FULL_SYNC_DAYS", "0", ">= 1"),
    ],
)
def test_invalid_value_names_the_setting_and_what_it_accepts(
    root: Path, variable: str, value: str, accepts: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(root, environ={variable: value})
    message = str(info.value)
    assert message.startswith(f"{variable}=")
    assert accepts in message
    assert "environment" in message


def test_invalid_value_in_dotenv_says_where_it_came_from(root: Path) -> None:
    write(root / ".env", "SMTP_SECURITY=maybe\n")
    with pytest.raises(ConfigError, match=r"SMTP_SECURITY='maybe' \(from \.env\)"):
        load_settings(root, environ={})


def test_secrets_are_masked_when_shown(root: Path) -> None:
    write(root / ".env", "HUBSPOT_TOKEN=pat-na1-verysecret\n")
    s = load_settings(
        root,
        environ={
            "CLUBJAPON_SECRET": "s3cr3t-signing-key",
            "CLUBJAPON_DATABASE_URL": "postgresql+psycopg://club:pgpass99@db.local/club",
        },
    )
    shown = "\n".join(f"{a} {b} {c}" for a, b, c in s.describe())
    assert "pat-na1-verysecret" not in shown
    assert "s3cr3t-signing-key" not in shown
    assert "pgpass99" not in shown
    assert re.search(rf"HUBSPOT_TOKEN {re.escape(MASK)} \.env", shown)
    assert set(s.secrets()) == {"pat-na1-verysecret", "s3cr3t-signing-key", "pgpass99"}


def test_invalid_secret_value_is_not_echoed(root: Path) -> None:
    # A secret can only be invalid through a parser; DATABASE_URL carries one in its password.
    with pytest.raises(ConfigError) as info:
        load_settings(root, environ={"CLUBJAPON_DATABASE_URL": "mysql://u:topsecretpw@h/db"})
    assert "mysql" in str(info.value)
    assert "topsecretpw" not in str(info.value)


def test_toml_refuses_secrets_and_unknown_keys(root: Path) -> None:
    write(root / "config/clubjapon.toml", '[settings]\nhubspot_token = "x"\n')
    with pytest.raises(ConfigError, match="secret"):
        load_settings(root, environ={})
    write(root / "config/clubjapon.toml", '[settings]\nsmtp_hots = "x"\n')
    with pytest.raises(ConfigError, match="unknown setting"):
        load_settings(root, environ={})
    write(root / "config/clubjapon.toml", "[settings\n")
    with pytest.raises(ConfigError, match="TOML"):
        load_settings(root, environ={})


# What .env.example may set besides the secrets: what differs from one machine to the next.
PER_MACHINE = {"CLUBJAPON_DATABASE_URL", "CLUBJAPON_DKIM_KEY_FILE"}


def test_env_example_sets_only_secrets_and_the_toml_lists_every_other_setting() -> None:
    example = (REPO / ".env.example").read_text(encoding="utf-8")
    assert "config/clubjapon.toml" in example
    set_there = set(re.findall(r"^([A-Z_]+)=", example, flags=re.M))
    assert set_there == {spec.env for spec in SPECS if spec.secret}
    mentioned = set(re.findall(r"^# ([A-Z_]+)=", example, flags=re.M))
    assert mentioned == PER_MACHINE
    toml = (REPO / "config" / "clubjapon.toml").read_text(encoding="utf-8")
    listed = set(re.findall(r"^(?:# )?([a-z_]+) = ", toml, flags=re.M))
    assert listed == {spec.attr for spec in SPECS if not spec.secret}


def test_a_copied_env_example_leaves_the_toml_in_charge(root: Path) -> None:
    write(root / ".env", (REPO / ".env.example").read_text(encoding="utf-8"))
    toml = (REPO / "config" / "clubjapon.toml").read_text(encoding="utf-8")
    write(root / "config/clubjapon.toml", toml.replace("send_rate = 0", "send_rate = 12")
          .replace('# smtp_host = "127.0.0.1"', 'smtp_host = "relay.example.org"'))
    s = load_settings(root, environ={})
    assert (s.send_rate, s.sources["send_rate"]) == (12, "config/clubjapon.toml")
    assert (s.smtp_host, s.sources["smtp_host"]) == ("relay.example.org", "config/clubjapon.toml")
    assert {origin for attr, origin in s.sources.items()
            if not SPEC_BY_ATTR[attr].secret} <= {"default", "config/clubjapon.toml"}
    assert s.shadows() == {}


def test_a_value_that_shadows_the_tomls_is_told_apart(root: Path) -> None:
    write(root / "config/clubjapon.toml",
          '[settings]\nsend_rate = 3\nsmtp_port = 2525\nsmtp_host = "same"\n')
    write(root / ".env", "CLUBJAPON_SEND_RATE=5\nSMTP_HOST=same\n")
    s = load_settings(root, environ={"SMTP_PORT": "2525"})
    assert s.shadows() == {"CLUBJAPON_SEND_RATE": "3.0"}


@pytest.mark.parametrize(("key", "meant"), [
    ("sendrate", "did you mean send_rate?"),
    ("smtp_hots", "did you mean smtp_host?"),
    ("CLUBJAPON_SEND_RATE", "did you mean send_rate?"),
    ("smtp_pasword", "did you mean smtp_password? It is a secret: put it in .env or the "
                     "environment (SMTP_PASSWORD)"),
    ("colour", "no setting has a name like it: see docs/reference/settings.md"),
])
def test_a_misspelt_toml_key_names_the_one_meant_and_never_the_list(
        root: Path, key: str, meant: str) -> None:
    write(root / "config/clubjapon.toml", f'[settings]\n{key} = "x"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(root, environ={})
    message = str(info.value)
    assert f"unknown setting [settings].{key}: {meant}" in message
    named = {s.attr for s in SPECS if re.search(rf"(?<!\w){s.attr}(?!\w)", message)}
    assert len(named) <= 2, named  # the one meant (and 'secret' in its words), never the list
    if "a secret" not in meant:
        assert not any(s.attr in named for s in SPECS if s.secret)


@pytest.mark.parametrize("folder", ["plain", "with space", "per%cent", "what?", "hash#"])
def test_a_relative_sqlite_uri_is_anchored_in_the_root(tmp_path: Path, folder: str) -> None:
    root = tmp_path / folder
    (root / "var").mkdir(parents=True)
    url = "sqlite:///file:var/x.sqlite3?mode=ro&uri=true"
    s = load_settings(root, environ={"CLUBJAPON_DATABASE_URL": url})
    sqlite3.connect(root / "var" / "x.sqlite3").close()  # the file the URI means, and no other
    store = open_store(s.database_url, migrate_schema=False)
    try:
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA database_list").all()[0][2] == str(
                root / "var" / "x.sqlite3")
    finally:
        store.close()
    assert sorted(p.name for p in tmp_path.rglob("*")) == sorted(
        [folder, "var", "x.sqlite3"])


@pytest.mark.parametrize(("raw", "lines"), [
    ("Club Japon; 1 rue Exemple;59000 Lille ;", ("Club Japon", "1 rue Exemple", "59000 Lille")),
    ("Club Japon\n1 rue Exemple\n\n59000 Lille\n", ("Club Japon", "1 rue Exemple", "59000 Lille")),
    ("  ", ()),
])
def test_the_postal_address_is_split_into_lines(root: Path, raw: str, lines: tuple[str]) -> None:
    settings = load_settings(root, environ={"CLUBJAPON_POSTAL_ADDRESS": raw})
    assert settings.postal_address == lines
    shown = dict((name, value) for name, value, _ in settings.describe())
    assert shown["CLUBJAPON_POSTAL_ADDRESS"] == ("; ".join(lines) or "(not set)")


def test_a_postal_address_with_a_control_character_is_refused(root: Path) -> None:
    with pytest.raises(ConfigError, match="CLUBJAPON_POSTAL_ADDRESS"):
        load_settings(root, environ={"CLUBJAPON_POSTAL_ADDRESS": "Club\x1b[31m; Lille"})
