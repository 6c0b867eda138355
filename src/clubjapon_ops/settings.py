"""One typed settings object: defaults < config/clubjapon.toml < .env < process environment."""

from __future__ import annotations

import contextlib
import difflib
import os
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from email.utils import parseaddr
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dotenv import dotenv_values
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from clubjapon_ops.database_location import anchor_sqlite, check_sqlite_url
from clubjapon_ops.errors import ConfigError
from clubjapon_ops.masking import mask_secrets, url_secrets

CONFIG_FILE = Path("config") / "clubjapon.toml"
MASK = "********"


def _choice(*options: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in options:
            raise ValueError
        return value

    return parse


def _http_url(raw: str) -> str:
    value = raw.strip().rstrip("/")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError
    return value


def _port(raw: str) -> int:
    value = int(raw.strip())
    if not 1 <= value <= 65535:
        raise ValueError
    return value


def _non_negative_float(raw: str) -> float:
    value = float(raw.strip())
    if not value >= 0 or value == float("inf"):
        raise ValueError
    return value


def _positive_int(raw: str) -> int:
    value = int(raw.strip())
    if value < 1:
        raise ValueError
    return value


def _timezone(raw: str) -> ZoneInfo:
    try:
        return ZoneInfo(raw.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError from None


def _positive_float(raw: str) -> float:
    value = float(raw.strip())
    if not 0 < value < float("inf"):
        raise ValueError
    return value


_PROPERTY = re.compile(r"^[a-z0-9_]+$")


def _postal_address(raw: str) -> tuple[str, ...]:
    """Address lines, separated by ';' (one line in .env or a unit file) or by newlines."""
    lines = tuple(line.strip() for line in re.split(r"[;\n]", raw) if line.strip())
    if any(not line.isprintable() for line in lines):
        raise ValueError
    return lines


def _property_list(raw: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in raw.split(",") if n.strip())
    if any(not _PROPERTY.match(n) for n in names):
        raise ValueError
    return names


# Contact fields Brevo attributes can fill, and the attributes each reads by default, in
# order of preference ("A|B": the first one a contact has wins). Accounts name them
# differently: FIRSTNAME / LASTNAME (Brevo's defaults), FIRST_NAME / LAST_NAME (Brevo's
# example contact), PRENOM / NOM (French accounts), FNAME / LNAME (Brevo's create-contact
# example), SOCIETE / ENTREPRISE, LANGUE.
BREVO_DEFAULT_ATTRIBUTES = {
    "first_name": "FIRSTNAME|FIRST_NAME|PRENOM|FNAME",
    "last_name": "LASTNAME|LAST_NAME|NOM|LNAME",
    "company": "COMPANY|SOCIETE|ENTREPRISE",
    "language": "LANGUAGE|LANGUE",
}
_ATTRIBUTE = re.compile(r"^[A-Za-z0-9_]+$")


def _brevo_attributes(raw: str) -> tuple[tuple[str, str], ...]:
    """Read 'first_name=PRENOM,company=SOCIETE|FIRMA'; fields not named keep their default."""
    mapping = dict(BREVO_DEFAULT_ATTRIBUTES)
    for item in (i.strip() for i in raw.split(",")):
        if not item:
            continue
        name, sep, attributes = (part.strip() for part in item.partition("="))
        names = [a.strip() for a in attributes.split("|")]
        if not sep or name not in mapping or not all(_ATTRIBUTE.match(a) for a in names):
            raise ValueError
        mapping[name] = "|".join(a.upper() for a in names)
    # Pairs rather than a dict keep Settings hashable.
    return tuple(mapping.items())


def _mailbox(raw: str) -> str:
    _, address = parseaddr(raw)
    if "@" not in address or any(c in raw for c in "\r\n"):
        raise ValueError
    return raw.strip()


def _optional_address(raw: str) -> str | None:
    """A bare address (local@domain) or nothing: an envelope sender has no display name."""
    value = raw.strip()
    if not value:
        return None
    local, at, domain = value.rpartition("@")
    if (not at or not local or not domain or not value.isascii()
            or any(c in value for c in " <>\r\n\t,;")):
        raise ValueError
    return value


def _bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("true", "yes", "1", "on"):
        return True
    if value in ("false", "no", "0", "off", ""):
        return False
    raise ValueError


def _optional_port(raw: str) -> int | None:
    return _port(raw) if raw.strip() else None


def _database_url(raw: str) -> str:
    try:
        url = make_url(raw.strip())
    except ArgumentError as exc:
        raise ValueError from exc
    if not url.drivername.startswith(("sqlite", "postgresql")):
        raise ValueError
    check_sqlite_url(url)  # ValueError for a URI SQLite would read as a plain file name
    return raw.strip()


def _text(raw: str) -> str:
    return raw.strip()


def _optional_bool(raw: str) -> bool | None:
    return None if not raw.strip() else _bool(raw)


def _optional(raw: str) -> str | None:
    return raw.strip() or None


MIN_SECRET = 16  # characters of a secret the club chooses: beyond guessing, never a word


def _own_secret(raw: str) -> str | None:
    """A secret the club chooses (unlike a provider's key): unset, or at least MIN_SECRET."""
    value = raw.strip()
    if value and len(value) < MIN_SECRET:
        raise ValueError
    return value or None


def _ec_public_key(raw: str) -> str | None:
    """A base64 DER (SubjectPublicKeyInfo) P-256 key, as SendGrid shows it; checked on load."""
    value = "".join(raw.split())
    if not value:
        return None
    from clubjapon_ops.webhook_keys import load_public_key

    load_public_key(value)  # raises ValueError when it is not a P-256 public key
    return value


def _digits(raw: str) -> str | None:
    value = raw.strip()
    if value and not value.isdigit():
        raise ValueError
    return value or None


def _optional_path(raw: str) -> Path | None:
    return _path(raw) if raw.strip() else None


_DNS_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DNS_NAME = re.compile(rf"^{_DNS_LABEL}(?:\.{_DNS_LABEL})*$")


def _dns_name(raw: str) -> str | None:
    """A DNS name (a DKIM selector or domain), lower case; empty: None."""
    value = raw.strip().rstrip(".").lower()
    if value and not _DNS_NAME.match(value):
        raise ValueError
    return value or None


# RFC 2919: a list-id is label.namespace, a dot-atom; kept to what a DNS name may hold.
_LIST_ID = re.compile(r"^[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+$")


def _list_id(raw: str) -> str | None:
    """An RFC 2919 list identifier (newsletter.example.org); empty: None (the default)."""
    value = raw.strip()
    if value and (len(value) > 255 or not _LIST_ID.match(value)):
        raise ValueError
    return value or None


def default_list_id(mail_from: str) -> str:
    """newsletter.<the domain of the From address>: the list's default RFC 2919 id."""
    domain = parseaddr(mail_from)[1].rpartition("@")[2].strip().rstrip(".").lower()
    # Left as it is when IDNA fails: the caller then refuses it, naming the setting.
    with contextlib.suppress(UnicodeError):
        domain = domain.encode("idna").decode("ascii")
    return f"newsletter.{domain}"


def _path(raw: str) -> Path:
    if not raw.strip():
        raise ValueError
    return Path(raw.strip()).expanduser()


@dataclass(frozen=True)
class Spec:
    """How one setting is named, parsed, defaulted and shown."""

    attr: str
    env: str
    parse: Callable[[str], Any]
    default: str
    accepts: str
    help: str
    secret: bool = False


SPECS: tuple[Spec, ...] = (
    Spec("database_url", "CLUBJAPON_DATABASE_URL", _database_url, "sqlite:///var/clubjapon.sqlite3",
         "an SQLAlchemy URL: sqlite:///path, sqlite:///file:path?mode=ro&uri=true or "
         "postgresql+psycopg://user:pass@host/db",
         "where the contacts, ledger and job runs are stored"),
    Spec("crm", "CLUBJAPON_CRM", _choice("csv", "hubspot", "brevo"), "csv",
         "csv | hubspot | brevo", "where contacts are synced from"),
    Spec("csv_path", "CLUBJAPON_CSV_PATH", _path, "config/sample/contacts.csv",
         "a path to a CSV export", "the CSV export read when CLUBJAPON_CRM=csv"),
    Spec("hubspot_token", "HUBSPOT_TOKEN", _optional, "",
         "a HubSpot private-app token", "HubSpot private-app token", secret=True),
    Spec("hubspot_base_url", "HUBSPOT_BASE_URL", _http_url, "https://api.hubapi.com",
         "an http(s) URL", "HubSpot API base URL"),
    Spec("hubspot_full_sync_days", "HUBSPOT_FULL_SYNC_DAYS", _positive_int, "7",
         "a whole number of days >= 1",
         "a full HubSpot sync (which detects archived contacts) runs at least this often"),
    Spec("hubspot_extra_properties", "HUBSPOT_EXTRA_PROPERTIES", _property_list, "",
         "comma-separated HubSpot property names (lower case, e.g. jobtitle,city)",
         "extra HubSpot contact properties kept as raw attributes"),
    Spec("brevo_api_key", "BREVO_API_KEY", _optional, "",
         "a Brevo API v3 key", "Brevo API key", secret=True),
    Spec("brevo_base_url", "BREVO_BASE_URL", _http_url, "https://api.brevo.com",
         "an http(s) URL", "Brevo API base URL"),
    Spec("brevo_attributes", "BREVO_ATTRIBUTES", _brevo_attributes, "",
         "field=ATTRIBUTE pairs, comma-separated, fields among "
         "first_name, last_name, company, language (ATTRIBUTE may be A|B: the first present)",
         "which Brevo attributes hold the names, company and language "
         "(default: the usual spellings, see 'clubjapon-ops config')"),
    Spec("brevo_full_sync_days", "BREVO_FULL_SYNC_DAYS", _positive_int, "7",
         "a whole number of days >= 1",
         "a full Brevo sync (which detects deleted contacts) runs at least this often"),
    Spec("http_timeout", "CLUBJAPON_HTTP_TIMEOUT", _positive_float, "30",
         "seconds, a number > 0",
         "how long one API call (CRM or email provider) may take before it is retried"),
    Spec("http_attempts", "CLUBJAPON_HTTP_ATTEMPTS", _positive_int, "6",
         "a whole number >= 1",
         "attempts per API call (CRM or email provider: 429, 5xx, timeouts) before giving up"),
    Spec("http_retry_seconds", "CLUBJAPON_HTTP_RETRY_SECONDS", _positive_float, "300",
         "seconds, a number > 0",
         "the longest one API call (CRM or email provider) may keep retrying, waits included"),
    Spec("transport", "CLUBJAPON_TRANSPORT", _choice("outbox", "smtp", "brevo", "sendgrid"),
         "outbox", "outbox | smtp | brevo | sendgrid", "how messages are delivered"),
    Spec("outbox_dir", "CLUBJAPON_OUTBOX_DIR", _path, "var/outbox",
         "a directory path", "where the outbox transport writes .eml files"),
    Spec("smtp_host", "SMTP_HOST", _text, "127.0.0.1", "a host name or address", "SMTP server"),
    Spec("smtp_port", "SMTP_PORT", _port, "25", "a port number 1-65535", "SMTP port"),
    Spec("smtp_username", "SMTP_USERNAME", _optional, "", "a user name (empty: no auth)",
         "SMTP login"),
    Spec("smtp_password", "SMTP_PASSWORD", _optional, "", "a password", "SMTP password",
         secret=True),
    Spec("smtp_security", "SMTP_SECURITY", _choice("none", "starttls", "tls"), "none",
         "none | starttls | tls", "SMTP transport security"),
    Spec("smtp_eight_bit", "SMTP_EIGHT_BIT", _bool, "false", "true | false",
         "send unsigned bodies as 8bit UTF-8 where the SMTP server offers 8BITMIME; "
         "false: 7-bit quoted-printable, which any later hop passes on unchanged (keep it "
         "false behind a relay that DKIM-signs, e.g. Postfix with OpenDKIM)"),
    Spec("dkim_key_file", "CLUBJAPON_DKIM_KEY_FILE", _optional_path, "",
         "a path to a PEM RSA private key (2048 bits), readable by the sender only",
         "DKIM signing key of SMTP and outbox messages; set with the selector and domain "
         "(all three or none; docs/ops.md shows the DNS record)"),
    Spec("dkim_selector", "CLUBJAPON_DKIM_SELECTOR", _dns_name, "",
         "a DNS label such as 'cj2026'", "DKIM selector: the key is published at "
         "<selector>._domainkey.<domain>"),
    Spec("dkim_domain", "CLUBJAPON_DKIM_DOMAIN", _dns_name, "",
         "a domain name such as 'example.org'",
         "DKIM signing domain (d=); the From address's domain, for DMARC alignment"),
    Spec("sendgrid_api_key", "SENDGRID_API_KEY", _optional, "", "a SendGrid API key",
         "SendGrid API key", secret=True),
    Spec("sendgrid_base_url", "SENDGRID_BASE_URL", _http_url, "https://api.sendgrid.com",
         "an http(s) URL", "SendGrid API base URL"),
    Spec("mail_from", "CLUBJAPON_MAIL_FROM", _mailbox,
         "Club Japon des Hauts-de-France <club-japon@example.org>",
         "a mailbox such as 'Name <addr@example.org>'", "the From header of every message"),
    Spec("list_id", "CLUBJAPON_LIST_ID", _list_id, "",
         "a list identifier such as 'newsletter.example.org': ASCII letters, digits, "
         "hyphens and at least one dot, no spaces nor angle brackets (empty: "
         "newsletter.<the domain of CLUBJAPON_MAIL_FROM>)",
         "the List-Id of every newsletter (RFC 2919), shown as 'List-Id: <From name> "
         "<this id>': mail services group and filter the list by it"),
    Spec("timezone", "CLUBJAPON_TIMEZONE", _timezone, "Europe/Paris",
         "an IANA time zone such as 'Europe/Paris'",
         "the zone of the times shown to people (send summaries, status, the scheduler's "
         "lines on a terminal); logs in JSON keep UTC"),
    Spec("public_url", "CLUBJAPON_PUBLIC_URL", _http_url, "https://club-japon.example.org",
         "an http(s) URL", "public base URL of the web app (unsubscribe links)"),
    Spec("postal_address", "CLUBJAPON_POSTAL_ADDRESS", _postal_address, "",
         "address lines separated by ';' or newlines",
         "the club's postal address, in every message's footer; required to send through "
         "smtp, brevo or sendgrid (not the outbox)"),
    Spec("secret", "CLUBJAPON_SECRET", _own_secret, "",
         f"a random string of at least {MIN_SECRET} characters",
         "key that signs unsubscribe tokens; 'web' refuses to start without it", secret=True),
    Spec("link_tracking", "CLUBJAPON_LINK_TRACKING", _choice("aggregate", "consent", "off"),
         "aggregate", "aggregate | consent | off",
         "links of a sent edition go through PUBLIC_URL/r/...: aggregate counts clicks per "
         "link, language and day and nobody's; consent also per reader who agreed; off: "
         "links go straight to their target (docs/marketing.md)"),
    Spec("tracking_consent_field", "CLUBJAPON_TRACKING_CONSENT_FIELD", _optional, "",
         "a CRM field name: CSV column, HubSpot property or Brevo attribute",
         "the contact field whose yes (yes, oui, true, 1) says the reader agreed to "
         "per-reader click measurement; read only when CLUBJAPON_LINK_TRACKING=consent"),
    Spec("send_rate", "CLUBJAPON_SEND_RATE", _non_negative_float, "0",
         "messages per second, a number >= 0 (0 = unlimited)",
         "sending rate limit (a token bucket; shared by every send on one PostgreSQL store)"),
    Spec("smtp_connections", "SMTP_CONNECTIONS", _positive_int, "4",
         "a whole number >= 1", "SMTP connections used in parallel"),
    Spec("send_attempts", "CLUBJAPON_SEND_ATTEMPTS", _positive_int, "3",
         "a whole number >= 1", "tries per message within one run for transient failures"),
    Spec("send_retry_wait", "CLUBJAPON_SEND_RETRY_WAIT", _non_negative_float, "2",
         "seconds, a number >= 0",
         "first wait before retrying a transient failure (doubles, with jitter)"),
    Spec("send_retry_delay", "CLUBJAPON_SEND_RETRY_DELAY", _non_negative_float, "300",
         "seconds, a number >= 0",
         "how long a message refused for now (a 429, a wrong API key) waits before a rerun "
         "sends it again ('send --now' does at once); a batch that may have been taken "
         "is resent by the same run, before its idempotency key lapses"),
    Spec("send_commit_every", "CLUBJAPON_SEND_COMMIT_EVERY", _positive_int, "1",
         "a whole number >= 1",
         "SMTP/outbox messages per ledger commit and connection (1: at most one uncertain "
         "message per connection after a crash; more is faster)"),
    Spec("error_budget", "CLUBJAPON_ERROR_BUDGET", _positive_int, "50",
         "a whole number >= 1", "a send pauses after this many failures in a row"),
    Spec("brevo_webhook_secret", "BREVO_WEBHOOK_SECRET", _own_secret, "",
         f"a random string of at least {MIN_SECRET} characters",
         "token that authenticates Brevo's webhook (in the URL path, as the basic-auth "
         "password or as a bearer token); unset: the endpoint refuses everything", secret=True),
    Spec("sendgrid_webhook_public_key", "SENDGRID_WEBHOOK_PUBLIC_KEY", _ec_public_key, "",
         "the base64 public key SendGrid shows for its signed event webhook",
         "verifies SendGrid's event webhook; unset: the endpoint refuses everything"),
    Spec("soft_bounce_limit", "CLUBJAPON_SOFT_BOUNCE_LIMIT", _positive_int, "3",
         "a whole number >= 1",
         "an address is suppressed after this many soft-bounced messages in a row"),
    Spec("bounce_address", "CLUBJAPON_BOUNCE_ADDRESS", _optional_address, "",
         "an address such as bounces@example.org (empty: the address of CLUBJAPON_MAIL_FROM)",
         "the envelope sender (return path) of SMTP sends: where bounces go"),
    Spec("bounce_verp", "CLUBJAPON_BOUNCE_VERP", _optional_bool, "",
         "true | false (empty: true when CLUBJAPON_BOUNCE_ADDRESS is set)",
         "SMTP sends use local+TOKEN-reader=their.domain@domain (classic VERP) as envelope "
         "sender, TOKEN naming the ledger row (signed with CLUBJAPON_SECRET): a bounce then "
         "names its message, and a forged one names no one"),
    Spec("bounce_verp_delimiter", "CLUBJAPON_BOUNCE_VERP_DELIMITER", _choice("+", "-"), "+",
         "+ or -",
         "what follows the bounce address's local part in a VERP return path: + (plus "
         "addressing, which most mailboxes take) or - (a mailbox whose delimiter is -, e.g. "
         "Postfix recipient_delimiter = +-: spam filters such as rspamd then read it as "
         "VERP); bounces of either shape are read whatever it says"),
    Spec("bounce_imap_host", "BOUNCE_IMAP_HOST", _optional, "",
         "a host name or address (empty: no bounce mailbox)",
         "IMAP server of the bounce mailbox read by 'bounces' and jobs/bounce-mailbox.toml"),
    Spec("bounce_imap_port", "BOUNCE_IMAP_PORT", _optional_port, "",
         "a port number 1-65535 (empty: 993 with tls, else 143)",
         "IMAP port of the bounce mailbox"),
    Spec("bounce_imap_username", "BOUNCE_IMAP_USERNAME", _optional, "", "a user name",
         "IMAP login of the bounce mailbox"),
    Spec("bounce_imap_password", "BOUNCE_IMAP_PASSWORD", _optional, "", "a password",
         "IMAP password of the bounce mailbox", secret=True),
    Spec("bounce_imap_folder", "BOUNCE_IMAP_FOLDER", _text, "INBOX", "an IMAP folder name",
         "the folder read for bounces and complaints"),
    Spec("bounce_imap_security", "BOUNCE_IMAP_SECURITY", _choice("tls", "starttls", "none"),
         "tls", "tls | starttls | none", "IMAP transport security of the bounce mailbox"),
    Spec("bounce_imap_delete", "BOUNCE_IMAP_DELETE", _bool, "false", "true | false",
         "delete handled messages instead of moving them to the folder Processed"),
    Spec("bounce_imap_deadline", "BOUNCE_IMAP_DEADLINE", _positive_float, "600",
         "seconds, a number > 0",
         "the longest one read of the bounce mailbox may take (a server that never finishes "
         "an answer included); then it stops, and the next run goes on"),
    Spec("hubspot_subscription_id", "HUBSPOT_SUBSCRIPTION_ID", _digits, "",
         "a HubSpot subscription type id (digits)",
         "the email subscription type that write-back unsubscribes addresses from"),
    Spec("preview_password", "CLUBJAPON_PREVIEW_PASSWORD", _own_secret, "",
         f"a random string of at least {MIN_SECRET} characters",
         "basic-auth password of 'preview --serve' (any user name); required to serve it on "
         "an address other than loopback, and then only behind a TLS proxy", secret=True),
)

SPEC_BY_ENV = {s.env: s for s in SPECS}


def unset(settings: Settings, names: Iterable[str]) -> list[str]:
    """Which of these settings (environment names) have no value."""
    return [name for name in names if not getattr(settings, SPEC_BY_ENV[name].attr, None)]

REFERENCE_FILE = Path("docs") / "reference" / "settings.md"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def settings_reference() -> str:
    """Return docs/reference/settings.md: one table row per Spec, in SPECS order."""
    lines = [
        "# Settings reference",
        "",
        "<!-- Generated from clubjapon_ops.settings.SPECS; do not edit. Regenerate with:",
        "     .venv/bin/python -m clubjapon_ops.settings > docs/reference/settings.md -->",
        "",
        "Where each value may come from (defaults, `config/clubjapon.toml`, `.env`, the",
        "environment), how secrets are kept out of sight, and how to see the effective values:",
        "[Configuration](../deploy.md#configuration).",
        "",
        "| variable | default | accepts | what it does |",
        "|---|---|---|---|",
    ]
    for spec in SPECS:
        name = f"`{spec.env}`" + (" (secret)" if spec.secret else "")
        default = f"`{spec.default}`" if spec.default else "-"
        lines.append(f"| {name} | {_cell(default)} | {_cell(spec.accepts)} | {_cell(spec.help)} |")
    return "\n".join(lines) + "\n"
SPEC_BY_ATTR = {s.attr: s for s in SPECS}


@dataclass(frozen=True)
class Settings:
    """The effective configuration; build it with :func:`load_settings`."""

    root: Path
    database_url: str
    crm: str
    csv_path: Path
    hubspot_token: str | None
    hubspot_base_url: str
    hubspot_full_sync_days: int
    hubspot_extra_properties: tuple[str, ...]
    brevo_api_key: str | None
    brevo_base_url: str
    brevo_attributes: tuple[tuple[str, str], ...]
    brevo_full_sync_days: int
    http_timeout: float
    http_attempts: int
    http_retry_seconds: float
    transport: str
    outbox_dir: Path
    smtp_host: str
    smtp_port: int
    smtp_username: str | None
    smtp_password: str | None
    smtp_security: str
    smtp_eight_bit: bool
    dkim_key_file: Path | None
    dkim_selector: str | None
    dkim_domain: str | None
    sendgrid_api_key: str | None
    sendgrid_base_url: str
    mail_from: str
    list_id: str
    timezone: ZoneInfo
    public_url: str
    postal_address: tuple[str, ...]
    secret: str | None
    send_rate: float
    smtp_connections: int
    send_attempts: int
    send_retry_wait: float
    send_retry_delay: float
    send_commit_every: int
    error_budget: int
    brevo_webhook_secret: str | None
    sendgrid_webhook_public_key: str | None
    soft_bounce_limit: int
    hubspot_subscription_id: str | None
    preview_password: str | None
    bounce_address: str | None
    bounce_verp: bool
    bounce_verp_delimiter: str
    bounce_imap_host: str | None
    bounce_imap_port: int | None
    bounce_imap_username: str | None
    bounce_imap_password: str | None
    bounce_imap_folder: str
    bounce_imap_security: str
    bounce_imap_delete: bool
    bounce_imap_deadline: float
    link_tracking: str = "aggregate"
    tracking_consent_field: str | None = None
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)
    # attr -> the raw TOML value that .env or the environment overrides with a different one
    shadowed: Mapping[str, str] = field(default_factory=dict, compare=False)

    def secrets(self) -> list[str]:
        """Return the secret values in use, so log output can redact them: secret settings,
        and the secret parts of every other (a URL's password, ?password=, password=...)."""
        values = [getattr(self, s.attr) for s in SPECS if s.secret]
        for spec in SPECS:
            value = getattr(self, spec.attr)
            if not spec.secret and isinstance(value, str):
                values += url_secrets(value)
        return list(dict.fromkeys(v for v in values if v))

    @property
    def leaves_this_machine(self) -> bool:
        """Whether the transport sends real messages (every one but the local outbox)."""
        return self.transport != "outbox"

    def describe(self) -> list[tuple[str, str, str]]:
        """Return (variable, shown value, source) rows, secrets masked."""
        rows = []
        for spec in SPECS:
            value = getattr(self, spec.attr)
            shown = _show(spec, value)
            rows.append((spec.env, shown, self.sources.get(spec.attr, "default")))
        return rows

    def shadows(self) -> dict[str, str]:
        """(variable -> the TOML value shown, secrets masked) for each value from .env or the
        environment that differs from the one config/clubjapon.toml gives."""
        shown = {}
        for attr, raw in self.shadowed.items():
            spec = SPEC_BY_ATTR[attr]
            try:
                shown[spec.env] = _show(spec, spec.parse(raw))
            except ValueError:
                shown[spec.env] = MASK if spec.secret else repr(mask_secrets(raw))
        return shown

    def masked_database_url(self) -> str:
        """Return the database URL with any password masked, wherever the URL holds it."""
        return mask_secrets(self.database_url)

    def with_overrides(self, **changes: Any) -> Settings:
        """Return a copy with some attributes replaced (for tests and CLI flags)."""
        data = {k: getattr(self, k) for k in self.__dataclass_fields__}
        data.update(changes)
        return Settings(**data)


DKIM_SETTINGS = {"dkim_key_file": "CLUBJAPON_DKIM_KEY_FILE",
                 "dkim_selector": "CLUBJAPON_DKIM_SELECTOR",
                 "dkim_domain": "CLUBJAPON_DKIM_DOMAIN"}


def _check_dkim(values: Mapping[str, Any]) -> None:
    """The three DKIM settings come together: a key without its selector signs nothing
    verifiable, and a half-set DKIM should not pass unnoticed."""
    unset = [env for attr, env in DKIM_SETTINGS.items() if values[attr] is None]
    if unset and len(unset) < len(DKIM_SETTINGS):
        raise ConfigError(
            f"DKIM is half set up: {', '.join(unset)} missing; set all three of "
            f"{', '.join(DKIM_SETTINGS.values())} to sign, or none")


def check_web_settings(settings: Settings) -> None:
    """Refuse to serve the web app without the key that checks unsubscribe links."""
    if not settings.secret:
        # Without it every unsubscribe link would get a 400, and nobody would notice.
        raise ConfigError(
            "CLUBJAPON_SECRET is not set: the web app could not check any unsubscribe link; "
            f"set it (in .env) to the key the messages were signed with, at least {MIN_SECRET} "
            "random characters"
        )


def _show(spec: Spec, value: Any) -> str:
    if value is None or value == "":
        return "(not set)"
    if spec.secret:
        return MASK
    if isinstance(value, bool):
        return "true" if value else "false"
    if spec.attr == "postal_address":
        return "; ".join(value) or "(not set)"
    if isinstance(value, tuple):
        items = [i if isinstance(i, str) else "=".join(i) for i in value]
        return ",".join(items) or "(not set)"
    # Any setting may be a URL with a password in it, the database's above all.
    return mask_secrets(str(value))


def find_root(start: Path | None = None) -> Path:
    """Return CLUBJAPON_HOME, else the nearest folder holding config/clubjapon.toml, else cwd."""
    home = os.environ.get("CLUBJAPON_HOME")
    if home:
        return Path(home).expanduser().resolve()
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / CONFIG_FILE).is_file():
            return folder
    return here


