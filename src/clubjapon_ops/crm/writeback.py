"""Write-back: tell the CRM about our own suppressions (unsubscribes, bounces, complaints).

HubSpot: the address leaves the club's subscription type (communication preferences v3).
Brevo: the contact is blacklisted for email. Calls go through the one HTTP layer, so they
are retried like every CRM call; a contact the CRM does not have is reported, never created.
"""

from __future__ import annotations

from typing import Protocol
from urllib.parse import quote

import requests

from clubjapon_ops.errors import ConfigError, SourceError
from clubjapon_ops.http.client import HttpClient, RetryPolicy
from clubjapon_ops.http.vendors import brevo_api, hubspot_api
from clubjapon_ops.settings import Settings
from clubjapon_ops.store.pushes import DONE, NOT_FOUND

HUBSPOT_UNSUBSCRIBE = "/communication-preferences/v3/unsubscribe"
BREVO_CONTACT = "/v3/contacts/{}"
# GDPR-enabled portals require a legal basis with every status change; an opt-out we
# honour is recorded under legitimate interest, with where it came from.
LEGAL_BASIS = "LEGITIMATE_INTEREST_OTHER"
_EXCERPT = 200


class Pusher(Protocol):
    """Tells one CRM that an address must not be emailed."""

    name: str

    def push(self, email: str, source: str) -> str:
        """Return DONE or NOT_FOUND; raise SourceError or AuthError when it cannot tell."""
        ...

    def close(self) -> None:
        """Release the HTTP session."""
        ...


def _message(response: requests.Response) -> str:
    try:
        document = response.json()
    except ValueError:
        return ""
    if isinstance(document, dict):
        return " ".join(str(document.get("message") or document.get("code") or "").split())
    return ""


class HubSpotPusher:
    """Unsubscribe addresses from one HubSpot subscription type."""

    name = "hubspot"

    def __init__(self, client: HttpClient, subscription_id: str) -> None:
        self.client = client
        self.subscription_id = subscription_id

    def push(self, email: str, source: str) -> str:
        """POST /communication-preferences/v3/unsubscribe for this address."""
        body = {
            "emailAddress": email,
            "subscriptionId": self.subscription_id,
            "legalBasis": LEGAL_BASIS,
            "legalBasisExplanation": f"Opt-out recorded by the club's mailing ({source}).",
        }
        return self.client.call("POST", HUBSPOT_UNSUBSCRIBE, lambda _d: DONE, body=body,
                                decode=self._decode)

    def _decode(self, response: requests.Response) -> str:
        status = response.status_code
        if status < 300:
            return DONE
        if status == 404:
            return NOT_FOUND
        message = _message(response)
        if status == 400 and "already" in message.lower():
            return DONE  # unsubscribed earlier (by the reader or staff): nothing to change
        raise SourceError(f"HubSpot: POST {HUBSPOT_UNSUBSCRIBE} answered HTTP {status}"
                          + (f": {message[:_EXCERPT]}" if message else ""))

    def close(self) -> None:
        """Release the HTTP session."""
        self.client.close()


class BrevoPusher:
    """Blacklist addresses for email in Brevo."""

    name = "brevo"

    def __init__(self, client: HttpClient) -> None:
        self.client = client

    def push(self, email: str, source: str) -> str:
        """PUT /v3/contacts/{email} with emailBlacklisted: true (never creates a contact)."""
        path = BREVO_CONTACT.format(quote(email, safe=""))
        return self.client.call("PUT", path, lambda _d: DONE, body={"emailBlacklisted": True},
                                params={"identifierType": "email_id"}, decode=self._decode)

    @staticmethod
    def _decode(response: requests.Response) -> str:
        status = response.status_code
        if status < 300:
            return DONE
        if status == 404:
            return NOT_FOUND
        message = _message(response)
        raise SourceError(f"Brevo: PUT /v3/contacts answered HTTP {status}"
                          + (f": {message[:_EXCERPT]}" if message else ""))

    def close(self) -> None:
        """Release the HTTP session."""
        self.client.close()


def _client(settings: Settings, api_name: str) -> HttpClient:
    policy = RetryPolicy(attempts=settings.http_attempts, total_s=settings.http_retry_seconds)
    if api_name == "hubspot":
        api = hubspot_api(settings.hubspot_token or "", settings.hubspot_base_url)
    else:
        api = brevo_api(settings.brevo_api_key or "", settings.brevo_base_url)
    return HttpClient(api, timeout=settings.http_timeout, retry=policy)


def make_pusher(settings: Settings) -> Pusher | None:
    """The pusher for CLUBJAPON_CRM; None for a CSV export (nothing to write back to)."""
    if settings.crm == "hubspot":
        if not settings.hubspot_token:
            raise ConfigError("HUBSPOT_TOKEN is not set")
        if not settings.hubspot_subscription_id:
            raise ConfigError(
                "HUBSPOT_SUBSCRIPTION_ID is not set: write-back needs the id of the club's "
                "email subscription type (HubSpot settings, Marketing > Email > Subscriptions)"
            )
        return HubSpotPusher(_client(settings, "hubspot"), settings.hubspot_subscription_id)
    if settings.crm == "brevo":
        if not settings.brevo_api_key:
            raise ConfigError("BREVO_API_KEY is not set")
        return BrevoPusher(_client(settings, "brevo"))
    return None
