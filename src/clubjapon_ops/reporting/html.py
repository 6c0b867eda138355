"""The campaign report as one self-contained HTML page with plotly charts (plotly.js inline,
so the file opens offline and can be attached to a mail)."""

from __future__ import annotations

from html import escape

import plotly.graph_objects as go

from clubjapon_ops.events import types as t
from clubjapon_ops.reporting.campaign import CampaignReport
from clubjapon_ops.reporting.text import ENGAGEMENT
from clubjapon_ops.store import deliveries as ledger

_LAYOUT = {"height": 360, "margin": {"l": 60, "r": 20, "t": 50, "b": 50},
           "template": "plotly_white"}


def _states(report: CampaignReport) -> go.Figure:
    figure = go.Figure()
    langs = sorted(report.by_language)
    for state in ledger.STATES:
        values = [report.by_language[lang].get(state, 0) for lang in langs]
        if any(values):
            figure.add_bar(name=state, x=langs, y=values)
    figure.update_layout(title="Recipients by language and state", barmode="stack", **_LAYOUT)
    return figure


def _timeline(report: CampaignReport) -> go.Figure:
    figure = go.Figure()
    for name, series in (("handed over", report.sent_per_hour),
                         ("delivered (provider)", report.delivered_per_hour)):
        if series:
            figure.add_bar(name=name, x=[w for w, _ in series], y=[n for _, n in series])
    figure.update_layout(title="Delivery over time (per hour, UTC)", barmode="group", **_LAYOUT)
    return figure


def _engagement(report: CampaignReport) -> go.Figure:
    labels = ["handed over"] + [label for label, kind in ENGAGEMENT if kind in report.events]
    values = [report.handed_over] + [report.people(kind) for _, kind in ENGAGEMENT
                                     if kind in report.events]
    labels.append("unsubscribed")
    values.append(report.unsubscribed)
    figure = go.Figure(go.Bar(x=labels, y=values, text=values, textposition="outside"))
    figure.update_layout(title="Recipients per outcome", **_LAYOUT)
    return figure


def _failures(report: CampaignReport) -> go.Figure:
    rows = list(reversed(report.failures))
    figure = go.Figure(go.Bar(
        x=[n for _, _, n in rows], y=[f"{kind}: {reason}"[:70] for kind, reason, _ in rows],
        orientation="h"))
    figure.update_layout(title="Bounces and complaints by reason",
                         **{**_LAYOUT, "height": 160 + 40 * len(rows),
                            "margin": {"l": 360, "r": 20, "t": 50, "b": 40}})
    return figure


def _row(cells: list[str], tag: str = "td") -> str:
    return "<tr>" + "".join(f"<{tag}>{escape(c)}</{tag}>" for c in cells) + "</tr>"


def render_html(report: CampaignReport) -> str:
    """The whole page: key figures, tables, and the charts."""
    figures = [_states(report), _timeline(report), _engagement(report)]
    if report.failures:
        figures.append(_failures(report))
    charts = [f.to_html(full_html=False, include_plotlyjs=(i == 0), config={"responsive": True})
              for i, f in enumerate(figures)]
    key = [("recipients", str(report.total)), ("handed over", str(report.handed_over)),
           ("delivered", str(report.people(t.DELIVERED))), ("opened", str(report.people(t.OPEN))),
           ("clicked", str(report.people(t.CLICK))), ("unsubscribed", str(report.unsubscribed))]
    states = [s for s in ledger.STATES if report.by_state.get(s)]
    table = [_row(["language", *states], "th")] + [
        _row([lang, *(str(by.get(s, 0)) for s in states)])
        for lang, by in sorted(report.by_language.items())]
    failures = [_row(["type", "reason", "recipients"], "th")] + [
        _row([kind, reason, str(n)]) for kind, reason, n in report.failures]
    title = f"Campaign report: {report.edition}"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title>
<style>
body {{ font-family: system-ui, "Hiragino Sans", "Noto Sans JP", sans-serif; margin: 2rem auto;
       max-width: 1000px; padding: 0 1rem; color: #1b1b1b; }}
.key {{ display: flex; flex-wrap: wrap; gap: 1rem; }}
.key div {{ border: 1px solid #ddd; border-radius: 6px; padding: .6rem 1rem; min-width: 7rem; }}
.key b {{ display: block; font-size: 1.5rem; }}
table {{ border-collapse: collapse; margin: 1rem 0; }}
td, th {{ border-bottom: 1px solid #eee; padding: .3rem .8rem; text-align: left; }}
</style></head><body>
<h1>{escape(title)}</h1>
<div class="key">{"".join(f"<div>{escape(k)}<b>{escape(v)}</b></div>" for k, v in key)}</div>
<h2>Recipients by language and state</h2>
<table>{"".join(table)}</table>
{"<h2>Bounces and complaints</h2><table>" + "".join(failures) + "</table>"
 if report.failures else ""}
{"".join(charts)}
<p><small>Opens and clicks are as the provider reports them (none for the outbox or SMTP);
shares are of the messages handed over.</small></p>
</body></html>
"""
