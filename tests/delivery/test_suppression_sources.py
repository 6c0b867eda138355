"""Every source of a suppression is kept, and lifted on its own (issue 26, items 3 and 14).

Through the real CLI (subprocesses) and the public app, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import select

from clubjapon_ops.delivery.tokens import TokenSigner
from clubjapon_ops.store import Store
from clubjapon_ops.store.contacts import add_suppression
from clubjapon_ops.store.schema import deliveries, suppression_removals, suppressions
from clubjapon_ops.web import create_app
from tests.delivery.conftest import POSTAL_ADDRESS, SECRET, SLUG, make_settings

READERS = ["yui@example.com", "jean@example.com", "kenji@example.com", "aiko@example.com"]


def cli_env(home: Path) -> dict[str, str]:
    """The environment of a `clubjapon-ops` subprocess on this project (and its database)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLUBJAPON_", "SMTP_"))}
    env.update(CLUBJAPON_HOME=str(home), CLUBJAPON_CSV_PATH=str(home / "contacts.csv"),
               CLUBJAPON_SECRET=SECRET, CLUBJAPON_POSTAL_ADDRESS=POSTAL_ADDRESS)
    return env


def cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "clubjapon_ops", *args], env=cli_env(home),
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def write_crm(home: Path, opted_out: set[str]) -> None:
    """The CRM's export: every reader, those of ``opted_out`` marked so."""
    lines = ["email;first_name;language;opted out"]
    lines += [f"{e};Prénom;fr;{'yes' if e in opted_out else 'no'}" for e in READERS]
    (home / "contacts.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")


def sources(store: Store) -> dict[str, set[str]]:
    with store.transaction() as conn:
        found: dict[str, set[str]] = {}
        for email, source in conn.execute(select(suppressions.c.email, suppressions.c.source)):
            found.setdefault(email, set()).add(source)
        return found


def one_click(home: Path, store: Store, email: str) -> None:
    web = create_app(make_settings(home), lambda: store).test_client()
    answer = web.post(f"/unsubscribe/{TokenSigner(SECRET).make_legacy(SLUG, email, 'fr')}",
                      data="List-Unsubscribe=One-Click",
                      content_type="application/x-www-form-urlencoded")
    assert answer.status_code == 200


def test_a_crm_opt_in_lifts_only_the_crm_suppression(home: Path, send_store: Store) -> None:
    yui, jean, kenji, aiko = READERS
    # Three readers opt out in the CRM; each is also suppressed on another's word.
    write_crm(home, {yui, jean, kenji})
    cli(home, "sync")
    imported = home / "old-unsubscribes.csv"
    imported.write_text(f"email,reason\n{yui},left in 2024\n", encoding="utf-8")
    result = cli(home, "suppressions", "import", str(imported))
    # Before: "0 added, 1 known already", and nothing recorded the import's word.
    assert "1 added, 0 known already" in result.stdout
    one_click(home, send_store, jean)
    with send_store.transaction() as conn:
        add_suppression(conn, kenji, "spam report from outlook.com", "complaint")
    # The CRM opts them all back in: the next sync lifts the 'crm' suppressions, no other.
    write_crm(home, set())
    cli(home, "sync")
    assert sources(send_store) == {yui: {"import"}, jean: {"unsubscribe"},
                                   kenji: {"complaint"}}
    cli(home, "send", SLUG, "--yes")
    with send_store.transaction() as conn:
        mailed = set(conn.execute(select(deliveries.c.email).where(
            deliveries.c.edition == SLUG, deliveries.c.state == "sent")).scalars())
    assert mailed == {aiko}


# `suppressions remove` stopped right before its DELETE, until the test says go: the
# interleaving the review found by chance (a one-click between lift()'s SELECT and DELETE),
# made every time.
PAUSED_REMOVE = """
import pathlib, sys, time
from sqlalchemy import event
from sqlalchemy.engine import Engine
ready, go = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])

@event.listens_for(Engine, "before_cursor_execute")
def pause(conn, cursor, statement, parameters, context, executemany):
    if statement.lstrip().upper().startswith("DELETE FROM SUPPRESSIONS") and not ready.exists():
        ready.touch()
        deadline = time.monotonic() + 120
        while not go.exists() and time.monotonic() < deadline:
            time.sleep(0.02)

from clubjapon_ops.cli import main
sys.argv = ["clubjapon-ops", *sys.argv[3:]]
main()
"""


def wait_for(path: Path, process: subprocess.Popen[str]) -> None:
    """Until the paused process has made ``path`` (a handshake, not a race)."""
    deadline = time.monotonic() + 180
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the remove never reached its DELETE"
        time.sleep(0.02)


def test_remove_racing_a_one_click_keeps_the_fresh_unsubscribe(
    home: Path, send_store: Store
) -> None:
    yui = READERS[0]
    write_crm(home, set())
    cli(home, "sync")
    with send_store.transaction() as conn:
        add_suppression(conn, yui, "550 5.1.1 no such user", "bounce")
    ready, go = home / "ready", home / "go"
    remove = subprocess.Popen(
        [sys.executable, "-c", PAUSED_REMOVE, str(ready), str(go), "suppressions", "remove",
         yui, "--reason", "mailbox fixed"],
        env=cli_env(home), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(ready, remove)
        # The remove has read the bounce; the reader now unsubscribes (answered 200).
        one_click(home, send_store, yui)
        go.touch()
        out, err = remove.communicate(timeout=180)
    finally:
        if remove.poll() is None:
            remove.kill()
    assert remove.returncode == 0, out + err
    assert f"{yui}: removed bounce " in out
    # Before: the DELETE took every row of the address, the fresh unsubscribe with it.
    assert sources(send_store) == {yui: {"unsubscribe"}}
    with send_store.transaction() as conn:
        recorded = conn.execute(select(suppression_removals.c.sources)).scalars().all()
    assert recorded == ["bounce"]
