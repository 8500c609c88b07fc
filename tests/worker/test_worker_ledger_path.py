"""The live money path: the executor sizes and books with the ledger, reconciliation clamps with it.

Real executor, journal and reconciliation against the in-memory broker (which takes its buy fee in the
coin, as Alpaca does), checked number for number against ``policy.ledger``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import numpy as np
from worker_support import TICKERS, Model

from cappuccino_daemon.broker.memory import MemoryBroker
from cappuccino_daemon.clock import FakeClock
from cappuccino_daemon.journal.store import Journal
from cappuccino_daemon.policy.ledger import book_fill, size_live_buy, size_live_sell
from cappuccino_daemon.worker.account import load_account
from cappuccino_daemon.worker.executor import Executor, OrderLine
from cappuccino_daemon.worker.orderflow import execute_one
from cappuccino_daemon.worker.reconcile import reconcile

BAR = datetime(2024, 2, 29, 23, tzinfo=UTC)
ETH = TICKERS.index("ETH")


def _setup(tmp_path: Path, model: Model) -> tuple[MemoryBroker, Executor, Journal]:
    broker = MemoryBroker(start=BAR)
    journal = Journal(tmp_path / "j.sqlite")
    journal.save_account(model.spec.profile.initial_capital, [0.0] * 3, [0.0] * 3, "initial")
    executor = Executor(
        broker,
        journal,
        model_id=model.spec.model_id,
        tickers=TICKERS,
        profile=model.spec.profile,
        clock=FakeClock(BAR),
        fill_timeout_s=60.0,
        poll_s=1.0,
    )
    return broker, executor, journal


def test_a_buy_is_sized_and_booked_by_the_ledger_then_clamped_to_the_broker(
    tmp_path: Path, tiny_model: Model
) -> None:
    profile = tiny_model.spec.profile
    broker, executor, journal = _setup(tmp_path, tiny_model)
    before = load_account(journal, profile.initial_capital, 3)
    price = broker.price("ETH")
    asset = broker.get_assets(["ETH"])["ETH"]
    expected = size_live_buy(
        5.0,
        price,
        before.cash,
        broker.get_account().cash,
        asset.min_trade_increment,
        asset.min_order_size,
        profile,
    )
    assert not expected.dropped and float(expected.qty) < 5.0  # capped by the $1000 virtual account

    report = execute_one(executor, BAR, [OrderLine(ETH, "buy", 5.0, "buy")], [0.0, price, 0.0])

    assert report.filled == 1 and report.dropped == 0
    (intent,) = journal.intents(BAR)
    assert intent.qty == expected.qty and intent.applied
    assert intent.filled_avg_price is not None
    booked = load_account(journal, profile.initial_capital, 3)
    want = book_fill(before, ETH, "buy", float(intent.filled_qty), intent.filled_avg_price, profile)
    assert booked.cash == want.cash and np.array_equal(booked.holdings, want.holdings)

    # The broker kept its fee in the coin: reconciliation lowers the virtual holding to its position.
    broker_qty = float(broker.get_positions()["ETH"].qty)
    assert broker_qty < float(booked.holdings[ETH])
    result = reconcile(
        broker,
        journal,
        executor,
        model_id=tiny_model.spec.model_id,
        tickers=TICKERS,
        capital=profile.initial_capital,
        current_bar=BAR,
    )
    assert "ETH" in result.clamped
    clamped = load_account(journal, profile.initial_capital, 3)
    assert clamped.holdings[ETH] == np.float32(broker_qty) and clamped.cash == booked.cash


def test_a_sell_is_sized_from_the_broker_position_and_booked_by_the_ledger(
    tmp_path: Path, tiny_model: Model
) -> None:
    profile = tiny_model.spec.profile
    broker, executor, journal = _setup(tmp_path, tiny_model)
    broker.set_position("ETH", Decimal("0.1"))
    journal.save_account(500.0, [0.0, 0.12, 0.0], [0.0, 3.0, 0.0], "test: holds more than the broker")
    before = load_account(journal, profile.initial_capital, 3)
    asset = broker.get_assets(["ETH"])["ETH"]
    expected = size_live_sell(0.12, Decimal("0.1"), asset.min_trade_increment, asset.min_order_size)
    assert expected.qty == Decimal("0.1")

    execute_one(executor, BAR, [OrderLine(ETH, "sell", 0.12, "sell")], [0.0, broker.price("ETH"), 0.0])

    (intent,) = journal.intents(BAR)
    assert intent.side == "sell" and intent.qty == expected.qty and intent.status == "filled"
    assert intent.filled_avg_price is not None
    booked = load_account(journal, profile.initial_capital, 3)
    want = book_fill(before, ETH, "sell", float(intent.filled_qty), intent.filled_avg_price, profile)
    assert booked.cash == want.cash and np.array_equal(booked.holdings, want.holdings)
    assert booked.cooldown.tolist() == [0.0, 3.0, 0.0]  # fills never touch the cooldown
