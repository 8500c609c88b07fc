"""The executor and reconciliation against the in-memory broker, for faults the emulator cannot stage.

``MemoryBroker`` passes the same contract suite as the alpaca-py adapter (tests/broker), so what holds
here holds for the port. Time is a fake clock whose sleeps also move the broker's clock: delayed fills
arrive while the executor polls, and no test waits on the wall clock.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from worker_support import TICKERS, Model

from cappuccino_daemon.broker.memory import MemoryBroker
from cappuccino_daemon.clock import FakeClock
from cappuccino_daemon.journal.store import Journal
from cappuccino_daemon.worker.executor import Executor, OrderLine
from cappuccino_daemon.worker.ids import client_order_id
from cappuccino_daemon.worker.orderflow import execute_one
from cappuccino_daemon.worker.reconcile import reconcile

BAR = datetime(2024, 2, 29, 23, tzinfo=UTC)
PRICES = [60000.0, 3000.0, 80.0]


class BrokerClock(FakeClock):
    """A fake clock that moves the fake broker's clock along with its own."""

    def __init__(self, broker: MemoryBroker) -> None:
        super().__init__(broker.start)
        self.broker = broker

    def advance(self, seconds: float) -> None:
        super().advance(seconds)
        self.broker.advance(seconds)


def make(tmp_path: Path, model: Model, broker: MemoryBroker) -> tuple[Executor, Journal, BrokerClock]:
    journal = Journal(tmp_path / "j.sqlite")
    journal.save_account(model.spec.profile.initial_capital, [0.0] * 3, [0.0] * 3, "initial")
    clock = BrokerClock(broker)
    executor = Executor(
        broker,
        journal,
        model_id=model.spec.model_id,
        tickers=TICKERS,
        profile=model.spec.profile,
        clock=clock,
        fill_timeout_s=600.0,
        poll_s=5.0,
    )
    return executor, journal, clock


def test_rate_limited_submit_is_resolved_by_lookup_then_resent_once(
    tmp_path: Path, tiny_model: Model
) -> None:
    broker = MemoryBroker(start=BAR)
    executor, journal, _ = make(tmp_path, tiny_model, broker)
    broker.inject("submit_market_order", "rate_limited", retry_after_s=3.0)
    coid = client_order_id(tiny_model.spec.model_id, BAR, "ETH", "buy")
    result = executor.submit(journal.add_intent(coid, BAR, "ETH", "buy", Decimal("0.05"), 3000.0))
    assert result.status in ("submitted", "filled") and result.attempts == 2
    kinds = [e["kind"] for e in journal.events() if e["client_order_id"] == coid]
    assert kinds[:2] == ["submit_ambiguous", "lookup_absent"]
    assert broker.submits == [coid]  # the broker saw exactly one order


def test_ambiguous_submit_with_a_failing_lookup_never_sends_twice(tmp_path: Path, tiny_model: Model) -> None:
    """Accepted, answer lost, and the first lookups fail too: the intent waits; it is never resent blind."""
    broker = MemoryBroker(start=BAR, read_attempts=1)
    executor, journal, _ = make(tmp_path, tiny_model, broker)
    broker.inject("submit_market_order", "ambiguous")
    broker.inject("get_order_by_client_id", "unavailable", times=1)
    coid = client_order_id(tiny_model.spec.model_id, BAR, "BTC", "buy")
    first = executor.submit(journal.add_intent(coid, BAR, "BTC", "buy", Decimal("0.001"), 60000.0))
    assert first.status == "ambiguous" and broker.submits == [coid]
    assert executor.await_final([coid]) == []
    final = journal.get_intent(coid)
    assert final is not None and final.status == "filled" and final.applied and final.attempts == 1
    assert broker.submits == [coid]


def test_buys_wait_for_delayed_sell_fills(tmp_path: Path, tiny_model: Model) -> None:
    """Sells fill ten simulated minutes late; the buys are sent only after they are final."""
    broker = MemoryBroker(start=BAR, fill_delay_s=600.0)
    broker.set_position("ETH", Decimal("0.5"))
    executor, journal, clock = make(tmp_path, tiny_model, broker)
    journal.save_account(tiny_model.spec.profile.initial_capital, [0.0, 0.5, 0.0], [0.0] * 3, "seed")
    report = execute_one(
        executor, BAR, [OrderLine(1, "sell", 0.5, "sell"), OrderLine(2, "buy", 2.0, "buy")], PRICES
    )
    sell = journal.get_intent(client_order_id(tiny_model.spec.model_id, BAR, "ETH", "sell"))
    buy = journal.get_intent(client_order_id(tiny_model.spec.model_id, BAR, "LTC", "buy"))
    assert sell is not None and sell.status == "filled" and sell.applied
    assert buy is not None and buy.status == "filled" and report.unresolved == 0
    assert broker.submits == [sell.client_order_id, buy.client_order_id]
    assert sum(clock.sleeps) >= 600.0  # the executor polled through the fill delay (simulated time)


def test_reconcile_leaves_an_intent_open_while_the_broker_is_unavailable(
    tmp_path: Path, tiny_model: Model
) -> None:
    broker = MemoryBroker(start=BAR, read_attempts=1)
    executor, journal, _ = make(tmp_path, tiny_model, broker)
    coid = client_order_id(tiny_model.spec.model_id, BAR, "ETH", "buy")
    journal.add_intent(coid, BAR, "ETH", "buy", Decimal("0.05"), 3000.0)
    journal.mark_attempt(coid)
    broker.inject("get_order_by_client_id", "unavailable", times=1)
    later = BAR + timedelta(hours=1)  # the intent's bar is over: an absent order would be "lost"
    model_id = tiny_model.spec.model_id
    report = reconcile(
        broker, journal, executor, model_id=model_id, tickers=TICKERS, capital=1000.0, current_bar=later
    )
    intent = journal.get_intent(coid)
    assert intent is not None and intent.is_open and report.lost == []  # not judged on a failed read
    report = reconcile(
        broker, journal, executor, model_id=model_id, tickers=TICKERS, capital=1000.0, current_bar=later
    )
    assert report.lost == [coid]  # the broker answered: it never had the order


def test_a_429_on_submit_waits_for_the_reset_and_sends_exactly_once(
    tmp_path: Path, tiny_model: Model
) -> None:
    broker = MemoryBroker(start=BAR, rate_limit=5)
    executor, journal, clock = make(tmp_path, tiny_model, broker)
    broker.wall = lambda: clock.now().timestamp()  # the server's minute runs on the worker's clock
    broker.spend_rate(5)  # another process with the same key used this minute up
    before = clock.now()
    coid = client_order_id(tiny_model.spec.model_id, BAR, "ETH", "buy")
    result = executor.submit(journal.add_intent(coid, BAR, "ETH", "buy", Decimal("0.05"), 3000.0))
    assert result.status in ("submitted", "filled") and broker.rate_limited == 1
    assert (clock.now() - before).total_seconds() >= 59  # waited for the reset, not the poll interval
    assert broker.submits == [coid]  # never a duplicate
