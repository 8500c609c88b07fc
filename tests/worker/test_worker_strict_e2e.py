"""The worker trades cleanly against the embedded emulator's STRICT profile, through real alpaca-py.

Every strict behaviour is on at once: 200 requests/min with the worker's own 180/min budget, half of
the orders filling in parts over a minute (longer than the worker's fill deadline), positions
lagging fills by 3 s, and Alpaca's asset increments. No sleeps: the worker's clock moves the
emulator's simulated clock, and the request budget runs on a stepped wall clock shared with the
server's rate limiter.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest
from test_worker_e2e import GRACE_S, Alternating, next_bar
from worker_support import START, TICKERS, Model, all_orders

from cappuccino_daemon.broker.alpaca import AlpacaBroker, AlpacaEndpoints
from cappuccino_daemon.broker.budget import RequestBudget
from cappuccino_daemon.broker.http import ReadRetry
from cappuccino_daemon.emulator.options import EmulatorOptions
from cappuccino_daemon.emulator.testing import EmulatorThread
from cappuccino_daemon.worker.build import WorkerOptions, build_loop
from cappuccino_daemon.worker.loop import WorkerLoop


class Wall:
    """The request budget's wall clock: moves only when the budget sleeps."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0
        self.slept = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.slept += seconds


class EmulatorClock:
    """The worker's clock is the emulator's: a sleep lets simulated time pass (fills, lag)."""

    def __init__(self, emu: EmulatorThread) -> None:
        self.emu = emu
        self._mono = 0.0

    def now(self) -> datetime:
        return self.emu.now()

    def monotonic(self) -> float:
        return self._mono

    def sleep(self, seconds: float) -> None:
        self._mono += max(0.0, seconds)
        if seconds > 0:
            self.emu.advance(seconds)


def strict_loop(
    tmp_path: Path, model: Model, emu: EmulatorThread, wall: Wall
) -> tuple[WorkerLoop, RequestBudget]:
    budget = RequestBudget(180, clock=wall, sleep=wall.sleep)
    broker = AlpacaBroker(
        emu.key_id,
        emu.secret_key,
        AlpacaEndpoints(emu.base_url, emu.base_url),
        timeout_s=5.0,
        read_retry=ReadRetry(attempts=3, base_s=0.01, max_wait_s=0.05),
        budget=budget,
    )
    opts = WorkerOptions(
        model_dir=model.dir,
        tickers=TICKERS,
        state_dir=tmp_path,
        max_clock_skew_s=None,
        poll_interval_s=0.1,
        grace_s=GRACE_S,
        fill_timeout_s=20.0,  # parts land over 60 s: a split order meets the deadline
        parity_check_every=0,  # a scripted policy is not a function of its state
    )
    loop = build_loop(opts, model.spec, Alternating(len(TICKERS)), broker, clock=EmulatorClock(emu))  # type: ignore[arg-type]
    return loop, budget


def test_worker_trades_cleanly_against_the_strict_exchange(tmp_path: Path, tiny_model: Model) -> None:
    wall = Wall()
    strict = EmulatorOptions.strict(partial_fill_rate=0.5, rate_clock=wall)
    options = {
        k: getattr(strict, k)
        for k in ("rate_limit", "partial_fill_rate", "position_lag_s", "assets", "rate_clock")
    }
    with EmulatorThread(synthetic_seed=3, start=START, **options) as emu:
        loop, budget = strict_loop(tmp_path, tiny_model, emu, wall)
        kinds = []
        for _ in range(11):
            next_bar(emu)
            kinds.append(loop.step().kind)
        assert kinds == ["traded"] * 11
        loop.reconcile_now(loop.cycle.broker.now())  # right after the last fills: positions may lag
        journal = loop.cycle.journal
        orders = all_orders(emu)
        coids = [o["client_order_id"] for o in orders]
        assert len(coids) == len(set(coids)), "duplicate client_order_id at the broker"
        intents = {i.client_order_id: i for i in journal.intents()}
        assert set(coids) == {c for c, i in intents.items() if i.attempts > 0}, "broker and journal disagree"
        assert budget.rate_limited == 0 and wall.slept > 0  # the worker's budget kept it below the limit
        booked = {f["client_order_id"]: Decimal(f["qty"]) for f in journal.fills()}
        unfilled = {e["client_order_id"] for e in journal.events("order_unfilled")}
        for order in orders:
            intent = intents[order["client_order_id"]]
            assert not intent.is_open and intent.filled_qty == Decimal(order["filled_qty"])
            if intent.filled_qty > 0:
                assert intent.applied and booked[intent.client_order_id] == intent.filled_qty
            if intent.status == "canceled":  # cut at the fill deadline: journaled with the reason
                assert intent.client_order_id in unfilled and order["status"] == "canceled"
        assert unfilled, "no order met the fill deadline: the partial-fill path went untested"
        assert {i.side for i in intents.values() if i.filled_qty > 0} == {"buy", "sell"}
        assert not journal.events("submit_rejected") and not journal.events("asset_rules_reload")
        # The last bar bought: reconciling at once met a position 3 s behind its fill and waited for it.
        assert [e["detail"]["decision"] for e in journal.events("position_lag")] == ["waited"]
        assert not [e for e in journal.events("position_drift")]
        # The books agree with the broker once its positions have caught up (the clamp rule).
        emu.advance(5)
        loop.reconcile_now(loop.cycle.broker.now())
        account = journal.latest_account()
        assert account is not None
        positions = loop.cycle.broker.get_positions()
        for symbol, held in zip(TICKERS, account.holdings, strict=True):
            broker_qty = float(positions[symbol].qty) if symbol in positions else 0.0
            assert held == pytest.approx(broker_qty, rel=1e-6, abs=1e-9), symbol
