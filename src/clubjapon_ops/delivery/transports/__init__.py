"""Transports: one interface, a batch of messages in, one status per recipient out."""

from __future__ import annotations

from clubjapon_ops.delivery.message import MimeBuilder
from clubjapon_ops.delivery.transports.base import Outgoing, Result, Status, Transport
from clubjapon_ops.delivery.transports.outbox import OutboxTransport
from clubjapon_ops.delivery.transports.smtp import SmtpConfig, SmtpTransport
from clubjapon_ops.errors import ConfigError
from clubjapon_ops.settings import Settings

__all__ = ["Outgoing", "Result", "Status", "Transport", "make_transport"]


def make_transport(settings: Settings, builder: MimeBuilder) -> Transport:
    """Build the transport that CLUBJAPON_TRANSPORT names."""
    if settings.transport == "outbox":
        return OutboxTransport(settings.outbox_dir, builder)
    if settings.transport == "smtp":
        config = SmtpConfig(
            host=settings.smtp_host, port=settings.smtp_port, security=settings.smtp_security,
            username=settings.smtp_username, password=settings.smtp_password,
            connections=settings.smtp_connections, attempts=settings.send_attempts,
            retry_wait=settings.send_retry_wait,
        )
        return SmtpTransport(config, builder.from_address, builder)
    raise ConfigError(f"CLUBJAPON_TRANSPORT={settings.transport} is not available yet")
