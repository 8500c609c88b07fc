"""A bar's orders for many models at once (worker/orderflow.py), on the in-memory broker."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from worker_support import Model

from cappuccino_daemon.broker.memory import MemoryBroker
from cappuccino_daemon.clock import FakeClock
from cappuccino_daemon.journal.store import Journal
from cappuccino_daemon.states import IntentStatus
from cappuccino_daemon.worker.account import load_account
from cappuccino_daemon.worker.executor import Executor, OrderLine
from cappuccino_daemon.worker.orderflow import Job, OrderFlow, execute_all
from cappuccino_daemon.worker.tournament import merge_reports

BAR = datetime(2024, 2, 29, 23, tzinfo=UTC)
AFTER = BAR + timedelta(hours=1) - timedelta(seconds=1)
TICKERS = ("BTC", "ETH", "LTC")
PRICES = [60000.0, 3000.0, 80.0]
ETH, LTC = 1, 2


def _executor(
    tmp_path: Path, name: str, model: Model, broker: MemoryBroker, clock: FakeClock, held: list[float]
) -> Executor:
    journal = Journal(tmp_path / f"{name}.sqlite")
    journal.save_account(1000.0, held, [0.0] * 3, "initial")
    return Executor(
        broker, journal, model_id=name, tickers=TICKERS, profile=model.spec.profile, clock=clock, poll_s=1.0
    )


def _job(executor: Executor, *lines: OrderLine) -> Job:
    return Job(executor, BAR, list(lines), PRICES, orders_after=AFTER)


def test_every_models_sells_go_out_before_any_buy_and_fills_are_read_in_one_list(
    tmp_path: Path, tiny_model: Model
) -> None:
    broker = MemoryBroker(
        start=BAR + timedelta(hours=1, seconds=6),
    )
    broker.set_position("ETH", Decimal("0.5"))
    broker.set_position("LTC", Decimal("4"))
    clock = FakeClock(BAR)
    models = [
        _executor(tmp_path, "a", tiny_model, broker, clock, [0.0, 0.5, 0.0]),
        _executor(tmp_path, "b", tiny_model, broker, clock, [0.0, 0.0, 4.0]),
        _executor(tmp_path, "c", tiny_model, broker, clock, [0.0, 0.0, 0.0]),
    ]
    jobs = [
        _job(models[0], OrderLine(ETH, "sell", 0.5, "sell"), OrderLine(LTC, "buy", 1.0, "buy")),
        _job(models[1], OrderLine(LTC, "sell", 4.0, "sell"), OrderLine(ETH, "buy", 0.1, "buy")),
        _job(models[2], OrderLine(ETH, "buy", 0.05, "buy")),
    ]
    execute_all(jobs)

    submits = [c for c in broker.calls if c.startswith("submit")]
    assert len(submits) == 5
    sides = [c for c in broker.calls if c in ("get_positions", "get_account") or c.startswith("submit")]
    # one positions read, both sells, one account read, then the three buys
    assert sides[0] == "get_positions" and sides[3] == "get_account" and len(sides) == 7
    assert broker.calls.count("list_orders_since") >= 2  # each wait polls with one list read...
    assert "get_order_by_client_id" not in broker.calls  # ...and never order by order
    for job in jobs:
        assert job.report.unresolved == 0 and not job.report.stopped
        assert job.report.filled == len(job.lines)
    total = merge_reports([j.report for j in jobs])
    assert total is not None and total.submitted == 5 and total.filled == 5
    assert total.last_submit_mono == max(j.report.last_submit_mono or 0.0 for j in jobs)


def test_two_models_selling_one_coin_never_sell_more_than_the_broker_holds(
    tmp_path: Path, tiny_model: Model
) -> None:
    """One positions read serves every model: each sell draws it down, so the second model's sell is
    capped at what the first left (the books' sum is above the broker's by the coin fee)."""
    broker = MemoryBroker(start=BAR + timedelta(hours=1, seconds=6))
    broker.set_position("ETH", Decimal("0.9"))
    clock = FakeClock(BAR)
    a = _executor(tmp_path, "a", tiny_model, broker, clock, [0.0, 0.6, 0.0])
    b = _executor(tmp_path, "b", tiny_model, broker, clock, [0.0, 0.4, 0.0])
    jobs = [_job(a, OrderLine(ETH, "sell", 0.6, "sell")), _job(b, OrderLine(ETH, "sell", 0.4, "sell"))]
    execute_all(jobs)
    (sold_a,), (sold_b,) = a.journal.intents(BAR), b.journal.intents(BAR)
    assert sold_a.status == sold_b.status == IntentStatus.FILLED
    assert sold_a.qty == Decimal("0.6") and sold_b.qty == Decimal("0.3")
    assert broker.get_positions().get("ETH") is None  # everything sold, nothing refused


def test_the_bars_buys_share_the_accounts_cash(tmp_path: Path, tiny_model: Model) -> None:
    """Each model has 1000 USD of virtual cash but the account only 1200: the second buy is sized to
    what the first left, not refused by the broker."""
    broker = MemoryBroker(start=BAR + timedelta(hours=1, seconds=6), cash=Decimal("1200"))
    clock = FakeClock(BAR)
    a = _executor(tmp_path, "a", tiny_model, broker, clock, [0.0, 0.0, 0.0])
    b = _executor(tmp_path, "b", tiny_model, broker, clock, [0.0, 0.0, 0.0])
    jobs = [_job(a, OrderLine(ETH, "buy", 0.3, "buy")), _job(b, OrderLine(ETH, "buy", 0.3, "buy"))]
    execute_all(jobs)
    (buy_a,), (buy_b,) = a.journal.intents(BAR), b.journal.intents(BAR)
    assert buy_a.status == buy_b.status == IntentStatus.FILLED
    assert buy_a.qty > Decimal("0.25")  # what a asked for, less the sizing buffer
    assert Decimal("0") < buy_b.qty < Decimal("0.11")  # what a left of the 1200 USD, at 3000 USD an ETH
    assert (buy_a.qty + buy_b.qty) * Decimal("3000") <= Decimal("1200")
    assert broker.get_account().cash >= 0
    assert load_account(b.journal, 1000.0, 3).cash > 600  # b's books kept the cash it could not spend


def test_a_model_whose_sells_do_not_end_skips_its_buys_and_the_others_buy_on(
    tmp_path: Path, tiny_model: Model
) -> None:
    broker = MemoryBroker(start=BAR + timedelta(hours=1, seconds=6))
    broker.set_position("ETH", Decimal("0.5"))
    clock = FakeClock(BAR)
    a = _executor(tmp_path, "a", tiny_model, broker, clock, [0.0, 0.5, 0.0])
    b = _executor(tmp_path, "b", tiny_model, broker, clock, [0.0, 0.0, 0.0])
    broker.inject("submit_market_order", "unavailable", times=1)  # a's sell: ambiguous...
    broker.inject("get_order_by_client_id", "unavailable", times=1000)  # ...and never resolved
    jobs = [
        _job(a, OrderLine(ETH, "sell", 0.5, "sell"), OrderLine(LTC, "buy", 1.0, "buy")),
        _job(b, OrderLine(LTC, "buy", 1.0, "buy"), OrderLine(ETH, "buy", 0.01, "buy")),
    ]
    execute_all(jobs)
    assert jobs[0].report.unresolved == 1
    assert [i.side for i in a.journal.intents(BAR)] == ["sell"]  # no buy planned past an open sell
    assert [i.status for i in b.journal.intents(BAR)] == [IntentStatus.FILLED] * 2  # settled by list


def test_many_models_send_from_a_pool_and_each_journal_keeps_its_own_orders(
    tmp_path: Path, tiny_model: Model
) -> None:
    """Six models, four senders: each model's orders go out in turn from a pool thread, every order is
    in its own model's journal, booked once, and no buy leaves before every sell has ended."""
    threads: list[str] = []

    class Recording(MemoryBroker):
        def submit_market_order(self, *args: Any, **kwargs: Any) -> Any:
            threads.append(threading.current_thread().name)
            return super().submit_market_order(*args, **kwargs)

    broker = Recording(start=BAR + timedelta(hours=1, seconds=6))
    broker.set_position("ETH", Decimal("3"))
    clock = FakeClock(BAR)
    models = [_executor(tmp_path, f"m{i}", tiny_model, broker, clock, [0.0, 0.5, 0.0]) for i in range(6)]
    jobs = [_job(m, OrderLine(ETH, "sell", 0.5, "sell"), OrderLine(LTC, "buy", 1.0, "buy")) for m in models]
    with OrderFlow(concurrency=4) as flow:
        for job in jobs:
            flow.add(job)
        flow.finish()
    assert len(threads) == 12 and all(name.startswith("orders") for name in threads)
    submits = [c for c in broker.calls if c.startswith("submit")]
    first_buy_read = broker.calls.index("get_account")
    assert broker.calls[:first_buy_read].count("submit_market_order") == 6  # all six sells, then buys
    assert len(submits) == 12
    for model, job in zip(models, jobs, strict=True):
        intents = model.journal.intents(BAR)
        assert [(i.side, i.status) for i in intents] == [("sell", "filled"), ("buy", "filled")]
        assert all(i.applied and i.client_order_id.startswith("cp-") for i in intents)
        assert len(model.journal.fills()) == 2 and job.report.submitted == 2
    assert broker.get_positions().get("ETH") is None


def test_the_start_up_heap_is_frozen_out_of_full_collections() -> None:
    """A fresh interpreter: what exists when the loop is built leaves the collector's generations
    (a full collection then skips the models and libraries: bench/tournament.py)."""
    code = (
        "import gc, json; from cappuccino_daemon.worker.build import freeze_startup_heap; "
        "before = gc.get_freeze_count(); freeze_startup_heap(); "
        "print(json.dumps([before, gc.get_freeze_count(), sum(gc.get_count())]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    before, frozen, pending = json.loads(out.stdout)
    assert before == 0 and frozen > 10_000 and pending < 100
