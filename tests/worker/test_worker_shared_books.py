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
