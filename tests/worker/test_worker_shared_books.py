"""Many books on one account: reconciliation against the sum of the models' holdings (no emulator)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from worker_support import Model

from cappuccino_daemon.broker.memory import MemoryBroker
from cappuccino_daemon.clock import FakeClock
from cappuccino_daemon.journal.store import Journal
from cappuccino_daemon.policy.ledger import clamp_shares
from cappuccino_daemon.worker.account import load_account
from cappuccino_daemon.worker.executor import Executor
from cappuccino_daemon.worker.orderflow import execute_one
from cappuccino_daemon.worker.reconcile import Book, reconcile_books

BAR = datetime(2024, 2, 29, 23, tzinfo=UTC)
TICKERS = ("BTC", "ETH", "LTC")


def _book(
    tmp_path: Path, name: str, model: Model, broker: MemoryBroker, clock: FakeClock, held: list[float]
) -> Book:
    journal = Journal(tmp_path / f"{name}.sqlite")
    journal.save_account(1000.0, held, [0.0] * 3, "initial")
    executor = Executor(
        broker, journal, model_id=name, tickers=TICKERS, profile=model.spec.profile, clock=clock, poll_s=5.0
    )
    return Book(journal, executor, name, TICKERS, 1000.0)


def _held(book: Book) -> list[float]:
    return [float(h) for h in load_account(book.journal, 1000.0, 3).holdings]


def test_clamp_shares_splits_a_shortfall_by_holdings() -> None:
    assert clamp_shares([0.6, 0.4], 0.99) == pytest.approx([0.594, 0.396])
    assert clamp_shares([0.0, 0.7], 0.69) == [0.0, 0.69]  # one holder: exactly the broker's
    assert clamp_shares([0.5], 0.25) == [0.25]
    # Only beta bought since the last reconciliation: the coin fee is its own, alpha's holding stays.
    assert clamp_shares([0.6, 0.4], 0.999, bought=[0.0, 0.4]) == pytest.approx([0.6, 0.399])
    assert clamp_shares([0.6, 0.4], 0.997, bought=[0.2, 0.1]) == pytest.approx([0.598, 0.399])


def test_the_broker_position_is_checked_against_the_sum_and_the_shortfall_shared(
    tmp_path: Path, tiny_model: Model
) -> None:
    broker = MemoryBroker(start=BAR)
    broker.set_position("ETH", Decimal("0.9975"))  # the books say 0.6 + 0.4: the coin fee took 0.25 %
    broker.set_position("LTC", Decimal("5"))  # the books say 2: 3 LTC are someone else's
    clock = FakeClock(BAR)
    a = _book(tmp_path, "alpha", tiny_model, broker, clock, [0.0, 0.6, 2.0])
    b = _book(tmp_path, "beta", tiny_model, broker, clock, [0.0, 0.4, 0.0])
    report = reconcile_books(broker, [a, b], BAR)
    assert report.clamped == {"ETH": (pytest.approx(1.0), 0.9975)}
    assert _held(a)[1] == pytest.approx(0.5985, rel=1e-6) and _held(b)[1] == pytest.approx(0.399, rel=1e-6)
    assert _held(a)[2] == 2.0 and "LTC" in report.external  # the foreign coins are never booked
    assert not clock.sleeps  # nothing looked like a lagging position


def test_dust_of_several_books_is_not_a_lagging_position(tmp_path: Path, tiny_model: Model) -> None:
    """Each book's float32 dust (1e-9 coins) sums past 1e-9: no 10 s wait for the position (found by
    bench/tournament.py), the dust is clamped away."""
    broker = MemoryBroker(start=BAR)
    clock = FakeClock(BAR)
    books = [_book(tmp_path, f"m{i}", tiny_model, broker, clock, [6e-10, 0.0, 0.0]) for i in range(3)]
    reconcile_books(broker, books, BAR)
    assert clock.sleeps == []
    assert all(_held(book)[0] == 0.0 for book in books)


def test_the_fee_audit_gives_each_model_its_share_of_the_accounts_cfee(
    tmp_path: Path, tiny_model: Model
) -> None:
    from cappuccino_daemon.worker.executor import OrderLine
    from cappuccino_daemon.worker.fees_audit import FeeAuditor, FeeBook

    broker = MemoryBroker(start=BAR, fee_pct=Decimal("0.004"))  # the broker charges more than the books
    clock = FakeClock(BAR)
    a = _book(tmp_path, "alpha", tiny_model, broker, clock, [0.0, 0.0, 0.0])
    b = _book(tmp_path, "beta", tiny_model, broker, clock, [0.0, 0.0, 0.0])
    prices = [60000.0, 3000.0, 80.0]
    execute_one(a.executor, BAR, [OrderLine(1, "buy", 0.05, "buy")], prices)
    execute_one(b.executor, BAR, [OrderLine(1, "buy", 0.15, "buy")], prices)  # three times alpha's
    auditor = FeeAuditor(
        broker,
        a.journal,
        tiny_model.spec.profile,
        TICKERS,
        [FeeBook(b.journal, tiny_model.spec.profile, TICKERS)],
    )
    broker.advance(3600)  # past midnight: the day's CFEE is posted
    audits = auditor.maybe_run(broker.now())
    (cfee,) = [x for x in broker.list_activities() if x.kind == "CFEE" and x.symbol == "ETH"]
    (ea,), (eb,) = a.journal.events("fee_audit"), b.journal.events("fee_audit")
    total = float(cfee.fee_usd)
    assert len(audits) == 2
    assert ea["detail"]["broker_usd"] + eb["detail"]["broker_usd"] == pytest.approx(total, abs=2e-6)
    assert eb["detail"]["broker_usd"] == pytest.approx(3 * ea["detail"]["broker_usd"], rel=1e-3)
    assert eb["detail"]["virtual_usd"] == pytest.approx(3 * ea["detail"]["virtual_usd"], rel=1e-3)
    # each model: its books charged 0.25 %, its share of the broker's 0.4 %: the difference is its own
    assert ea["detail"]["diff_usd"] == pytest.approx(ea["detail"]["virtual_usd"] * 0.6, rel=1e-3)
