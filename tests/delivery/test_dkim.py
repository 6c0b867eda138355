"""DKIM: real built messages signed, sent over SMTP to aiosmtpd on 127.0.0.1, and verified
by dkimpy against a stub DNS record of a key generated for the test."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from email import message_from_bytes, policy
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from clubjapon_ops import jobs
from clubjapon_ops.delivery import dkim as ours
from clubjapon_ops.delivery.dkim import DkimSigner, dns_record, make_signer
from clubjapon_ops.delivery.transports import builder_for
from clubjapon_ops.errors import ConfigError
from clubjapon_ops.settings import load_settings
from clubjapon_ops.store import Store
from tests.delivery.conftest import SLUG, home, make_settings, send_store  # noqa: F401
from tests.delivery.test_sender import sync
from tests.fakes.smtp_server import smtp_server
from tests.newsletter.cli import run_cli

SELECTOR, DOMAIN = "cj2026", "example.org"


def pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
        fmt: serialization.PrivateFormat = serialization.PrivateFormat.PKCS8) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())


@pytest.fixture(scope="module")
def key_pem() -> bytes:
    return pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))


@pytest.fixture
def key_file(tmp_path: Path, key_pem: bytes) -> Path:
    path = tmp_path / "dkim.pem"
    path.write_bytes(key_pem)
    path.chmod(0o600)
    return path


def dns_for(key_pem: bytes, name: str = f"{SELECTOR}._domainkey.{DOMAIN}."):  # type: ignore[no-untyped-def]
    """A dnsfunc for dkim.verify that answers the TXT record ops would publish."""
    record = dns_record(key_pem).encode("ascii")

    def lookup(qname: bytes, timeout: int = 5) -> bytes | None:
        return record if qname.decode() == name else None

    return lookup


def verify_pristine(key_pem: bytes, messages: list[bytes], tmp_path: Path) -> list[str]:
    """What dkimpy as published (another process, none of our replacements) says of each."""
    files = []
    for i, raw in enumerate(messages):
        files.append(tmp_path / f"signed-{i}.eml")
        files[-1].write_bytes(raw)
    result = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("dkim_verify_pristine.py")),
         f"{SELECTOR}._domainkey.{DOMAIN}.", dns_record(key_pem), *map(str, files)],
        capture_output=True, text=True, timeout=60, check=True)
    return result.stdout.split()


def dkim_env(key_file: Path) -> dict[str, str]:
    return {"CLUBJAPON_DKIM_KEY_FILE": str(key_file), "CLUBJAPON_DKIM_SELECTOR": SELECTOR,
            "CLUBJAPON_DKIM_DOMAIN": DOMAIN}


def test_smtp_messages_are_signed_and_verify(home: Path, send_store: Store,  # noqa: F811
                                             key_file: Path, key_pem: bytes,
                                             tmp_path: Path) -> None:
    sync(home, send_store, 6)  # fr, en and ja readers, twice
    with smtp_server() as (port, server):
        settings = make_settings(home, CLUBJAPON_TRANSPORT="smtp", SMTP_PORT=str(port),
                                 **dkim_env(key_file))
        report = jobs.send_campaign(settings, send_store, SLUG)
    assert report.status == "success"
    assert len(server.received) == 6
    langs = set()
    for _, raw in server.received:
        assert raw.startswith(b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;")
        # The server offers 8BITMIME, but a signed body goes 7-bit (RFC 6376 §5.3).
        assert b"Content-Transfer-Encoding: 8bit" not in raw
        assert raw.count(b"Content-Transfer-Encoding: quoted-printable") == 2
        assert dkim.verify(raw, dnsfunc=dns_for(key_pem))
        parsed = message_from_bytes(raw, policy=policy.default)
        langs.add(parsed["Content-Language"])
        tags = dict(re.findall(r"(\w+)=([^;]*)", re.sub(r"\s+", "", parsed["DKIM-Signature"])))
        assert (tags["d"], tags["s"]) == (DOMAIN, SELECTOR)
        signed = tags["h"].lower().split(":")
        for name in ("from", "to", "subject", "date", "message-id", "mime-version",
                     "content-type", "list-unsubscribe", "list-unsubscribe-post"):
            assert name in signed
    assert langs == {"fr", "en", "ja"}
    assert verify_pristine(key_pem, [raw for _, raw in server.received], tmp_path) == ["ok"] * 6


def test_a_changed_unsubscribe_link_or_body_fails_verification(
        home: Path, key_file: Path, key_pem: bytes, tmp_path: Path) -> None:  # noqa: F811
    settings = make_settings(home, **dkim_env(key_file))
    newsletter = jobs.newsletter_for_sending(settings, SLUG)
    from clubjapon_ops.contacts import Contact

    message = newsletter.personalise(Contact(email="yui@example.com", source="csv",
                                             first_name="結衣", language="ja"))
    raw = builder_for(settings).build(message, edition=SLUG)
    dns = dns_for(key_pem)
    assert dkim.verify(raw, dnsfunc=dns)
    head, body = raw.split(b"\r\n\r\n", 1)
    changed_link = head.replace(b"/unsubscribe/", b"/unsubscribe/x", 1) + b"\r\n\r\n" + body
    assert changed_link != raw
    assert not dkim.verify(changed_link, dnsfunc=dns)
    changed_body = head + b"\r\n\r\n" + body.replace(b"\r\n--", b"\r\nX\r\n--", 1)
    assert not dkim.verify(changed_body, dnsfunc=dns)
    # One more List-Unsubscribe on the way: over-signing makes that fail too.
    added = b"List-Unsubscribe: <https://evil.example/>\r\n" + raw
    assert not dkim.verify(added, dnsfunc=dns)
    assert verify_pristine(key_pem, [raw, changed_link, changed_body, added], tmp_path) == [
        "ok", "fail", "fail", "fail"]
    # The same message under another selector's record does not verify.
    other = pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    assert not dkim.verify(raw, dnsfunc=dns_for(other))


def test_the_outbox_writes_signed_messages(home: Path, send_store: Store,  # noqa: F811
                                           key_file: Path, key_pem: bytes,
                                           tmp_path: Path) -> None:
    sync(home, send_store, 3)
    settings = make_settings(home, **dkim_env(key_file))
    jobs.send_campaign(settings, send_store, SLUG)
    files = list((settings.outbox_dir / SLUG).iterdir())
    assert len(files) == 3
    assert all(dkim.verify(f.read_bytes(), dnsfunc=dns_for(key_pem)) for f in files)
    assert verify_pristine(key_pem, [f.read_bytes() for f in files], tmp_path) == ["ok"] * 3


def test_unsigned_without_the_settings(home: Path) -> None:  # noqa: F811
    assert builder_for(make_settings(home)).signer is None


def test_openssl_signs_exactly_as_dkimpy_would(key_pem: bytes) -> None:
    message = (b"From: a@example.org\r\nTo: b@example.com\r\nSubject: x\r\n"
               b"Date: Tue, 01 Dec 2026 12:00:00 +0000\r\n\r\nbody\r\n")
    signer = DkimSigner(DOMAIN, SELECTOR, key_pem)
    fast = signer.signature(message)
    ours._OPENSSL_KEYS.clear()  # as dkimpy alone: pure-Python RSA
    try:
        slow = signer.signature(message)
    finally:
        DkimSigner(DOMAIN, SELECTOR, key_pem)  # registered again
    drop_time = re.compile(rb"t=\d+;")
    assert drop_time.sub(b"", fast) == drop_time.sub(b"", slow)


# --- settings ----------------------------------------------------------------------------

@pytest.mark.parametrize("given", [["CLUBJAPON_DKIM_KEY_FILE"],
                                   ["CLUBJAPON_DKIM_SELECTOR", "CLUBJAPON_DKIM_DOMAIN"]])
def test_all_three_settings_or_none(home: Path, key_file: Path, given: list[str]) -> None:  # noqa: F811
    env = {k: v for k, v in dkim_env(key_file).items() if k in given}
    with pytest.raises(ConfigError) as caught:
        load_settings(home, environ=env)
    missing = set(dkim_env(key_file)) - set(given)
    assert all(name in str(caught.value) for name in missing)
    (home / ".env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    result = run_cli(home, "config")
    assert result.returncode == 2
    assert all(name in result.stderr for name in missing)


def test_a_bad_selector_or_domain_is_refused(home: Path, key_file: Path) -> None:  # noqa: F811
    with pytest.raises(ConfigError, match="CLUBJAPON_DKIM_DOMAIN"):
        load_settings(home, environ={**dkim_env(key_file), "CLUBJAPON_DKIM_DOMAIN": "a b"})


@pytest.mark.parametrize("content", [
    None,  # no such file
    b"-----BEGIN RSA PRIVATE KEY-----\nc2VjcmV0LXNlY3JldC1zZWNyZXQ=\n"
    b"-----END RSA PRIVATE KEY-----\n",
    b"secret-secret-secret",
    "ec",
])
def test_an_unusable_key_file_stops_with_the_setting_named(
        home: Path, tmp_path: Path, content: bytes | str | None) -> None:  # noqa: F811
    path = tmp_path / "key.pem"
    if content == "ec":
        content = pem(ec.generate_private_key(ec.SECP256R1()))
    if isinstance(content, bytes):
        path.write_bytes(content)
    with pytest.raises(ConfigError) as caught:
        make_signer(path, SELECTOR, DOMAIN, "club-japon@example.org")
    text = str(caught.value)
    assert "CLUBJAPON_DKIM_KEY_FILE" in text
    assert "c2VjcmV0" not in text and "secret-secret" not in text and "BEGIN" not in text


def test_a_bad_key_stops_a_send_before_anything_goes(home: Path, send_store: Store,  # noqa: F811
                                                     tmp_path: Path) -> None:
    sync(home, send_store, 3)
    bad = tmp_path / "bad.pem"
    bad.write_bytes(b"secret-secret-secret")
    env = {**dkim_env(bad)}
    (home / ".env").write_text("".join(f"{k}={v}\n" for k, v in env.items())
                               + "CLUBJAPON_SECRET=test-secret-0123456789abcdef\n"
                               f"CLUBJAPON_CSV_PATH={home / 'contacts.csv'}\n")
    result = run_cli(home, "send", SLUG, "--yes")
    assert result.returncode == 2, result.stderr
    assert "CLUBJAPON_DKIM_KEY_FILE" in result.stderr
    assert "secret-secret" not in result.stderr + result.stdout
    assert not (home / "var" / "outbox" / SLUG).exists()


@pytest.mark.parametrize("mode", [0o644, 0o604, 0o620])
def test_a_key_file_other_users_can_read_stops_a_send(
        home: Path, send_store: Store,  # noqa: F811
        key_file: Path, key_pem: bytes, mode: int) -> None:
    sync(home, send_store, 3)
    key_file.chmod(mode)
    (home / ".env").write_text("".join(f"{k}={v}\n" for k, v in dkim_env(key_file).items())
                               + "CLUBJAPON_SECRET=test-secret-0123456789abcdef\n"
                               f"CLUBJAPON_CSV_PATH={home / 'contacts.csv'}\n")
    result = run_cli(home, "send", SLUG, "--yes")
    assert result.returncode == 2, result.stderr
    assert "CLUBJAPON_DKIM_KEY_FILE" in result.stderr
    assert f"chmod 600 {key_file}" in result.stderr and f"mode {mode:04o}" in result.stderr
    assert key_pem.decode().splitlines()[1] not in result.stderr + result.stdout
    assert not (home / "var" / "outbox" / SLUG).exists()
    key_file.chmod(0o640)  # readable by a group (the sender's): accepted, as 0600 is
    assert make_signer(key_file, SELECTOR, DOMAIN, "club-japon@example.org") is not None


def test_a_domain_that_is_not_the_senders_is_a_warning(
        key_file: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="clubjapon_ops.delivery.dkim"):
        assert make_signer(key_file, SELECTOR, "mailer.example.net", "club@example.org")
    assert "DMARC" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="clubjapon_ops.delivery.dkim"):
        assert make_signer(key_file, SELECTOR, "example.org", "club@news.example.org")
    assert caplog.text == ""


def test_the_dns_record_names_the_public_key(key_pem: bytes) -> None:
    record = dns_record(key_pem)
    assert record.startswith("v=DKIM1; k=rsa; p=MII")
    assert "PRIVATE" not in record


# --- what replaces parts of dkimpy does what they did ------------------------------------

def dkimpy_relaxed_body(body: bytes) -> bytes:
    """dkimpy's own relaxed body canonicalisation, as written in dkim/canonicalization.py."""
    c = ours.canonicalization
    return c.correct_empty_body(c.strip_trailing_lines(  # type: ignore[no-any-return]
        c.compress_whitespace(c.strip_trailing_whitespace(body))))


