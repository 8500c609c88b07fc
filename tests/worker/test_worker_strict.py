"""The worker against Alpaca's strict behaviours, staged with the in-memory broker's knobs.

Partial fills cut at the fill deadline, positions lagging their fills, asset rules changing under the
worker, and a lost order the broker shows later. Time is a fake clock whose sleeps move the broker's
clock too, so delayed parts and lagging positions arrive while the worker waits, without a real sleep.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from worker_support import TICKERS, Model

from cappuccino_daemon.broker.memory import STRICT_RULES, MemoryBroker
from cappuccino_daemon.clock import FakeClock
from cappuccino_daemon.journal.store import Journal
from cappuccino_daemon.worker.account import load_account
from cappuccino_daemon.worker.books_check import LagPolicy
from cappuccino_daemon.worker.executor import Executor, OrderLine
from cappuccino_daemon.worker.ids import client_order_id
from cappuccino_daemon.worker.orderflow import execute_one
from cappuccino_daemon.worker.reconcile import ReconcileReport, reconcile

BAR = datetime(2024, 2, 29, 23, tzinfo=UTC)
PRICES = [60000.0, 3000.0, 80.0]
FEE = Decimal("0.0025")


class BrokerClock(FakeClock):
    """A fake clock that moves the fake broker's clock along with its own."""

    def __init__(self, broker: MemoryBroker) -> None:
        super().__init__(broker.start)
        self.broker = broker

    def advance(self, seconds: float) -> None:
        super().advance(seconds)
        self.broker.advance(seconds)


def make(tmp_path: Path, model: Model, broker: MemoryBroker, fill_timeout_s: float = 600.0) -> Executor:
    journal = Journal(tmp_path / "j.sqlite")
    journal.save_account(model.spec.profile.initial_capital, [0.0] * 3, [0.0] * 3, "initial")
    return Executor(
        broker,
        journal,
        model_id=model.spec.model_id,
        tickers=TICKERS,
        profile=model.spec.profile,
        clock=BrokerClock(broker),
        fill_timeout_s=fill_timeout_s,
        poll_s=5.0,
    )


def reconcile_now(executor: Executor, model: Model, bar: datetime) -> ReconcileReport:
    return reconcile(
        executor.broker,
        executor.journal,
        executor,
        model_id=model.spec.model_id,
        tickers=TICKERS,
        capital=model.spec.profile.initial_capital,
        current_bar=bar,
    )


def eth(executor: Executor, model: Model) -> float:
    return float(load_account(executor.journal, model.spec.profile.initial_capital, 3).holdings[1])


def test_fill_deadline_cancels_the_rest_books_what_filled_and_journals_why(
    tmp_path: Path, tiny_model: Model
) -> None:
    broker = MemoryBroker(start=BAR, partial_parts=3, fill_window_s=600.0)  # parts at 0, 300 and 600 s
    executor = make(tmp_path, tiny_model, broker, fill_timeout_s=100.0)
    report = execute_one(executor, BAR, [OrderLine(1, "buy", 0.06, "buy")], PRICES)
    coid = client_order_id(tiny_model.spec.model_id, BAR, "ETH", "buy")
    intent = executor.journal.get_intent(coid)
    assert intent is not None and intent.status == "canceled" and intent.applied
    assert Decimal(0) < intent.filled_qty < intent.qty and report.unresolved == 0
    assert [Decimal(f["qty"]) for f in executor.journal.fills()] == [intent.filled_qty]  # booked what filled
    (unfilled,) = executor.journal.events("order_unfilled")
    assert unfilled["client_order_id"] == coid and "fill_deadline" in unfilled["detail"]["reason"]
    assert Decimal(unfilled["detail"]["unfilled_qty"]) == intent.qty - intent.filled_qty
    snap = broker.get_order_by_client_id(coid)
    assert snap is not None and snap.status.is_final and snap.filled_qty == intent.filled_qty
    executor.clock.sleep(3600)  # nothing else fills after the cancel
    assert broker.get_order_by_client_id(coid).filled_qty == intent.filled_qty  # type: ignore[union-attr]
    # The next bar starts from the true books: the virtual holding is the broker's position.
    reconcile_now(executor, tiny_model, BAR + timedelta(hours=1))
    assert eth(executor, tiny_model) == pytest.approx(float(broker.get_positions()["ETH"].qty), rel=1e-6)


