"""CRM sync end to end: the fake HubSpot and Brevo on 127.0.0.1, a real SQLite file, the CLI.

Each fake runs in a thread started by a fixture; syncs run in-process through the job, or as
``python -m clubjapon_ops sync`` subprocesses, one of which is killed with SIGKILL mid-way.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clubjapon_ops import jobs
from clubjapon_ops.crm import make_source
from clubjapon_ops.crm.brevo import BrevoSource
from clubjapon_ops.crm.hubspot import HubSpotSource
from clubjapon_ops.http.client import RetryPolicy
from clubjapon_ops.http.pacing import Pacer
from clubjapon_ops.settings import Settings, load_settings
from clubjapon_ops.store import Store, open_store
from tests.fakes.brevo_crm import API_KEY, FakeBrevo
from tests.fakes.hubspot_crm import LIST, SEARCH, TOKEN, FakeHubSpot, Limits
from tests.fakes.server import PASS, FakeServer, Reply, Request, serving

pytestmark = pytest.mark.e2e

QUICK = RetryPolicy(attempts=8, total_s=30, initial_wait_s=0.01, max_wait_s=0.05, jitter_s=0.01)
LANGUAGE = {"fr": "fr", "en": "en", "ja": "ja", "fr-FR": "fr", None: "fr"}


@pytest.fixture
def hubspot() -> Iterator[tuple[FakeHubSpot, FakeServer]]:
    """The fake HubSpot, served on 127.0.0.1."""
    api = FakeHubSpot()
    with serving(api) as server:
        yield api, server


@pytest.fixture
def brevo() -> Iterator[tuple[FakeBrevo, FakeServer]]:
    """The fake Brevo, served on 127.0.0.1."""
    api = FakeBrevo()
    with serving(api) as server:
        yield api, server


def environment(crm: str, url: str, **extra: str) -> dict[str, str]:
    env = {"CLUBJAPON_CRM": crm}
    if crm == "hubspot":
        env.update(HUBSPOT_TOKEN=TOKEN, HUBSPOT_BASE_URL=url)
    else:
        env.update(BREVO_API_KEY=API_KEY, BREVO_BASE_URL=url)
    env.update(extra)
    return env


def crm_settings(root: Path, crm: str, url: str, **extra: str) -> Settings:
    return load_settings(root, environ=environment(crm, url, **extra))


def quick(source: Any) -> Any:
    """The configured source, with test-sized backoff."""
    source.client.retry = QUICK
    return source


def stored(store: Store | Path) -> dict[str, dict[str, Any]]:
    """Every contact row by email, as plain values."""
    db = Path(store.engine.url.database or "") if isinstance(store, Store) else store
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        return {r["email"]: dict(r) for r in conn.execute("SELECT * FROM contacts")}


def suppressed(store: Store) -> set[tuple[str, str]]:
    with sqlite3.connect(store.engine.url.database or "") as conn:
        return set(conn.execute("SELECT email, source FROM suppressions"))


def assert_matches_hubspot(api: FakeHubSpot, rows: dict[str, dict[str, Any]]) -> None:
    """Contact by contact: every live HubSpot contact stored as it is, active."""
    live = api.live()
    for contact in live:
        props = contact.props
        row = rows[str(props["email"]).lower()]
        assert (row["crm_id"], row["first_name"], row["last_name"], row["company"]) == (
            str(contact.id), props.get("firstname"), props.get("lastname"), props.get("company"))
        assert row["language"] == LANGUAGE[props.get("hs_language")]
        assert bool(row["opted_out"]) == (props.get("hs_email_optout") == "true")
        assert row["archived_at"] is None, row["email"]
    assert len([r for r in rows.values() if r["archived_at"] is None]) == len(live)


def test_hubspot_full_then_incremental_then_full_with_archiving(
    hubspot: tuple[FakeHubSpot, FakeServer], root: Path
) -> None:
    api, server = hubspot
    api.generate(1234)
    settings = crm_settings(root, "hubspot", server.url)
    store = open_store(settings.database_url)
    first = jobs.crm_sync(settings, store, source=quick(make_source(settings)))
    assert first.full and (first.fetched, first.upserts.created) == (1234, 1234)
    assert_matches_hubspot(api, stored(store))
    assert ("member0@example.org", "crm") in suppressed(store)

    live = api.live()
    for contact in live[:30]:
        api.update(contact.id, lastname="Changé", hs_email_optout="false")
    new = [api.add(f"new{i}@example.org", firstname="Nouveau") for i in range(5)]
    gone = [c.id for c in live[100:103]]
    for ident in gone:
        api.archive(ident)
    second = jobs.crm_sync(settings, store, source=quick(make_source(settings)))
    assert not second.full
    assert (second.upserts.created, second.upserts.updated) == (5, 30)
    assert api.counts[f"GET {LIST}"] == 13  # the incremental run only searched
    assert ("member0@example.org", "crm") not in suppressed(store)  # opted back in
    rows = stored(store)
    assert all(rows[f"member{i}@example.org"]["archived_at"] is None for i in (100, 101, 102))
    assert {rows[f"new{i}@example.org"]["crm_id"] for i in range(5)} == {str(n) for n in new}

    third = jobs.crm_sync(settings, store, full=True, source=quick(make_source(settings)))
    assert third.full and third.archived == 3
    rows = stored(store)
    assert {e for e, r in rows.items() if r["archived_at"]} == {
        f"member{i}@example.org" for i in (100, 101, 102)}
    assert_matches_hubspot(api, rows)


def test_hubspot_opt_in_lifts_only_the_crm_suppression(
    hubspot: tuple[FakeHubSpot, FakeServer], root: Path
) -> None:
    api, server = hubspot
    a = api.add("a@example.org", hs_email_optout="true")
    b = api.add("b@example.org", hs_email_optout="true")
    settings = crm_settings(root, "hubspot", server.url)
    store = open_store(settings.database_url)
    jobs.crm_sync(settings, store, source=quick(make_source(settings)))
    with sqlite3.connect(store.engine.url.database or "") as conn:
        conn.execute("INSERT INTO suppressions (email, reason, source, created_at) VALUES "
                     "('b@example.org', 'unsubscribe link', 'unsubscribe', '2025-01-01')")
    api.update(a, hs_email_optout="false")
    api.update(b, hs_email_optout="false")
    jobs.crm_sync(settings, store, source=quick(make_source(settings)))
    assert suppressed(store) == {("b@example.org", "unsubscribe")}


def test_hubspot_search_window_cap_syncs_every_change_once(
    hubspot: tuple[FakeHubSpot, FakeServer], root: Path
) -> None:
    api, server = hubspot
    api.cap = 100
    api.generate(600)
    settings = crm_settings(root, "hubspot", server.url)
    store = open_store(settings.database_url)
    jobs.crm_sync(settings, store, source=quick(make_source(settings)))
    for contact in api.live()[:450]:
        api.update(contact.id, company="Nouvelle")
    source = quick(make_source(settings))
    source.search_limit = 20
    source.search_cap = 100
    source.search_pacer = Pacer(min_interval=0.01)  # the fake has no 5-a-second limit
    report = jobs.crm_sync(settings, store, source=source)
    assert (report.fetched, report.upserts.updated) == (450, 450)
    windows = [r for r in api.requests_to("POST", SEARCH) if "after" not in r.body]
    assert len(windows) >= 5
    assert api.counts["429"] == 0
    assert_matches_hubspot(api, stored(store))


def test_hubspot_survives_5xx_429_slow_and_broken_answers(
    hubspot: tuple[FakeHubSpot, FakeServer], root: Path
) -> None:
    api, server = hubspot
    api.generate(700)
    api.inject(Reply(503), path=LIST)
    api.inject(Reply(429, {"errorType": "RATE_LIMIT", "policyName": "TEN_SECONDLY_ROLLING"},
                     {"Retry-After": "0"}), path=LIST)
    api.inject(Reply(200, raw=b"<html>upstream error</html>"), path=LIST)
    api.inject(Reply(502), path=LIST)
    api.inject(PASS, path=LIST, delay=1.0)  # slower than the client's timeout
    settings = crm_settings(root, "hubspot", server.url, CLUBJAPON_HTTP_TIMEOUT="0.3")
    store = open_store(settings.database_url)
    source: HubSpotSource = quick(make_source(settings))
    report = jobs.crm_sync(settings, store, source=source)
    assert report.fetched == 700
    # Five injected faults, five retries (more only if this machine is slower than 0.3 s).
    assert source.client.stats.retries >= 5 and source.client.stats.rate_limited == 1
    assert_matches_hubspot(api, stored(store))


def test_hubspot_paces_itself_under_the_rate_limit(
    hubspot: tuple[FakeHubSpot, FakeServer], root: Path
) -> None:
    api, server = hubspot
    # 20 requests per 2 s: the pacer spaces them about 105 ms apart.
    api.limits = Limits(per_window=20, window_s=2.0)
    api.generate(3000)
    settings = crm_settings(root, "hubspot", server.url)
    store = open_store(settings.database_url)
    source: HubSpotSource = quick(make_source(settings))
    jobs.crm_sync(settings, store, source=source)
    # 30 calls against 20 per 2 s: unpaced, they would have met 429s. How long the pacer
    # slept is not asserted: on a loaded machine requests alone can take the spacing.
    assert api.counts["429"] == 0
    assert_matches_hubspot(api, stored(store))


def test_brevo_full_incremental_and_deletions(
    brevo: tuple[FakeBrevo, FakeServer], root: Path
) -> None:
    api, server = brevo
    ids = [api.add(f"membre{i}@example.fr", PRENOM=f"P{i}", NOM="Dupont", LANGUE="ja",
                   blacklisted=i % 10 == 0) for i in range(2500)]
    settings = crm_settings(root, "brevo", server.url,
                            BREVO_ATTRIBUTES="first_name=PRENOM,last_name=NOM,language=LANGUE")
    store = open_store(settings.database_url)
    source: BrevoSource = quick(make_source(settings))
    source.margin_ms = 0  # the changes below come milliseconds after this pass
    first = jobs.crm_sync(settings, store, source=source)
    assert (first.full, first.fetched) == (True, 2500)
    rows = stored(store)
    row = rows["membre7@example.fr"]
    assert (row["first_name"], row["last_name"], row["language"], row["crm_id"]) == (
        "P7", "Dupont", "ja", str(ids[7]))
    assert rows["membre10@example.fr"]["opted_out"] == 1

    for ident in ids[1500:1520]:
        api.update(ident, PRENOM="Changé")
    for ident in ids[2000:2005]:
        api.delete(ident)
    second = jobs.crm_sync(settings, store, source=quick(make_source(settings)))
    assert not second.full and (second.fetched, second.upserts.updated) == (20, 20)
    third = jobs.crm_sync(settings, store, full=True, source=quick(make_source(settings)))
    assert third.archived == 5
    rows = stored(store)
    assert rows["membre1500@example.fr"]["first_name"] == "Changé"
    assert {e for e, r in rows.items() if r["archived_at"]} == {
        f"membre{i}@example.fr" for i in range(2000, 2005)}


def test_brevo_sms_only_contacts_are_counted_apart_and_never_stored(
    brevo: tuple[FakeBrevo, FakeServer], root: Path
) -> None:
    api, server = brevo
    api.add("membre@example.fr", FIRSTNAME="Aya")
    api.add("33612345678@mailin-sms.com", SMS="+33612345678")
    settings = crm_settings(root, "brevo", server.url)
    store = open_store(settings.database_url)
    report = jobs.crm_sync(settings, store, source=quick(make_source(settings)))
    assert (report.fetched, report.skipped) == (2, 1)
    assert report.skip_reasons == {"SMS-only contact": 1}
    assert set(stored(store)) == {"membre@example.fr"}


# -- the CLI, killed and run again --------------------------------------------------------


def cli(home: Path, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    """Start ``python -m clubjapon_ops`` in a clean environment; logs go to a file."""
    full_env = {k: v for k, v in os.environ.items()
                if not k.startswith(("CLUBJAPON_", "HUBSPOT_", "BREVO_", "SMTP_", "SENDGRID_"))}
    full_env.update({"CLUBJAPON_HOME": str(home), **env})
    log = (home / "stderr.log").open("a")
    return subprocess.Popen([sys.executable, "-m", "clubjapon_ops", *args], env=full_env,
                            stdout=subprocess.PIPE, stderr=log, text=True)


def wait_until(condition: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():
                return
        except sqlite3.OperationalError:
            pass  # the database is still being created
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def sync_state(db: Path, source: str) -> tuple[str | None, str | None]:
    with sqlite3.connect(db) as conn:
        row = conn.execute("SELECT bookmark, full_sync_started_at FROM sync_state "
                           "WHERE source = ?", (source,)).fetchone()
    return (row[0], row[1]) if row else (None, None)


def slow(api: Any, path: str, seconds: float) -> None:
    def pause(request: Request) -> None:
        if request.path == path:
            time.sleep(seconds)

    api.before = pause


def test_hubspot_sync_killed_mid_way_resumes_and_loses_nothing(
    hubspot: tuple[FakeHubSpot, FakeServer], root: Path
) -> None:
    api, server = hubspot
    api.generate(3000)
    slow(api, LIST, 0.03)
    env = environment("hubspot", server.url)
    db = root / "var" / "clubjapon.sqlite3"
    proc = cli(root, env, "sync")
    # Once the first batch (1,000 contacts = 10 pages) is committed, kill -9.
    wait_until(lambda: db.exists() and len(stored(db)) >= 1000)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=10) == -signal.SIGKILL
    server.settle()  # a request the killed sync had sent may still be on its way

    bookmark, started = sync_state(db, "hubspot")
    assert bookmark is not None and started is not None  # a full pass under way
    cursor = json.loads(bookmark)["full"]["after"]
    committed = stored(db)
    # The bookmark stands exactly for the committed rows: everyone before the cursor.
    assert {int(r["crm_id"]) for r in committed.values()} == {
        c.id for c in api.live() if c.id < int(cursor)}
    assert len(committed) % 1000 == 0 and 1000 <= len(committed) < 3000

    before = api.counts[f"GET {LIST}"]
    again = cli(root, env, "sync")
    out, _ = again.communicate(timeout=60)
    assert again.returncode == 0, (root / "stderr.log").read_text()
    assert "Synced from hubspot (full)" in out
    resumed = api.requests_to("GET", LIST)[before]
    assert resumed.query["after"] == cursor  # picked up at the saved cursor
    assert api.counts[f"GET {LIST}"] - before == 30 - len(committed) // 100
    assert_matches_hubspot(api, stored(db))
    assert sync_state(db, "hubspot")[1] is None  # the full pass is complete
    with sqlite3.connect(db) as conn:
        runs = conn.execute("SELECT status FROM job_runs ORDER BY id").fetchall()
    # A killed run cannot record its end: the next run saw its process gone and said so.
    assert runs == [("abandoned",), ("success",)]


def test_brevo_incremental_sync_killed_mid_way_resumes_and_loses_nothing(
    brevo: tuple[FakeBrevo, FakeServer], root: Path
) -> None:
    api, server = brevo
    ids = [api.add(f"membre{i}@example.fr", FIRSTNAME=f"P{i}") for i in range(3000)]
    env = environment("brevo", server.url)
    db = root / "var" / "clubjapon.sqlite3"
    first = cli(root, env, "sync")
    assert first.wait(timeout=60) == 0, (root / "stderr.log").read_text()
    for ident in ids:
        api.update(ident, FIRSTNAME="Changé")
    slow(api, "/v3/contacts", 0.15)

    def changed() -> list[dict[str, Any]]:
        return [r for r in stored(db).values() if r["first_name"] == "Changé"]

    proc = cli(root, env, "sync")
    wait_until(lambda: len(changed()) >= 1000)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=10) == -signal.SIGKILL
    done = changed()
    assert 1000 <= len(done) < 3000
    bookmark, _ = sync_state(db, "brevo")
    # The pass's offset is exactly what was committed (contacts are in creation order).
    assert json.loads(bookmark or "")["pass"]["offset"] == len(done)
    assert {int(r["crm_id"]) for r in done} == set(ids[:len(done)])

    api.before = None
    again = cli(root, env, "sync")
    out, _ = again.communicate(timeout=60)
    assert again.returncode == 0, (root / "stderr.log").read_text()
    assert "Synced from brevo (incremental)" in out
    rows = stored(db)
    for ident, contact in zip(ids, (api.get(i) for i in ids), strict=True):
        row = rows[str(contact.email)]
        assert (row["crm_id"], row["first_name"]) == (str(ident), "Changé")


def test_cli_stops_cleanly_on_the_daily_limit_keeping_the_bookmark(
    hubspot: tuple[FakeHubSpot, FakeServer], root: Path
) -> None:
    api, server = hubspot
    api.generate(300)
    env = environment("hubspot", server.url)
    db = root / "var" / "clubjapon.sqlite3"
    assert cli(root, env, "sync").wait(timeout=60) == 0
    before = sync_state(db, "hubspot")[0]
    for contact in api.live()[:250]:
        api.update(contact.id, firstname="Changé")
    api.limits = Limits(daily=0)
    proc = cli(root, env, "--log-text", "-q", "sync")
    _, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1
    last = (root / "stderr.log").read_text().strip().splitlines()[-1]
    assert last.startswith("error: HubSpot's daily API limit is used up")
    assert sync_state(db, "hubspot")[0] == before
    assert not any(r["first_name"] == "Changé" for r in stored(db).values())
    assert api.counts[f"POST {SEARCH}"] == 1  # refused once, never retried


def test_cli_names_a_missing_token(root: Path) -> None:
    proc = cli(root, {"CLUBJAPON_CRM": "hubspot"}, "sync")
    proc.communicate(timeout=60)
    assert proc.returncode == 2
    last = (root / "stderr.log").read_text().strip().splitlines()[-1]
    assert "HUBSPOT_TOKEN is not set" in last


def test_cli_skips_and_counts_malformed_crm_records(
    hubspot: tuple[FakeHubSpot, FakeServer], root: Path
) -> None:
    api, server = hubspot
    api.add("ok@example.org", firstname="Yui")
    api.add(None, firstname="No Email")
    api.add("not-an-address", firstname="Bad")
    api.inject(Reply(200, {"results": [
        {"id": "1", "properties": {"email": "ok@example.org"}}, {"id": "2"}]}), path=LIST)
    proc = cli(root, environment("hubspot", server.url), "sync")
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, (root / "stderr.log").read_text()
    assert "2 fetched, 1 created" in out and "1 skipped" in out
    assert "skipped    1 × record has no properties" in out
    proc = cli(root, environment("hubspot", server.url), "sync", "--full")
    out, _ = proc.communicate(timeout=60)
    assert "3 fetched, 0 created, 1 updated, 0 unchanged" in out  # now with its name
    assert "skipped    1 × no email address" in out and "skipped    1 × invalid email" in out
    logs = [json.loads(line) for line in (root / "stderr.log").read_text().splitlines()]
    refs = {e["ref"] for e in logs if e["msg"] == "contact skipped"}
    assert refs == {"hubspot 2", "hubspot 1002", "hubspot 1003"}  # by CRM id, not content
