"""The send job: an edition to its audience through the configured transport."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from clubjapon_ops.delivery.clicks import ClickSigner, link_href, reader_part, stored_links
from clubjapon_ops.delivery.newsletter_check import check_newsletter
from clubjapon_ops.delivery.sender import CampaignSender, SendReport, Waiting
from clubjapon_ops.delivery.tokens import TokenSigner, signing_key, unsubscribe_url
from clubjapon_ops.delivery.transports import builder_for, make_transport
from clubjapon_ops.delivery.transports.base import Reachable
from clubjapon_ops.errors import ConfigError, StopRun
from clubjapon_ops.jobs.audience import check_audience
from clubjapon_ops.jobs.records import run_recorded
from clubjapon_ops.newsletter.content import resolve_edition
from clubjapon_ops.newsletter.lint import Problem
from clubjapon_ops.newsletter.service import Newsletter, load_newsletter
from clubjapon_ops.settings import Settings
from clubjapon_ops.store import Store
from clubjapon_ops.store.clicks import remember_links
from clubjapon_ops.store.lock import send_lock

log = logging.getLogger(__name__)


@dataclass
class SendOptions:
    """How ops asked for a send."""

    limit: int | None = None
    resend_unknown: bool = False
    force: bool = False
    worker: bool = False  # one of several processes on the campaign (PostgreSQL only)
    now: bool = False  # rows waiting for a retry go at once (send --now)


def require_postal_address(settings: Settings) -> None:
    """A message that leaves this machine must show the club's postal address: ConfigError."""
    # Commercial mail must say where its sender can be reached (LCEN art. L34-5 in France,
    # CAN-SPAM in the US); the outbox stays here, so the demo and tests need none.
    if settings.leaves_this_machine and not settings.postal_address:
        raise ConfigError(
            f"CLUBJAPON_POSTAL_ADDRESS is not set: the transport {settings.transport} sends "
            "real messages, and each must show the club's postal address in its footer "
            "(set it in .env or config/clubjapon.toml, lines separated by ';')")


def newsletter_for_sending(settings: Settings, edition: str) -> Newsletter:
    """Load the edition with real, signed unsubscribe links, and its links through the click
    redirect unless CLUBJAPON_LINK_TRACKING=off."""
    require_postal_address(settings)  # before anything is planned or rendered
    slug = resolve_edition(settings.root, edition)  # tokens sign the slug, never a spelling
    if settings.link_tracking == "consent" and not settings.tracking_consent_field:
        raise ConfigError(
            "CLUBJAPON_LINK_TRACKING is consent but CLUBJAPON_TRACKING_CONSENT_FIELD is not "
            "set: name the CRM field that says a reader agreed, or set "
            "CLUBJAPON_LINK_TRACKING=aggregate")
    key = signing_key(settings)
    signer = TokenSigner(key)
    clicks = ClickSigner(key)
    tracking = settings.link_tracking != "off"
    return load_newsletter(
        settings, slug,
        lambda c, row: unsubscribe_url(settings, signer, row, c.language),
        links=link_href(settings, clicks) if tracking else None,
        reader_part=reader_part(settings, clicks) if settings.link_tracking == "consent"
        else None,
    )


def remember_edition_links(settings: Settings, store: Store, newsletter: Newsletter) -> None:
    """Keep the links of an edition sent with click redirects: they redirect from the store
    even once the edition file is gone."""
    if newsletter.renderer.links is None:
        return
    links = stored_links(ClickSigner(signing_key(settings)), newsletter.edition)
    with store.transaction() as conn:
        remember_links(conn, links)


def refuse_draft(newsletter: Newsletter) -> None:
    """A draft is for previews and test copies: raise ConfigError before anything is sent."""
    edition = newsletter.edition
    if edition.is_draft:
        raise ConfigError(f"{edition.slug} is a draft: set status: ready in "
                          f"config/editions/{edition.slug}.yaml when it is")


def lint_before_send(settings: Settings, newsletter: Newsletter) -> list[Problem]:
    """Run the newsletter lint with the links this send will use."""
    return check_newsletter(settings, newsletter.edition.slug,
                            newsletter.personaliser.unsubscribe_url,
                            for_send=settings.leaves_this_machine)


def refuse_workers_on(dialect: str) -> None:
    """Parallel senders need row locks that skip locked rows: PostgreSQL, not SQLite."""
    if dialect != "postgresql":
        raise ConfigError(
            f"--worker needs PostgreSQL (SELECT ... FOR UPDATE SKIP LOCKED); this store is "
            f"{dialect}: run a single `send` there, or set CLUBJAPON_DATABASE_URL to a "
            "postgresql+psycopg:// URL"
        )


def ensure_no_send_running(store: Store, edition: str) -> None:
    """Raise AlreadyRunning now if another process sends this edition (SQLite).

    A look before the plan is printed, so that a refused send does not show one; the send
    itself takes the lock again, which is what keeps two senders apart.
    """
    with send_lock(store, edition):
        pass


def send_campaign(
    settings: Settings,
    store: Store,
    edition: str,
    *,
    options: SendOptions | None = None,
    trigger: str = "cli",
    stop: threading.Event | None = None,
    progress: Callable[[int, int], None] | None = None,
    newsletter: Newsletter | None = None,
    waiting: Callable[[Waiting], None] | None = None,
) -> SendReport:
    """Send an edition to its audience through the configured transport; record everything."""
    options = options or SendOptions()
    if options.worker:
        refuse_workers_on(store.dialect)
    newsletter = newsletter or newsletter_for_sending(settings, edition)
    refuse_draft(newsletter)  # --force skips the lint, never this
    check_audience(store, newsletter.edition)  # unknown lists, nobody in it: nothing planned
    # With force the lint decides nothing (the send command has already shown its result).
    errors = [] if options.force else [
        p for p in lint_before_send(settings, newsletter) if p.level == "error"]
    if errors:
        raise StopRun(f"lint found {len(errors)} error(s), first: {errors[0]}; "
                      "fix them or send with --force")

    builder = builder_for(settings)  # reads the DKIM key: a bad one stops the send here

    def work() -> SendReport:
        transport = make_transport(settings, builder)
        try:
            sender = CampaignSender(store, newsletter, transport, rate=settings.send_rate,
                                    error_budget=settings.error_budget, stop=stop,
                                    progress=progress, worker=options.worker,
                                    commit_every=settings.send_commit_every,
                                    retry_delay=timedelta(seconds=settings.send_retry_delay),
                                    waiting=waiting)
            if isinstance(transport, Reachable):
                # One session before planning: a wrong host or port stops here, at once.
                transport.check()
            remember_edition_links(settings, store, newsletter)
            report = sender.prepare(resend_unknown=options.resend_unknown, now=options.now)
            return sender.run(report, limit=options.limit)
        finally:
            transport.close()

    # One sender per edition on SQLite, taken before the run is recorded: a send refused
    # because another is running did nothing, and is not a failed run of that edition.
    with send_lock(store, edition):
        return run_recorded(store, "send_campaign", trigger, work)
