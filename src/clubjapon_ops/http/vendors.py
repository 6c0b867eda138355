"""Each vendor's API as the HTTP layer needs it: base URL, authentication, rate hints, 429s.

The CRM sources, the write-back and the email transports all build their clients from here,
so neither crm/ nor delivery/ needs the other.
"""

from __future__ import annotations

from collections.abc import Mapping

import requests

from clubjapon_ops.errors import StopRun
from clubjapon_ops.http.client import Api, parse_int_header
from clubjapon_ops.http.client import retry_after as retry_after_header
from clubjapon_ops.http.pacing import RateHint

# Brevo

def brevo_rate_hint(headers: Mapping[str, str]) -> RateHint | None:
    """Read x-sib-ratelimit-{limit,remaining,reset}: a fixed window resetting in 'reset' s."""
    reset = parse_int_header(headers, "x-sib-ratelimit-reset")
    if reset is None:
        return None
    return RateHint(
        limit=parse_int_header(headers, "x-sib-ratelimit-limit"),
        remaining=parse_int_header(headers, "x-sib-ratelimit-remaining"),
        window_s=float(reset),
        rolling=False,
    )


def brevo_on_rate_limit(response: requests.Response) -> float | None:
    """A 429 says in x-sib-ratelimit-reset how many seconds to wait."""
    reset = parse_int_header(response.headers, "x-sib-ratelimit-reset")
    if reset is not None:
        return float(max(reset, 0))
    return retry_after_header(response)


def brevo_api(key: str, base_url: str) -> Api:
    """Describe Brevo to the HTTP layer: api-key header and x-sib-ratelimit-* headers."""
    return Api(
        name="Brevo",
        base_url=base_url,
        auth_headers={"api-key": key},
        auth_setting="BREVO_API_KEY",
        rate_hint=brevo_rate_hint,
        on_rate_limit=brevo_on_rate_limit,
        secrets=(key,),
    )


# HubSpot

def hubspot_rate_hint(headers: Mapping[str, str]) -> RateHint | None:
    """Read X-HubSpot-RateLimit-{Max,Remaining,Interval-Milliseconds} (absent on search)."""
    limit = parse_int_header(headers, "X-HubSpot-RateLimit-Max")
    interval = parse_int_header(headers, "X-HubSpot-RateLimit-Interval-Milliseconds")
    if limit is None or interval is None:
        return None
    remaining = parse_int_header(headers, "X-HubSpot-RateLimit-Remaining")
    return RateHint(limit=limit, remaining=remaining, window_s=interval / 1000, rolling=True)


def hubspot_on_rate_limit(response: requests.Response) -> float | None:
    """Decide what a 429 means: stop on the daily limit, else how long to wait."""
    try:
        body = response.json()
    except ValueError:
        body = None
    policy = str(body.get("policyName") or "") if isinstance(body, dict) else ""
    if policy.upper() == "DAILY":
        raise StopRun(
            "HubSpot's daily API limit is used up (429, policy DAILY): the sync stopped; "
            "everything it committed is kept and the next run resumes from there"
        )
    wait = retry_after_header(response)
    if wait is not None:
        return wait
    if policy.upper() == "SECONDLY":
        return 1.0
    interval = parse_int_header(response.headers, "X-HubSpot-RateLimit-Interval-Milliseconds")
    remaining = parse_int_header(response.headers, "X-HubSpot-RateLimit-Remaining")
    if interval is not None and remaining is not None and remaining <= 0:
        # A rolling window: once it is full, waiting its length is sure to free a slot.
        return interval / 1000
    return None


def hubspot_api(token: str, base_url: str) -> Api:
    """Describe HubSpot to the HTTP layer: bearer token, rate-limit headers, 429 policies."""
    return Api(
        name="HubSpot",
        base_url=base_url,
        auth_headers={"Authorization": f"Bearer {token}"},
        auth_setting="HUBSPOT_TOKEN",
        rate_hint=hubspot_rate_hint,
        on_rate_limit=hubspot_on_rate_limit,
        secrets=(token,),
    )


# SendGrid

def sendgrid_api(key: str, base_url: str) -> Api:
    """Describe SendGrid to the HTTP layer: bearer key (its 429s carry Retry-After)."""
    return Api(name="SendGrid", base_url=base_url,
               auth_headers={"Authorization": f"Bearer {key}"}, auth_setting="SENDGRID_API_KEY",
               secrets=(key,))
