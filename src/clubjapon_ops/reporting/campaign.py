"""Gather one edition's figures from the ledger and the provider events."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from clubjapon_ops.events import types as t
from clubjapon_ops.store import Store
from clubjapon_ops.store import deliveries as ledger
from clubjapon_ops.store import reporting as q
from clubjapon_ops.store.clicks import LinkLine, link_report
from clubjapon_ops.store.lists import ListLine, list_report
from clubjapon_ops.store.suppressions import suppressed_recipients

FAILURES = (t.HARD_BOUNCE, t.SOFT_BOUNCE, t.INVALID, t.BLOCKED, t.COMPLAINT)
SMTP_REFUSAL = "refused (SMTP)"  # a 5xx while sending: no event, the ledger has the reply


@dataclass
class CampaignReport:
    """What marketing wants to know about an edition."""

    edition: str
    by_state: dict[str, int]
    by_language: dict[str, dict[str, int]]
    errors: dict[str, int]
    events: dict[str, tuple[int, int]]  # type -> (events, distinct recipients)
    failures: list[tuple[str, str, int]]  # (type, reason, recipients)
    unsubscribed: int
    suppressed: dict[str, int] = field(default_factory=dict)  # recipients now suppressed
    sent_per_hour: list[tuple[datetime, int]] = field(default_factory=list)
    delivered_per_hour: list[tuple[datetime, int]] = field(default_factory=list)
    by_list: list[ListLine] = field(default_factory=list)  # the lists its readers are on
    # Each link per language: clicks counted at /r/ (readers, scanners apart), and how many
    # readers who agreed to be measured clicked it.
    links: list[LinkLine] = field(default_factory=list)

    @property
    def total(self) -> int:
        """Recipients in the ledger."""
        return sum(self.by_state.values())

    @property
    def handed_over(self) -> int:
        """Messages the transport took."""
        return self.by_state.get(ledger.SENT, 0)

    def people(self, kind: str) -> int:
        """Distinct recipients with at least one event of this type."""
        return self.events.get(kind, (0, 0))[1]

    def rate(self, n: int) -> str:
        """n as a share of the messages handed over."""
        return f"{100 * n / self.handed_over:.1f} %" if self.handed_over else "-"


def per_hour(times: list[datetime]) -> list[tuple[datetime, int]]:
    """Counts per clock hour (UTC), in order."""
    counted = Counter(when.replace(minute=0, second=0, microsecond=0) for when in times)
    return sorted(counted.items())


def _with_refusals(failures: list[tuple[str, str, int]],
                   refusals: list[tuple[str, int]]) -> list[tuple[str, str, int]]:
    """Bounces and complaints from events, and SMTP refusals, the most frequent first."""
    merged = failures + [(SMTP_REFUSAL, reply, n) for reply, n in refusals]
    return sorted(merged, key=lambda row: -row[2])


def build_report(store: Store, edition: str) -> CampaignReport:
    """Read the edition's figures in one transaction."""
    with store.transaction() as conn:
        summary = ledger.ledger_report(conn, edition)
        unsubscribed = q.link_unsubscribes(conn, edition) | q.provider_unsubscribes(conn, edition)
        return CampaignReport(
            edition=edition,
            by_state=summary["by_state"],
            by_language=summary["by_language"],
            errors=summary["errors"],
            events=q.event_counts(conn, edition),
            failures=_with_refusals(q.failure_reasons(conn, edition, FAILURES),
                                    q.smtp_refusals(conn, edition)),
            unsubscribed=len(unsubscribed),
            suppressed=suppressed_recipients(conn, edition),
            sent_per_hour=per_hour(q.sent_times(conn, edition)),
            delivered_per_hour=per_hour(q.event_times(conn, edition, t.DELIVERED)),
            by_list=list_report(conn, edition),
            links=link_report(conn, edition),
        )
