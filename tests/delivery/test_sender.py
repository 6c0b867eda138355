from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
from sqlalchemy import select

from clubjapon_ops import jobs
from clubjapon_ops.delivery.sender import CampaignSender
from clubjapon_ops.delivery.transports import Outgoing, Result, Status
from clubjapon_ops.errors import StopRun
from clubjapon_ops.store import Store
from clubjapon_ops.store import deliveries as ledger
from clubjapon_ops.store.contacts import find_contact
from clubjapon_ops.store.runs import recent_runs
from clubjapon_ops.store.schema import deliveries, suppressions
from tests.delivery.conftest import SLUG, make_settings, write_contacts


def sync(home: Path, store: Store, n: int) -> None:
    write_contacts(home / "contacts.csv", [f"r{i}@example.com" for i in range(n)])
    jobs.crm_sync(make_settings(home), store)


class ScriptedTransport:
    """Answers from a script per address; everything else is sent."""

    name = "scripted"
    batch_size = 10
    idempotent = False
    concurrency = 3

    def __init__(self, script: dict[str, Status] | None = None,
                 default: Status = Status.SENT, per_message: bool = False) -> None:
        self.per_message = per_message
        self.script = script or {}
        self.default = default
        self.seen: list[str] = []
        self.keys: list[str | None] = []

    def send(self, batch: Sequence[Outgoing], idempotency_key: str | None = None,
             then: Outgoing | None = None) -> list[Result]:
        self.keys.append(idempotency_key)
        out = []
        for item in batch:
            self.seen.append(item.envelope_to)
            status = self.script.get(item.envelope_to, self.default)
            suppress = "550 5.1.1 no such user" if status is Status.REJECTED else None
            out.append(Result(item.id, status, provider_id=f"id-{item.id}",
                              error=None if status is Status.SENT else f"{status} here",
                              suppress=suppress))
        return out

    def close(self) -> None:
        pass


def sender(home: Path, store: Store, transport: ScriptedTransport, **kw: object) -> CampaignSender:
    newsletter = jobs.newsletter_for_sending(make_settings(home), SLUG)
    return CampaignSender(store, newsletter, transport, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("per_message", [False, True], ids=["batches", "lanes"])
def test_outcomes_land_in_the_ledger_and_bad_addresses_are_suppressed(
    home: Path, send_store: Store, per_message: bool
) -> None:
    sync(home, send_store, 25)
    transport = ScriptedTransport({"r3@example.com": Status.REJECTED,
                                   "r4@example.com": Status.RETRY,
                                   "r5@example.com": Status.UNKNOWN,
                                   "r6@example.com": Status.QUEUED}, per_message=per_message)
    s = sender(home, send_store, transport)
    report = s.run(s.prepare())
    assert report.planned == 25
    assert report.outcomes == {"sent": 22, "failed": 1, "retry": 1, "unknown": 1}
    assert report.status == "partial"
    assert len(transport.seen) == 25 and len(set(transport.seen)) == 25
    again = sender(home, send_store, ScriptedTransport())
    rerun = again.run(again.prepare())
    # Nothing is due: the retry row waits for its time, the unknown row for the operator.
    assert rerun.outcomes == {} and rerun.ledger == {"sent": 22, "failed": 1, "retry": 1,
                                                     "unknown": 1}
    with send_store.transaction() as conn:
        assert find_contact(conn, "r3@example.com") is not None
        suppressed = conn.execute(select(suppressions.c.email, suppressions.c.source)).all()
    assert suppressed == [("r3@example.com", "bounce")]


def test_error_budget_pauses_the_send_with_the_ledger_consistent(
    home: Path, send_store: Store
) -> None:
    sync(home, send_store, 40)
    s = sender(home, send_store, ScriptedTransport(default=Status.RETRY), error_budget=5)
    report = s.run(s.prepare())
    assert report.paused is not None and "5 failures in a row" in report.paused
    assert report.status == "paused"
    assert report.ledger == {"retry": 10, "pending": 30}  # one batch of 10, then the pause


@pytest.mark.parametrize("per_message", [False, True], ids=["batches", "lanes"])
def test_limit_and_stop(home: Path, send_store: Store, per_message: bool) -> None:
    sync(home, send_store, 30)
    s = sender(home, send_store, ScriptedTransport(per_message=per_message))
    assert s.run(s.prepare(), limit=12).ledger == {"sent": 12, "pending": 18}
    s2 = sender(home, send_store, ScriptedTransport(per_message=per_message))
    s2.stop.set()
    report = s2.run(s2.prepare())
    assert report.interrupted and report.ledger == {"sent": 12, "pending": 18}


def test_idempotent_transports_get_a_key_recorded_before_sending(
    home: Path, send_store: Store
) -> None:
    sync(home, send_store, 12)
    transport = ScriptedTransport()
    transport.idempotent = True
    s = sender(home, send_store, transport)
    s.run(s.prepare())
    assert len(transport.keys) == 2 and all(transport.keys) and len(set(transport.keys)) == 2


def test_send_campaign_to_the_outbox_records_the_run(home: Path, send_store: Store) -> None:
    sync(home, send_store, 9)
    settings = make_settings(home)
    report = jobs.send_campaign(settings, send_store, SLUG)
    files = sorted(p.name.split("-", 1)[1] for p in (settings.outbox_dir / SLUG).iterdir())
    assert files == sorted(f"r{i}@example.com.eml" for i in range(9))
    assert report.status == "success"
    with send_store.transaction() as conn:
        run = recent_runs(conn)[0]
    assert run["job"] == "send_campaign" and run["counts"]["sent"] == 9


def test_lint_errors_block_a_send_unless_forced(home: Path, send_store: Store) -> None:
    sync(home, send_store, 3)
    template = home / "templates/newsletter/email.html.j2"
    template.write_text(template.read_text().replace("<body", '<img src="https://x/y.png"><body'))
    settings = make_settings(home)
    with pytest.raises(StopRun, match="lint found 3 error"):
        jobs.send_campaign(settings, send_store, SLUG)
    report = jobs.send_campaign(settings, send_store, SLUG,
                                options=jobs.SendOptions(force=True))
    assert report.outcomes["sent"] == 3


def test_a_message_that_cannot_be_made_leaves_its_row_unsent_not_unknown(
    home: Path, send_store: Store
) -> None:
    sync(home, send_store, 12)
    transport = ScriptedTransport(per_message=True)
    s = sender(home, send_store, transport)
    made = s._outgoing

    def outgoing(row: ledger.Claimed) -> Outgoing:
        if row.contact.email == "r7@example.com":
            raise ValueError("a template error for this reader")
        return made(row)

    s._outgoing = outgoing  # type: ignore[method-assign]
    with pytest.raises(ValueError, match="template error"):
        s.run(s.prepare())
    with send_store.transaction() as conn:
        rows = dict(conn.execute(select(deliveries.c.email, deliveries.c.state)).all())
    # Never handed over, so never in doubt: back in the queue for the next run.
    assert rows["r7@example.com"] == "pending"
    assert "r7@example.com" not in transport.seen
    assert "unknown" not in rows.values() and "sending" not in rows.values()
    assert {rows[e] for e in transport.seen} == {"sent"}
