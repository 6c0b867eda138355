"""The campaign report from a ledger and stored provider events: figures, terminal table,
self-contained HTML page, the CLI command and the nightly job."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import delete, update

from clubjapon_ops import jobs
from clubjapon_ops.events.brevo import parse_event
from clubjapon_ops.jobs.reports import campaign_reports
from clubjapon_ops.newsletter.textwrap_cjk import display_width
from clubjapon_ops.reporting.campaign import build_report
from clubjapon_ops.reporting.html import NOT_REPORTED, paris_buckets, render_html
from clubjapon_ops.reporting.text import render_text
from clubjapon_ops.store import Store
from clubjapon_ops.store import deliveries as ledger
from clubjapon_ops.store.contacts import add_suppression
from clubjapon_ops.store.events import process_pending, store_events
from clubjapon_ops.store.schema import deliveries, events
from clubjapon_ops.store.types import utcnow
from tests.delivery.conftest import SLUG, make_settings, write_contacts

EMAILS = [f"reader{i}@example.com" for i in range(6)]  # languages fr, en, ja in turn


@pytest.fixture
def sent(home: Path, send_store: Store) -> Store:
    """Five messages handed over across two hours, one refused, and what providers said."""
    write_contacts(home / "contacts.csv", EMAILS)
    jobs.crm_sync(make_settings(home), send_store)
    hour = datetime(2025, 11, 5, 9, tzinfo=UTC)
    with send_store.transaction() as conn:
        ledger.plan(conn, SLUG)
        for i, email in enumerate(EMAILS[:5]):
            conn.execute(update(deliveries).where(deliveries.c.email == email).values(
                state="sent", provider_message_id=f"<m{i}@relay>",
                sent_at=hour.replace(hour=9 + i // 3, minute=i)))
        conn.execute(update(deliveries).where(deliveries.c.email == EMAILS[5]).values(
            state="failed", last_error="Brevo HTTP 400: invalid email"))
        raw = [("delivered", 0), ("delivered", 1), ("delivered", 2), ("delivered", 3),
               ("opened", 0), ("opened", 0), ("opened", 1), ("click", 1),
               ("hard_bounce", 4), ("spam", 3)]
        batch = [parse_event({"event": kind, "email": EMAILS[i], "message-id": f"<m{i}@relay>",
                              "ts_event": 1_762_333_200 + n,
                              **({"reason": "550 user unknown"} if kind == "hard_bounce" else {})},
                             utcnow()) for n, (kind, i) in enumerate(raw)]
        store_events(conn, batch, lambda e, a: "<none>")
        process_pending(conn, 3)
        add_suppression(conn, EMAILS[2], f"unsubscribe link, edition {SLUG}", "unsubscribe")
    return send_store


def test_figures(sent: Store) -> None:
    report = build_report(sent, SLUG)
    assert report.by_state == {"sent": 5, "failed": 1}
    assert report.by_language == {"fr": {"sent": 2}, "en": {"sent": 2},
                                  "ja": {"sent": 1, "failed": 1}}
    assert report.events["open"] == (3, 2) and report.people("click") == 1
    assert report.people("delivered") == 4
    assert report.failures == [("complaint", "no reason given", 1),
                               ("hard_bounce", "550 user unknown", 1)]
    assert report.unsubscribed == 1
    assert report.suppressed == {"bounce": 1, "complaint": 1, "unsubscribe": 1}
    assert [n for _, n in report.sent_per_hour] == [3, 2]


def test_terminal_table(sent: Store) -> None:
    text = render_text(build_report(sent, SLUG))
    assert "Edition 2025-11-04-lille: 6 recipient(s), 5 handed over" in text
    assert "opened" in text and "40.0 %" in text  # 2 of the 5 handed over
    assert "550 user unknown" in text
    assert "suppressed since, by source" in text and "complaint" in text
    empty = render_text(build_report(sent, "no-such-edition"))
    assert empty.endswith("nothing planned or sent yet\n")


def test_terminal_columns_line_up_with_japanese_reasons(sent: Store) -> None:
    report = build_report(sent, SLUG)
    report.failures = [("hard_bounce", "宛先不明のため配信できません", 2),
                       ("hard_bounce", "550 user unknown", 1)]
    lines = render_text(report).splitlines()
    table = lines[lines.index(next(x for x in lines if x.startswith("bounces and"))):]
    rows = [x for x in table if "hard_bounce" in x]
    # The type column starts at the same terminal column on both rows.
    assert len({display_width(x[:x.index("hard_bounce")]) for x in rows}) == 1


def test_html_page_is_self_contained_and_light(sent: Store) -> None:
    page = render_html(build_report(sent, SLUG))
    assert page.startswith("<!doctype html>") and "550 user unknown" in page
    assert page.count("<svg") == 4  # states, timeline, outcomes, reasons
    # Nothing to run and nothing to fetch: it opens offline and travels as one file.
    assert "<script" not in page
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", page)
    assert len(page.encode()) < 300_000
    # The hours of the timeline are Paris's: 09:00 and 10:00 UTC on 5 November are 10 and 11.
    assert "05/11 10:00" in page and "05/11 11:00" in page and "09:00" not in page


def test_html_says_not_reported_where_the_transport_reports_nothing(
    sent: Store, home: Path
) -> None:
    with_events = render_html(build_report(sent, SLUG))
    assert NOT_REPORTED not in with_events and ">opened<b>2</b>" in with_events
    with sent.transaction() as conn:
        conn.execute(delete(events))
    without = render_html(build_report(sent, SLUG))
    for label in ("delivered", "opened", "clicked"):
        assert f">{label}<b>{NOT_REPORTED}</b>" in without
    assert ">opened<b>0</b>" not in without


def test_timeline_buckets_in_paris_time() -> None:
    utc = UTC
    # The night the clocks went back (26 October 2025): 00:00 and 01:00 UTC are 02:00 and
    # 02:00 again in Paris, both shown, in order.
    labels, (counts,) = paris_buckets([(datetime(2025, 10, 26, 0, tzinfo=utc), 1),
                                       (datetime(2025, 10, 26, 3, tzinfo=utc), 4)])
    assert labels == ["26/10 02:00", "26/10 02:00", "26/10 03:00", "26/10 04:00"]
    assert counts == [1, 0, 0, 4]
    # Naive times from SQLite are UTC; gaps are filled; past MAX_HOURS, a bar per day.
    labels, (a, b) = paris_buckets([(datetime(2025, 11, 4, 17), 2)],
                                   [(datetime(2025, 11, 9, 8), 3)])
    assert labels == ["04/11", "05/11", "06/11", "07/11", "08/11", "09/11"]
    assert a == [2, 0, 0, 0, 0, 0] and b == [0, 0, 0, 0, 0, 3]
    assert paris_buckets([]) == ([], [[]])


def test_cli_and_nightly_job_write_the_page(sent: Store, home: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLUBJAPON_", "BREVO_"))}
    env.update(CLUBJAPON_HOME=str(home), CLUBJAPON_SECRET="x" * 32)
    out = home / "report.html"
    result = subprocess.run([sys.executable, "-m", "clubjapon_ops", "report", SLUG,
                             "--html", str(out)], capture_output=True, text=True, env=env,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert "5 handed over" in result.stdout and 10_000 < out.stat().st_size < 300_000
    # The sent_at values are in 2025: a 7-day window has nothing, a wide one has the edition.
    assert campaign_reports(make_settings(home), sent, days=7).files == []
    written = campaign_reports(make_settings(home), sent, days=100_000).files
    assert written == [str(home / "var" / "reports" / f"{SLUG}.html")]


def test_the_nightly_job_builds_no_path_from_a_bad_ledger_name(sent: Store, home: Path) -> None:
    # Ledger rows written before edition names were checked (send '../x' was accepted).
    with sent.transaction() as conn:
        conn.execute(update(deliveries).where(deliveries.c.email == EMAILS[0])
                     .values(edition="../escaped"))
    written = campaign_reports(make_settings(home), sent, days=100_000).files
    assert written == [str(home / "var" / "reports" / f"{SLUG}.html")]
    assert not (home / "var" / "escaped.html").exists()