def _buy_filled(executor: Executor, model: Model) -> Decimal:
    execute_one(executor, BAR, [OrderLine(1, "buy", 0.05, "buy")], PRICES)
    intent = executor.journal.get_intent(client_order_id(model.spec.model_id, BAR, "ETH", "buy"))
    assert intent is not None and intent.status == "filled"
    return intent.filled_qty


def test_a_position_that_catches_up_within_the_wait_is_waited_for(tmp_path: Path, tiny_model: Model) -> None:
    broker = MemoryBroker(start=BAR, position_lag_s=4.0)
    executor = make(tmp_path, tiny_model, broker)
    qty = _buy_filled(executor, tiny_model)
    report = reconcile_now(executor, tiny_model, BAR + timedelta(hours=1))
    (lag,) = executor.journal.events("position_lag")
    assert lag["detail"]["decision"] == "waited" and 0 < lag["detail"]["waited_s"] <= 10
    assert report.deferred == [] and eth(executor, tiny_model) == pytest.approx(float(qty * (1 - FEE)))


def test_a_lagging_position_defers_the_clamp_once_then_the_rule_runs(
    tmp_path: Path, tiny_model: Model
) -> None:
    broker = MemoryBroker(start=BAR, position_lag_s=3600.0)
    executor = make(tmp_path, tiny_model, broker)
    executor.lag_policy = LagPolicy(wait_s=10.0, step_s=1.0)
    qty = _buy_filled(executor, tiny_model)
    first = reconcile_now(executor, tiny_model, BAR + timedelta(hours=1))
    assert first.deferred == ["ETH"] and "ETH" not in first.clamped
    assert eth(executor, tiny_model) == pytest.approx(float(qty))  # the bought coins were not booked away
    (lag,) = executor.journal.events("position_lag")
    assert lag["detail"]["decision"] == "deferred" and lag["detail"]["waited_s"] == 10
    second = reconcile_now(
        executor, tiny_model, BAR + timedelta(hours=1)
    )  # still lagging: deferred once only
    assert "ETH" in second.clamped and eth(executor, tiny_model) == 0.0


def test_a_rule_422_reloads_the_asset_rules_and_they_reload_daily(tmp_path: Path, tiny_model: Model) -> None:
    broker = MemoryBroker(start=BAR)
    executor = make(tmp_path, tiny_model, broker)
    assert executor.assets()["ETH"].min_trade_increment == Decimal("0.000000001")
    broker.rules = dict(STRICT_RULES)  # Alpaca coarsened its steps while the worker ran
    coid = client_order_id(tiny_model.spec.model_id, BAR, "ETH", "buy")
    intent = executor.submit(
        executor.journal.add_intent(coid, BAR, "ETH", "buy", Decimal("0.0512345"), 3000.0)
    )
    assert intent.status == "rejected" and [e["kind"] for e in executor.journal.events("asset_rules_reload")]
    assert executor.rules.loads == 1
    assert executor.assets()["ETH"].min_trade_increment == Decimal("0.001") and executor.rules.loads == 2
    qty = executor.size_buy(BAR, OrderLine(1, "buy", 0.0512345, "buy"), 3000.0, 1000.0, 100000.0)
    assert qty == Decimal("0.051")  # rounded onto the new step before sending
    executor.assets()
    assert executor.rules.loads == 2  # fresh rules are reused ...
    executor.clock.advance(86400)
    executor.assets()
    assert executor.rules.loads == 3  # ... for a day at most