@pytest.mark.parametrize("seed", range(300))
def test_relaxed_body_equals_dkimpys(seed: int) -> None:
    import random

    rng = random.Random(seed)
    atoms = [b"a", b"xyz", b" ", b"  ", b"\t", b" \t ", b"\r\n", b"\r\n\r\n", b"\r", b"\n",
             b"\xe3\x81\x82", b"."]
    body = b"".join(rng.choice(atoms) for _ in range(rng.randrange(0, 40)))
    assert ours.relaxed_body(body) == dkimpy_relaxed_body(body)


@pytest.mark.parametrize("seed", range(200))
def test_message_split_equals_dkimpys(seed: int) -> None:
    import random

    rng = random.Random(seed)
    header_lines = [b"From: a@example.org", b"Subject: =?utf-8?b?44GC?=", b" folded",
                    b"\tfolded too", b"To: b@example.com"]
    head = b"\r\n".join(rng.choice([*header_lines[i:i + 1], b"X-A: 1"])
                        for i in (0, 1, 2, 4))
    ends = [b"\r\n", b"\n"]
    body = b"".join(rng.choice([b"line", b" ", *ends]) for _ in range(rng.randrange(0, 30)))
    message = head + rng.choice([b"\r\n\r\n", b"\n\n", b"\r\n\n"]) + body
    assert ours.split_message(message) == ours._dkimpy_parse(message)
