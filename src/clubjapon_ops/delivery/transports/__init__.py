"""Transports: one interface, a batch of messages in, one status per recipient out."""

from __future__ import annotations

from clubjapon_ops.delivery.dkim import make_signer
from clubjapon_ops.delivery.message import MimeBuilder
from clubjapon_ops.delivery.returnpath import return_path
from clubjapon_ops.delivery.transports.base import Outgoing, Result, Status, Transport
from clubjapon_ops.delivery.transports.brevo import BrevoTransport
from clubjapon_ops.delivery.transports.outbox import OutboxTransport
from clubjapon_ops.delivery.transports.sendgrid import SendGridTransport
from clubjapon_ops.delivery.transports.smtp import SmtpConfig, SmtpTransport
from clubjapon_ops.errors import ConfigError
from clubjapon_ops.http.client import HttpClient, RetryPolicy
from clubjapon_ops.http.vendors import brevo_api, sendgrid_api
from clubjapon_ops.settings import Settings

__all__ = ["Outgoing", "Result", "Status", "Transport", "builder_for", "make_transport"]


def builder_for(settings: Settings) -> MimeBuilder:
    """The MIME builder of a send: the From of the settings, DKIM-signing when set up.

    The key is read and checked here, before anything is sent (ConfigError naming
    CLUBJAPON_DKIM_KEY_FILE). API transports send JSON and never use the signature: the
    provider signs with the domain set up in its console.
    """
    builder = MimeBuilder(settings.mail_from, list_id=settings.list_id)
    builder.signer = make_signer(settings.dkim_key_file, settings.dkim_selector,
                                 settings.dkim_domain, builder.from_address)
    return builder


def make_transport(settings: Settings, builder: MimeBuilder) -> Transport:
    """Build the transport that CLUBJAPON_TRANSPORT names."""
    if settings.transport == "outbox":
        return OutboxTransport(settings.outbox_dir, builder, return_path(settings))
    if settings.transport == "smtp":
        config = SmtpConfig(
            host=settings.smtp_host, port=settings.smtp_port, security=settings.smtp_security,
            username=settings.smtp_username, password=settings.smtp_password,
            connections=settings.smtp_connections, attempts=settings.send_attempts,
            retry_wait=settings.send_retry_wait, eight_bit=settings.smtp_eight_bit,
        )
        return SmtpTransport(config, builder.from_address, builder, return_path(settings))
    retry = RetryPolicy(attempts=settings.http_attempts, total_s=settings.http_retry_seconds,
                        initial_wait_s=settings.send_retry_wait)
    if settings.transport == "brevo":
        if not settings.brevo_api_key:
            raise ConfigError("BREVO_API_KEY is not set: it is needed to send through Brevo")
        client = HttpClient(brevo_api(settings.brevo_api_key, settings.brevo_base_url),
                            timeout=settings.http_timeout, retry=retry)
        return BrevoTransport(client, settings.mail_from, builder.unsubscribe_mailto,
                              list_id=settings.list_id)
    if not settings.sendgrid_api_key:
        raise ConfigError("SENDGRID_API_KEY is not set: it is needed to send through SendGrid")
    client = HttpClient(sendgrid_api(settings.sendgrid_api_key, settings.sendgrid_base_url),
                        timeout=settings.http_timeout, retry=retry)
    return SendGridTransport(client, settings.mail_from, builder.unsubscribe_mailto,
                             list_id=settings.list_id)
