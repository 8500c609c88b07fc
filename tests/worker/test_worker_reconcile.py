"""Reconciliation edge cases against the real emulator: nothing booked twice, nothing lost, and a
restarted worker reconciles even when the current bar was already decided."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from test_worker_e2e import Alternating, make_loop, next_bar
from test_worker_idempotency import BAR, make
from worker_support import TICKERS, Model, all_orders, broker_for, rest_limit_order

from cappuccino_daemon.broker.alpaca import AlpacaBroker
from cappuccino_daemon.broker.ports import OrderSnapshot
from cappuccino_daemon.emulator.testing import EmulatorThread
from cappuccino_daemon.worker.build import WorkerOptions, build_loop
from cappuccino_daemon.worker.executor import OrderLine
from cappuccino_daemon.worker.ids import client_order_id, our_prefix
from cappuccino_daemon.worker.orderflow import execute_one
from cappuccino_daemon.worker.reconcile import reconcile

PRICES = [60000.0, 2500.0, 100.0]


def test_failed_lookup_of_a_filled_sell_does_not_lose_its_proceeds(
    tmp_path: Path, tiny_model: Model, emulator: EmulatorThread
) -> None:
    """A sell filled at the broker while the journal still says "submitted" (the worker died before it
    saw the fill) and the broker cannot be asked right now: the position check must not clamp the
    virtual holding to the broker's 0, or the sale proceeds are never booked."""
    executor, journal = make(tmp_path, tiny_model, emulator)
    model_id = tiny_model.spec.model_id
    profile = tiny_model.spec.profile

    def run_reconcile(current: object) -> None:
        reconcile(
            executor.broker,
            journal,
            executor,
            model_id=model_id,
            tickers=TICKERS,
            capital=profile.initial_capital,
            current_bar=current,  # type: ignore[arg-type]
        )

    earlier = BAR - timedelta(hours=2)
    execute_one(executor, earlier, [OrderLine(1, "buy", 0.1, "buy")], PRICES)
    run_reconcile(BAR)  # the routine fee-in-coin clamp: virtual ETH == broker ETH
    held = executor.broker.get_positions()["ETH"].qty
    coid = client_order_id(model_id, BAR, "ETH", "sell")
    intent = executor.submit(journal.add_intent(coid, BAR, "ETH", "sell", held, PRICES[1]))
    assert intent.status == "submitted"  # accepted; the worker "dies" before it polls the fill
    emulator.advance(1)  # the broker fills it
    assert "ETH" not in executor.broker.get_positions()
    emulator.set_faults("order_by_client_id:503:1:3")  # every read retry of the lookup fails
    run_reconcile(BAR)
    emulator.set_faults()
    run_reconcile(BAR)
    final = journal.get_intent(coid)
    assert final is not None and final.status == "filled" and final.applied
    fills = {f["client_order_id"]: f for f in journal.fills()}
    buy = fills[client_order_id(model_id, earlier, "ETH", "buy")]
    sell = fills[coid]
    expected = (
        profile.initial_capital
        - float(buy["qty"]) * buy["price"] * (1 + profile.buy_cost_pct)
        + float(sell["qty"]) * sell["price"] * (1 - profile.sell_cost_pct)
    )
    account = journal.latest_account()
    assert account is not None
    assert account.cash == pytest.approx(expected, abs=1e-3)  # holdings are float32, as in training
    assert account.holdings[1] == pytest.approx(0.0, abs=1e-9)
    assert journal.events("position_check_deferred")


def test_restart_within_a_decided_bar_still_reconciles(
    tmp_path: Path, tiny_model: Model, emulator: EmulatorThread
) -> None:
    """README: reconciliation runs at start. A restart in the same bar (its cycle already done) must
    still cancel an open order with our prefix that the journal does not know."""
    loop = make_loop(tmp_path, tiny_model, emulator)
    next_bar(emulator)
    assert loop.step().kind == "traded"
    loop.cycle.journal.close()
    unknown = our_prefix(tiny_model.spec.model_id) + "19990101T0000-ETH-b"
    rest_limit_order(emulator, unknown)
    again = make_loop(tmp_path, tiny_model, emulator)
    assert again.step().kind == "idle"
    statuses = {o["client_order_id"]: o["status"] for o in all_orders(emulator)}
    assert statuses[unknown] == "canceled"
    assert again.cycle.journal.events("reconcile_cancel_unknown")


@dataclass
class StopAfterFirstSubmit:
    """SIGTERM arrives right after the first order is accepted (the test sets the loop's stop flag)."""

    inner: AlpacaBroker
    stop: threading.Event

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def submit_market_order(self, *args: Any, **kwargs: Any) -> OrderSnapshot:
        snap = self.inner.submit_market_order(*args, **kwargs)
        self.stop.set()
        return snap


@pytest.mark.parametrize("emulator", [{"fill_delay_s": 60.0}], indirect=True)
def test_stop_mid_cycle_pauses_at_a_safe_point_and_the_restart_finishes(
    tmp_path: Path, tiny_model: Model, emulator: EmulatorThread
) -> None:
    """A stop request no longer waits out the fill timeout nor sends the cycle's remaining orders:
    the cycle stays "executing", the submitted order is journaled, and the restart completes it."""
    stop = threading.Event()
    opts = WorkerOptions(
        model_dir=tiny_model.dir,
        tickers=TICKERS,
        state_dir=tmp_path,
        max_clock_skew_s=None,
        poll_interval_s=0.1,
        grace_s=5,
        fill_timeout_s=30.0,
    )
    broker = StopAfterFirstSubmit(broker_for(emulator), stop)
    policy = Alternating(len(TICKERS))  # all-in buys on the first bar
    loop = build_loop(opts, tiny_model.spec, policy, broker, stop=stop)  # type: ignore[arg-type]
    next_bar(emulator)
    outcome = loop.step()
    assert outcome.kind == "refused" and "safe point" in outcome.message
    journal = loop.cycle.journal
    [cycle] = journal.cycles()
    assert cycle.status == "executing"
    sent = [i for i in journal.intents() if i.attempts > 0]
    assert len(sent) == 1 and sent[0].status == "submitted"  # the accepted order is journaled
    assert [o["client_order_id"] for o in all_orders(emulator)] == [sent[0].client_order_id]
    # The other buys were sized with the first (a bar's orders are planned before any is sent) and
    # stay pending: journaled, never sent, so the restart sends them as planned.
    assert {i.status for i in journal.intents()} - {"submitted"} <= {"pending"}
    assert loop.run() == 0  # the loop sees the stop flag and exits cleanly
    journal.close()
    emulator.advance(61)  # the first order fills while the worker is down
    again = make_loop(tmp_path, tiny_model, emulator, Alternating(len(TICKERS)))
    assert again.step().kind == "traded"  # same bar: the interrupted cycle is finished
    assert [c.status for c in again.cycle.journal.cycles()] == ["done"]
    assert [o["client_order_id"] for o in all_orders(emulator)] == [sent[0].client_order_id]
    first = again.cycle.journal.get_intent(sent[0].client_order_id)
    assert first is not None and first.status == "filled" and first.applied
    # The rest of the plan was carried out on restart: every planned order has an intent or a drop.
    done = again.cycle.journal
    planned = {TICKERS[o["index"]] for o in (done.cycles()[0].plan or {})["orders"]}
    handled = {i.symbol for i in done.intents()} | {
        e["detail"]["symbol"] for e in done.events("order_dropped")
    }
    assert len(planned) > 1 and planned <= handled