def _read_toml(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read as TOML: {exc}") from exc
    values: dict[str, str] = {}
    for key, value in data.get("settings", {}).items():
        spec = SPEC_BY_ATTR.get(key)
        if spec is None:
            raise ConfigError(f"{path}: unknown setting [settings].{key}: {_meant(key)}")
        if spec.secret:
            raise ConfigError(
                f"{path}: {key} is a secret; put it in .env or the environment ({spec.env})"
            )
        values[spec.env] = str(value).lower() if isinstance(value, bool) else str(value)
    return values


def _meant(key: str) -> str:
    """What to do about an unknown TOML key: the name it is closest to, never the whole list
    (it would name the secrets, which have no business in that file)."""
    wanted = key.strip().lower()
    by_env = SPEC_BY_ENV.get(key.strip().upper())  # CLUBJAPON_SEND_RATE written as the key
    close = [by_env.attr] if by_env else difflib.get_close_matches(
        wanted, list(SPEC_BY_ATTR), n=1, cutoff=0.75)
    if not close:
        return f"no setting has a name like it: see {REFERENCE_FILE} for the names"
    spec = SPEC_BY_ATTR[close[0]]
    if spec.secret:
        return (f"did you mean {spec.attr}? It is a secret: put it in .env or the environment "
                f"({spec.env}), never in this file")
    return f"did you mean {spec.attr}?"


def load_settings(
    root: Path | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    use_dotenv: bool = True,
) -> Settings:
    """Build the settings from defaults, the TOML file, .env and the environment."""
    root = (root or find_root()).resolve()
    env = os.environ if environ is None else environ
    layers: list[tuple[str, Mapping[str, str | None]]] = [
        (str(CONFIG_FILE), _read_toml(root / CONFIG_FILE)),
    ]
    if use_dotenv and (root / ".env").is_file():
        layers.append((".env", dotenv_values(root / ".env")))
    layers.append(("environment", env))

    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    shadowed: dict[str, str] = {}
    for spec in SPECS:
        raw, origin = spec.default, "default"
        for name, layer in layers:
            candidate = layer.get(spec.env)
            if candidate is not None:
                raw, origin = candidate, name
        in_toml = layers[0][1].get(spec.env)
        if in_toml is not None and origin != layers[0][0] and _differs(spec, in_toml, raw):
            shadowed[spec.attr] = in_toml
        try:
            value = spec.parse(raw)
        except ValueError:
            shown = MASK if spec.secret else repr(mask_secrets(raw))
            raise ConfigError(
                f"{spec.env}={shown} (from {origin}) is invalid: expected {spec.accepts}"
            ) from None
        values[spec.attr] = value
        sources[spec.attr] = origin

    for attr in ("csv_path", "outbox_dir", "dkim_key_file"):
        path: Path | None = values[attr]
        if path is not None and not path.is_absolute():
            values[attr] = root / path
    _check_dkim(values)
    if values["bounce_verp"] is None:
        # A return path of its own is a mailbox the club runs: it takes bounces+TOKEN@ too,
        # and VERP is what keeps a forged DSN from suppressing readers (docs/ops.md).
        values["bounce_verp"] = values["bounce_address"] is not None
    _check_verp_delimiter(values)
    if values["list_id"] is None:
        default = values["list_id"] = default_list_id(values["mail_from"])
        if not _LIST_ID.match(default):
            raise ConfigError(
                "CLUBJAPON_LIST_ID is not set and the domain of CLUBJAPON_MAIL_FROM makes no "
                "valid list id from it: set CLUBJAPON_LIST_ID to one such as "
                "'newsletter.example.org'")
    values["database_url"] = anchor_sqlite(values["database_url"], root)
    return Settings(root=root, sources=sources, shadowed=shadowed, **values)


def _check_verp_delimiter(values: Mapping[str, Any]) -> None:
    """A bounce address whose name holds the VERP delimiter would be cut there by its server
    (bounces-club+TOKEN is delivered to "bounces" with '-'): refused at start."""
    delimiter = values["bounce_verp_delimiter"]
    address = values["bounce_address"] or parseaddr(values["mail_from"])[1]
    local = address.rpartition("@")[0]
    if values["bounce_verp"] and delimiter in local:
        source = ("CLUBJAPON_BOUNCE_ADDRESS" if values["bounce_address"]
                  else "the address of CLUBJAPON_MAIL_FROM")
        raise ConfigError(
            f"CLUBJAPON_BOUNCE_VERP_DELIMITER is {delimiter!r} and {source} ({address}) has "
            f"{delimiter!r} in its name: its mail server would cut the name there and lose "
            "the bounces. Use a bounce address without it (such as bounces@...), or the other "
            "delimiter")


def _differs(spec: Spec, one: str | None, other: str | None) -> bool:
    """Whether two raw values of a setting mean different things ('5' and '5.0' do not)."""
    try:
        return bool(spec.parse(one or "") != spec.parse(other or ""))
    except ValueError:
        return one != other


if __name__ == "__main__":
    print(settings_reference(), end="")
