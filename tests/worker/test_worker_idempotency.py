"""Exactly-once submits against the real emulator: ambiguous responses, lost requests, duplicates."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from worker_support import TICKERS, Model, all_orders, broker_for, rest_limit_order

from cappuccino_daemon.clock import SystemClock
from cappuccino_daemon.emulator.testing import EmulatorThread
from cappuccino_daemon.journal.store import Journal
from cappuccino_daemon.worker.executor import Executor, OrderLine
from cappuccino_daemon.worker.ids import client_order_id, our_prefix
from cappuccino_daemon.worker.orderflow import execute_one
from cappuccino_daemon.worker.reconcile import reconcile

BAR = datetime(2024, 2, 29, 23, tzinfo=UTC)


def make(tmp_path: Path, model: Model, emu: EmulatorThread) -> tuple[Executor, Journal]:
    journal = Journal(tmp_path / "j.sqlite")
    journal.save_account(model.spec.profile.initial_capital, [0.0] * 3, [0.0] * 3, "initial")
    executor = Executor(
        broker_for(emu),
        journal,
        model_id=model.spec.model_id,
        tickers=TICKERS,
        profile=model.spec.profile,
        clock=SystemClock(),
        fill_timeout_s=5.0,
        poll_s=0.05,
    )
    return executor, journal


def orders_for(emu: EmulatorThread, coid: str) -> list[dict[str, object]]:
    return [o for o in all_orders(emu) if o["client_order_id"] == coid]


def test_client_order_id_is_deterministic_and_short() -> None:
    a = client_order_id("trial_7_1h-e095bf72", BAR, "BTC", "buy")
    assert a == client_order_id("trial_7_1h-e095bf72", BAR, "BTC", "buy")
    assert a != client_order_id("trial_7_1h-e095bf72", BAR, "BTC", "sell")
    assert a != client_order_id("other-model", BAR, "BTC", "buy")
    assert a.startswith(our_prefix("trial_7_1h-e095bf72")) and len(a) < 64


def test_ambiguous_submit_resolved_by_client_id(
    tmp_path: Path, tiny_model: Model, emulator: EmulatorThread
) -> None:
    """The broker accepts the order but the connection drops: we must find it, not send another."""
    executor, journal = make(tmp_path, tiny_model, emulator)
    emulator.set_faults("orders_submit:ambiguous:1:1")
    coid = client_order_id(tiny_model.spec.model_id, BAR, "ETH", "buy")
    intent = journal.add_intent(coid, BAR, "ETH", "buy", Decimal("0.05"), 2500.0)
    result = executor.submit(intent)
    assert result.status in ("submitted", "filled")
    assert [e["kind"] for e in journal.events() if e["client_order_id"] == coid][:2] == [
        "submit_ambiguous",
        "resolved_by_client_id",
    ]
    assert executor.await_final([coid]) == []
    assert len(orders_for(emulator, coid)) == 1
    final = journal.get_intent(coid)
    assert final is not None and final.status == "filled" and final.applied and final.attempts == 1


def test_lost_request_is_resent_with_the_same_id(
    tmp_path: Path, tiny_model: Model, emulator: EmulatorThread
) -> None:
    """A 503 before the broker did anything: lookup says absent, so the same id is sent again."""
    executor, journal = make(tmp_path, tiny_model, emulator)
    emulator.set_faults("orders_submit:503:1:1")
    coid = client_order_id(tiny_model.spec.model_id, BAR, "LTC", "buy")
    result = executor.submit(journal.add_intent(coid, BAR, "LTC", "buy", Decimal("0.1"), 100.0))
    assert result.status in ("submitted", "filled") and result.attempts == 2
    assert "lookup_absent" in [e["kind"] for e in journal.events()]
    assert len(orders_for(emulator, coid)) == 1


def test_duplicate_client_order_id_is_adopted(
    tmp_path: Path, tiny_model: Model, emulator: EmulatorThread
) -> None:
    """The order exists already (sent by a crashed run): the 422 leads to a lookup, never a second order."""
    executor, journal = make(tmp_path, tiny_model, emulator)
    coid = client_order_id(tiny_model.spec.model_id, BAR, "BTC", "buy")
    executor.broker.submit_market_order("BTC", "buy", Decimal("0.001"), coid)
    result = executor.submit(journal.add_intent(coid, BAR, "BTC", "buy", Decimal("0.001"), 60000.0))
    assert result.status in ("submitted", "filled")
    assert "duplicate_client_order_id" in [e["kind"] for e in journal.events()]
    assert len(orders_for(emulator, coid)) == 1


def test_rejection_is_final_and_journaled(
    tmp_path: Path, tiny_model: Model, emulator: EmulatorThread
) -> None:
    executor, journal = make(tmp_path, tiny_model, emulator)
    coid = client_order_id(tiny_model.spec.model_id, BAR, "BTC", "sell")
    result = executor.submit(journal.add_intent(coid, BAR, "BTC", "sell", Decimal("1"), 60000.0))
    assert result.status == "rejected"
    assert journal.events("submit_rejected")[0]["detail"]["status"] == 403


def test_sizing_floors_drops_and_uses_broker_position(
    tmp_path: Path, tiny_model: Model, emulator: EmulatorThread
) -> None:
    executor, journal = make(tmp_path, tiny_model, emulator)
    bar = BAR
    # Tiny buy (below LTC min_order_size 0.01) is dropped; a sized one is floored and sent.
    report = execute_one(
        executor,
        bar,
        [OrderLine(2, "buy", 0.001, "buy"), OrderLine(1, "buy", 0.1234567891234, "buy")],
        [60000.0, 2500.0, 100.0],
    )
    assert report.dropped == 1 and report.submitted == 1
    eth = journal.get_intent(client_order_id(tiny_model.spec.model_id, bar, "ETH", "buy"))
    assert eth is not None and eth.status == "filled"
    position = executor.broker.get_positions()["ETH"].qty
    assert position < eth.filled_qty  # Alpaca's fee is taken in the coin
    # A full sell of the virtual holding is capped at what the broker really holds.
    later = bar.replace(hour=22)
    execute_one(
        executor, later, [OrderLine(1, "sell", float(eth.filled_qty), "sell")], [60000.0, 2500.0, 100.0]
    )
    sell = journal.get_intent(client_order_id(tiny_model.spec.model_id, later, "ETH", "sell"))
    assert sell is not None and sell.status == "filled" and sell.qty == position
    assert "ETH" not in executor.broker.get_positions()


def test_reconcile_cancels_unknown_and_marks_lost(
    tmp_path: Path, tiny_model: Model, emulator: EmulatorThread
) -> None:
    executor, journal = make(tmp_path, tiny_model, emulator)
    broker = executor.broker
    model_id = tiny_model.spec.model_id
    # An open order with our prefix that the journal never saw (limit far below market, so it rests).
    unknown = our_prefix(model_id) + "19990101T0000-ETH-b"
    rest_limit_order(emulator, unknown)
    human = rest_limit_order(emulator, "manual-1")
    # An intent from an old bar that was POSTed but never reached the broker.
    old = client_order_id(model_id, BAR.replace(hour=1), "BTC", "buy")
    journal.add_intent(old, BAR.replace(hour=1), "BTC", "buy", Decimal("0.001"), 60000.0)
    journal.mark_attempt(old)
    report = reconcile(
        broker,
        journal,
        executor,
        model_id=model_id,
        tickers=TICKERS,
        capital=tiny_model.spec.profile.initial_capital,
        current_bar=BAR,
    )
    assert report.canceled_foreign == [unknown] and report.lost == [old]
    lost = journal.get_intent(old)
    assert lost is not None and lost.status == "lost"
    statuses = {o["client_order_id"]: o["status"] for o in all_orders(emulator)}
    assert statuses[unknown] == "canceled" and statuses[human["client_order_id"]] == "new"
