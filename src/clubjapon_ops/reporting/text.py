"""The campaign report as plain text for the terminal."""

from __future__ import annotations

from clubjapon_ops.events import types as t
from clubjapon_ops.newsletter.textwrap_cjk import display_width
from clubjapon_ops.printable import printable
from clubjapon_ops.reporting.campaign import CampaignReport
from clubjapon_ops.store import deliveries as ledger
from clubjapon_ops.store.lists import ListLine

ENGAGEMENT = (
    ("delivered", t.DELIVERED), ("opened", t.OPEN), ("clicked", t.CLICK),
    ("soft bounce", t.SOFT_BOUNCE), ("hard bounce", t.HARD_BOUNCE), ("invalid", t.INVALID),
    ("blocked", t.BLOCKED), ("deferred", t.DEFERRED), ("complaint", t.COMPLAINT),
)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    # Widths in terminal columns: a Japanese bounce reason takes two a character.
    widths = [max(display_width(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        # First column left-aligned (a label), the figures right-aligned.
        padded = []
        for i, (cell, width) in enumerate(zip(cells, widths, strict=True)):
            gap = " " * (width - display_width(cell))
            padded.append(cell + gap if i == 0 else gap + cell)
        return "  ".join(padded).rstrip()

    return [line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)]


def by_list_figures(line: ListLine) -> tuple[int, ...]:
    """Planned, sent, bounced, unsubscribed and left for one list's readers."""
    return line.planned, line.sent, line.bounced, line.unsubscribed, line.left


def link_rows(report: CampaignReport) -> list[list[str]]:
    """One row per link and language: label, language, readers' clicks, scanners' clicks,
    readers who agreed to be measured and clicked, and the URL."""
    return [[printable(line.label)[:40], line.lang, str(line.readers), str(line.scanners),
             str(line.consenting_readers), printable(line.url)]
            for line in report.links]


LINK_HEADER = ["link", "language", "clicks", "scanners", "readers who agreed", "URL"]


def link_lines(report: CampaignReport) -> list[str]:
    """The links table: clicks counted at our redirect, per language, scanners apart."""
    rows = [row[:5] for row in link_rows(report)]
    lines = _table(LINK_HEADER[:5], rows)
    seen: dict[str, str] = {}
    for line in report.links:  # the targets once each, under the table
        seen.setdefault(f"{printable(line.label)[:40]} ({line.lang})", printable(line.url))
    lines += [f"  {label}: {url[:200]}{'...' if len(url) > 200 else ''}"
              for label, url in seen.items()]
    lines.append("(clicks on our links, counted per link, language and day without knowing "
                 "who; scanners are security gateways that follow every link; readers who "
                 "agreed: CLUBJAPON_LINK_TRACKING=consent only)")
    return lines


def render_text(report: CampaignReport) -> str:
    """Tables by state and language, engagement, failures by reason."""
    if not report.total:
        return f"{report.edition}: nothing planned or sent yet\n"
    out = [f"Edition {report.edition}: {report.total} recipient(s), "
           f"{report.handed_over} handed over", ""]
    states = [s for s in ledger.STATES if any(s in v for v in report.by_language.values())]
    rows = [[lang, *(str(by.get(s, 0)) for s in states), str(sum(by.values()))]
            for lang, by in sorted(report.by_language.items())]
    rows.append(["all", *(str(report.by_state.get(s, 0)) for s in states), str(report.total)])
    out += _table(["language", *states, "total"], rows)
    out.append("")
    rows = [[label, str(report.events.get(kind, (0, 0))[0]), str(report.people(kind)),
             report.rate(report.people(kind))]
            for label, kind in ENGAGEMENT if kind in report.events]
    rows.append(["unsubscribed", "-", str(report.unsubscribed), report.rate(report.unsubscribed)])
    out += _table(["outcome", "events", "recipients", "of handed over"], rows)
    if not report.events:
        out.append("(no events for this edition yet: Brevo and SendGrid send them to the web "
                   "app's webhooks, SMTP bounces come through the bounce mailbox ('clubjapon-ops "
                   "bounces'); the outbox reports none)")
    if report.by_list:
        out.append("")
        out += _table(["list", "planned", "sent", "bounced", "unsubscribed", "left"],
                      [[line.name, *(str(n) for n in by_list_figures(line))]
                       for line in report.by_list])
    if report.links:
        out += ["", *link_lines(report)]
    if report.suppressed:
        out.append("")
        out += _table(["suppressed since, by source", "recipients"],
                      [[source, str(n)] for source, n in sorted(report.suppressed.items())])
    if report.failures:
        out.append("")
        out += _table(["bounces and complaints by reason", "type", "recipients"],
                      [[reason, kind, str(n)] for kind, reason, n in report.failures])
    if report.sent_per_hour:
        first, last = report.sent_per_hour[0][0], report.sent_per_hour[-1][0]
        out += ["", f"handed over from {first:%Y-%m-%d %H:00} to {last:%Y-%m-%d %H:59} UTC"]
    return "\n".join(out) + "\n"