def test_a_lost_order_the_broker_shows_later_is_readopted(tmp_path: Path, tiny_model: Model) -> None:
    broker = MemoryBroker(start=BAR)
    executor = make(tmp_path, tiny_model, broker)
    journal = executor.journal
    coid = client_order_id(tiny_model.spec.model_id, BAR, "ETH", "buy")
    journal.add_intent(coid, BAR, "ETH", "buy", Decimal("0.05"), 3000.0)
    journal.mark_attempt(coid)
    journal.update_intent(coid, "lost", event="reconcile_lost")  # the broker did not know it then ...
    broker.submit_market_order("ETH", "buy", Decimal("0.05"), coid)  # ... it does now, filled
    report = reconcile_now(executor, tiny_model, BAR + timedelta(hours=1))
    intent = journal.get_intent(coid)
    assert intent is not None and intent.status == "filled" and intent.applied and coid in report.resolved
    assert [e["client_order_id"] for e in journal.events("reconcile_readopted")] == [coid]
    assert eth(executor, tiny_model) == pytest.approx(float(broker.get_positions()["ETH"].qty), rel=1e-6)
    assert broker.submits == [coid]  # adopted, never resent


def test_fee_audit_reports_virtual_against_booked_fees_once_per_day(
    tmp_path: Path, tiny_model: Model
) -> None:
    from cappuccino_daemon.ops.journal_view import read_journal
    from cappuccino_daemon.worker.fees_audit import FeeAuditor

    broker = MemoryBroker(start=BAR, fee_pct=Decimal("0.004"))  # the broker charges more than the books
    executor = make(tmp_path, tiny_model, broker)
    qty = _buy_filled(executor, tiny_model)
    auditor = FeeAuditor(broker, executor.journal, tiny_model.spec.profile, TICKERS)
    assert auditor.maybe_run(broker.now()) == []  # the day's CFEE is not posted yet
    executor.clock.advance(3600)  # past midnight: 2024-02-29's fee is posted, a new broker day
    (audit,) = auditor.maybe_run(broker.now())
    assert auditor.maybe_run(broker.now()) == []  # once per broker day
    (fill,) = [a for a in broker.list_activities() if a.kind == "FILL"]
    assert (audit.day.isoformat(), audit.symbol) == ("2024-02-29", "ETH") and fill.qty == qty
    assert audit.virtual_usd == pytest.approx(float(qty * fill.price) * 0.0025)
    assert audit.broker_usd == pytest.approx(float(qty * fill.price) * 0.004, rel=1e-6)
    assert audit.diff_usd == pytest.approx(float(qty * fill.price) * 0.0015, rel=1e-4)
    (event,) = executor.journal.events("fee_audit")
    assert event["detail"]["diff_usd"] == pytest.approx(audit.diff_usd, abs=1e-6)
    assert auditor.run() == []  # and a fee day is audited once, even when run again
    fees = read_journal(executor.journal.path).fees
    assert (
        fees is not None
        and fees["audited"] == 1
        and fees["diff_usd"] == pytest.approx(audit.diff_usd, abs=1e-5)
    )


def test_a_spent_request_budget_refuses_the_poll_and_the_next_minute_trades(
    tmp_path: Path, tiny_model: Model
) -> None:
    from cappuccino_daemon.worker.build import WorkerOptions, build_loop

    wall = [1_700_000_000.0]
    broker = MemoryBroker(start=BAR + timedelta(hours=1, seconds=10), rate_limit=20, wall=lambda: wall[0])
    opts = WorkerOptions(model_dir=tiny_model.dir, tickers=TICKERS, state_dir=tmp_path, max_clock_skew_s=None)
    loop = build_loop(opts, tiny_model.spec, tiny_model.policy, broker, clock=BrokerClock(broker))
    broker.spend_rate(20)  # another process with the same key used this minute up
    refused = loop.step()
    assert refused.kind == "refused" and "rate limited" in refused.message  # a 429 is not a crash
    assert broker.submits == [] and loop.cycle.journal.cycles() == []
    wall[0] += 60  # the next minute: a fresh budget
    assert loop.step().kind == "traded"
