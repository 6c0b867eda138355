"""The campaign report as one self-contained HTML page: tables and inline SVG charts (pygal).

No script and nothing loaded from elsewhere: the file opens offline, can be attached to a
mail, and weighs tens of kilobytes. Times are the club's, Europe/Paris.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from html import escape
from zoneinfo import ZoneInfo

import pygal
from pygal.style import Style

from clubjapon_ops.events import types as t
from clubjapon_ops.reporting.campaign import CampaignReport
from clubjapon_ops.reporting.text import ENGAGEMENT, LINK_HEADER, by_list_figures, link_rows
from clubjapon_ops.store import deliveries as ledger

PARIS = ZoneInfo("Europe/Paris")
NOT_REPORTED = "not reported by this transport"
MAX_HOURS = 72  # a longer send is drawn per day: bars stay readable
_FONT = 'system-ui, "Hiragino Sans", "Noto Sans JP", sans-serif'
_STYLE = Style(font_family=_FONT, label_font_family=_FONT, title_font_family=_FONT,
               legend_font_family=_FONT, value_font_family=_FONT, background="white",
               plot_background="white", foreground="#1b1b1b", foreground_strong="#1b1b1b",
               foreground_subtle="#6b6b6b", title_font_size=16, label_font_size=12,
               legend_font_size=12, value_font_size=12, major_label_font_size=12,
               colors=("#1f4e8c", "#c2410c", "#15803d", "#7c3aed", "#b91c1c", "#0e7490",
                       "#a16207"))
# pygal writes its tooltip configuration as a script even without its JavaScript: no use
# here, and the page carries no script at all. Its text is XML-escaped, so no "</script>"
# can stand inside one.
_SCRIPT = re.compile(r"<script\b[^>]*>.*?</script>", re.S)


def _svg(chart: pygal.graph.graph.Graph) -> str:
    return _SCRIPT.sub("", chart.render(is_unicode=True))


def _chart(kind: type[pygal.Bar], title: str, height: int = 360, **options: object) -> pygal.Bar:
    return kind(title=title, style=_STYLE, js=[], disable_xml_declaration=True, width=960,
                height=height, explicit_size=False, legend_at_bottom=True, truncate_label=-1,
                **options)


def _utc_hour(when: datetime) -> datetime:
    # Naive times (SQLite) are UTC. Buckets are kept in UTC, where hours follow each other
    # (Paris's offsets are whole hours, so its hours are the same buckets, relabelled).
    aware = when if when.tzinfo else when.replace(tzinfo=UTC)
    return aware.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def paris_buckets(
    *series: Sequence[tuple[datetime, int]],
) -> tuple[list[str], list[list[int]]]:
    """Labels in Paris time for every hour from the first to the last of all the series (every
    day past MAX_HOURS), and each series' count per label."""
    hours = [{_utc_hour(when): n for when, n in one} for one in series]
    seen = [h for one in hours for h in one]
    if not seen:
        return [], [[] for _ in series]
    first, last = min(seen), max(seen)
    steps = [first + timedelta(hours=h)
             for h in range(int((last - first).total_seconds() // 3600) + 1)]
    if len(steps) <= MAX_HOURS + 1:
        # The night the clocks go back, 02:00 comes twice: both are shown.
        return ([f"{step.astimezone(PARIS):%d/%m %H:00}" for step in steps],
                [[one.get(step, 0) for step in steps] for one in hours])
    days = sorted({step.astimezone(PARIS).date() for step in steps})
    counts = []
    for one in hours:
        per_day = dict.fromkeys(days, 0)
        for when, n in one.items():
            per_day[when.astimezone(PARIS).date()] += n
        counts.append(list(per_day.values()))
    return [f"{day:%d/%m}" for day in days], counts


def _states(report: CampaignReport) -> str:
    chart = _chart(pygal.StackedBar, "Recipients by language and state")
    langs = sorted(report.by_language)
    chart.x_labels = langs
    for state in ledger.STATES:
        values = [report.by_language[lang].get(state, 0) for lang in langs]
        if any(values):
            chart.add(state, values)
    return _svg(chart)


def _timeline(report: CampaignReport) -> str:
    labels, (sent, delivered) = paris_buckets(report.sent_per_hour, report.delivered_per_hour)
    chart = _chart(pygal.Bar, "Delivery over time (Europe/Paris)", x_label_rotation=-45,
                   show_minor_x_labels=False, x_labels_major_every=max(1, len(labels) // 12))
    chart.x_labels = labels
    for name, values in (("handed over", sent), ("delivered (provider)", delivered)):
        if any(values):
            chart.add(name, values)
    return _svg(chart)


def _engagement(report: CampaignReport) -> str:
    chart = _chart(pygal.Bar, "Recipients per outcome", print_values=True, show_legend=False)
    outcomes = [("handed over", report.handed_over)]
    outcomes += [(label, report.people(kind)) for label, kind in ENGAGEMENT
                 if kind in report.events]
    outcomes.append(("unsubscribed", report.unsubscribed))
    chart.x_labels = [label for label, _ in outcomes]
    chart.add("recipients", [n for _, n in outcomes])
    return _svg(chart)


def _failures(report: CampaignReport) -> str:
    chart = _chart(pygal.HorizontalBar, "Bounces and complaints by reason",
                   height=140 + 40 * len(report.failures), show_legend=False, print_values=True)
    rows = list(reversed(report.failures))
    chart.x_labels = [f"{kind}: {reason}"[:70] for kind, reason, _ in rows]
    chart.add("recipients", [n for _, _, n in rows])
    return _svg(chart)


def _row(cells: list[str], tag: str = "td") -> str:
    return "<tr>" + "".join(f"<{tag}>{escape(c)}</{tag}>" for c in cells) + "</tr>"


def _key_figures(report: CampaignReport) -> list[tuple[str, str]]:
    key = [("recipients", str(report.total)), ("handed over", str(report.handed_over))]
    for label, kind in (("delivered", t.DELIVERED), ("opened", t.OPEN), ("clicked", t.CLICK)):
        # No event at all: the outbox reports none (nor SMTP without a bounce mailbox, nor a
        # provider yet). A 0
        # would say nobody opened it, which nobody knows.
        key.append((label, str(report.people(kind)) if report.events else NOT_REPORTED))
    key.append(("unsubscribed", str(report.unsubscribed)))
    return key


def render_html(report: CampaignReport) -> str:
    """The whole page: key figures, tables, and the charts."""
    charts = [_states(report), _timeline(report), _engagement(report)]
    if report.failures:
        charts.append(_failures(report))
    states = [s for s in ledger.STATES if report.by_state.get(s)]
    table = [_row(["language", *states], "th")] + [
        _row([lang, *(str(by.get(s, 0)) for s in states)])
        for lang, by in sorted(report.by_language.items())]
    failures = [_row(["type", "reason", "recipients"], "th")] + [
        _row([kind, reason, str(n)]) for kind, reason, n in report.failures]
    by_list = [_row(["list", "planned", "sent", "bounced", "unsubscribed", "left"], "th")] + [
        _row([line.name, *(str(n) for n in by_list_figures(line))]) for line in report.by_list]
    links = [_row(LINK_HEADER, "th")] + [_row(row) for row in link_rows(report)]
    suppressed = [_row(["source", "recipients"], "th")] + [
        _row([source, str(n)]) for source, n in sorted(report.suppressed.items())]
    title = f"Campaign report: {report.edition}"
    made = datetime.now(PARIS)
    key = "".join(
        f'<div{" class=nr" if v == NOT_REPORTED else ""}>{escape(k)}<b>{escape(v)}</b></div>'
        for k, v in _key_figures(report))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title>
<style>
body {{ font-family: {_FONT}; margin: 2rem auto; max-width: 1000px; padding: 0 1rem;
       color: #1b1b1b; }}
.key {{ display: flex; flex-wrap: wrap; gap: 1rem; }}
.key div {{ border: 1px solid #ddd; border-radius: 6px; padding: .6rem 1rem; min-width: 7rem; }}
.key b {{ display: block; font-size: 1.5rem; }}
.key .nr b {{ font-size: .9rem; font-weight: normal; color: #6b6b6b; max-width: 9rem; }}
table {{ border-collapse: collapse; margin: 1rem 0; }}
td, th {{ border-bottom: 1px solid #eee; padding: .3rem .8rem; text-align: left;
          overflow-wrap: anywhere; }}
svg {{ display: block; width: 100%; height: auto; margin: 1.5rem 0; }}
</style></head><body>
<h1>{escape(title)}</h1>
<p><small>Made {made:%d/%m/%Y %H:%M} (Europe/Paris).</small></p>
<div class="key">{key}</div>
<h2>Recipients by language and state</h2>
<table>{"".join(table)}</table>
{"<h2>Recipients by list</h2><table>" + "".join(by_list) + "</table>"
 if report.by_list else ""}
{"<h2>Clicks on each link, by language</h2><table>" + "".join(links) + "</table>"
 if report.links else ""}
{"<h2>Bounces and complaints</h2><table>" + "".join(failures) + "</table>"
 if report.failures else ""}
{"<h2>Recipients suppressed since, by source</h2><table>" + "".join(suppressed) + "</table>"
 if report.suppressed else ""}
{"".join(charts)}
<p><small>Deliveries, opens and clicks are as Brevo or SendGrid report them (webhooks); the
outbox and SMTP report none. Bounces come from those webhooks, from the bounce mailbox (SMTP
sends), and from SMTP servers that refused a message while it was sent ("refused (SMTP)").
Shares are of the messages handed over. Clicks on each link are counted by our own link
redirect (CLUBJAPON_PUBLIC_URL/r/), per link, language and day, without knowing who; link
scanners (security gateways that follow every link) apart; a reader's own clicks only for
readers who agreed to be measured.</small></p>
</body></html>
"""
