"""The worker trades many bars against a real emulator; journal, virtual account and broker agree."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from worker_support import TICKERS, Model, all_orders, broker_for

from cappuccino_daemon.emulator.testing import EmulatorThread
from cappuccino_daemon.heartbeat import read_heartbeat
from cappuccino_daemon.journal.store import Journal
from cappuccino_daemon.worker.build import WorkerOptions, build_loop
from cappuccino_daemon.worker.loop import WorkerLoop

BAR_S = 3600
GRACE_S = 5


def next_bar(emu: EmulatorThread) -> None:
    """Move the emulator to just after the next bar close (+ grace)."""
    now = emu.now()
    target = now.replace(minute=0, second=0, microsecond=0).timestamp() + BAR_S + GRACE_S + 1
    emu.advance(target - now.timestamp())


@dataclass
class Alternating:
    """A deterministic policy (all-in, all-out) so sells and buys both happen every other bar."""

    n: int
    calls: int = 0

    def act(self, state: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        self.calls += 1
        sign = 1.0 if self.calls % 2 else -1.0
        return np.full(self.n, sign, dtype=np.float32)


def make_loop(tmp_path: Path, model: Model, emu: EmulatorThread, policy: object | None = None) -> WorkerLoop:
    opts = WorkerOptions(
        model_dir=model.dir,
        tickers=TICKERS,
        state_dir=tmp_path,
        max_clock_skew_s=None,
        poll_interval_s=0.1,
        grace_s=GRACE_S,
        fill_timeout_s=5.0,
        parity_check_every=0 if policy is not None else 1,  # a scripted policy counts its calls
    )
    return build_loop(opts, model.spec, policy or model.policy, broker_for(emu))  # type: ignore[arg-type]


def check_books_agree(loop: WorkerLoop, emu: EmulatorThread) -> None:
    journal: Journal = loop.cycle.journal
    spec = loop.cycle.spec
    orders = all_orders(emu)
    coids = [o["client_order_id"] for o in orders]
    assert len(coids) == len(set(coids)), "duplicate client_order_id at the broker"
    intents = {i.client_order_id: i for i in journal.intents()}
    assert set(coids) == {c for c, i in intents.items() if i.attempts > 0}, "broker and journal disagree"
    booked = {f["client_order_id"]: Decimal(f["qty"]) for f in journal.fills()}
    for order in orders:
        intent = intents[order["client_order_id"]]
        assert intent.status == "filled" and intent.applied
        assert intent.filled_qty == Decimal(order["filled_qty"])
        # The fill booked into the virtual account has the broker's quantity, not just the intent row.
        assert booked.get(order["client_order_id"]) == Decimal(order["filled_qty"]), order["client_order_id"]
    assert set(booked) == {o["client_order_id"] for o in orders if Decimal(o["filled_qty"]) > 0}
    # Virtual cash = capital + the env's fee arithmetic over the journaled fills.
    profile = spec.profile
    cash = profile.initial_capital
    for fill in journal.fills():
        q, p = float(fill["qty"]), float(fill["price"])
        cash += (
            p * q * (1 - profile.sell_cost_pct)
            if fill["side"] == "sell"
            else -p * q * (1 + profile.buy_cost_pct)
        )
    account = journal.latest_account()
    assert account is not None
    assert account.cash == pytest.approx(cash, rel=1e-9)
    # Holdings: equal to the broker's position (the virtual account follows fills, clamped to the broker).
    positions = loop.cycle.broker.get_positions()
    for symbol, held in zip(spec.tickers, account.holdings, strict=True):
        broker_qty = float(positions[symbol].qty) if symbol in positions else 0.0
        assert held == pytest.approx(broker_qty, rel=1e-6, abs=1e-9), symbol


@pytest.mark.parametrize("which", ["tiny_model", "trial7"])
def test_model_trades_many_bars(
    tmp_path: Path, which: str, request: pytest.FixtureRequest, emulator: EmulatorThread
) -> None:
    """The stub model everywhere; the real trained trial_7 too where ../shared is present."""
    tiny_model: Model = request.getfixturevalue(which)
    loop = make_loop(tmp_path, tiny_model, emulator)
    outcomes = []
    for _ in range(24):
        next_bar(emulator)
        outcomes.append(loop.step())
    assert [o.kind for o in outcomes].count("traded") == 24
    # Bars that sent orders carry the lag; on the stepped emulator's clock the last order is accepted
    # exactly GRACE_S + 1 broker seconds after its bar closed (next_bar's target).
    lags = [o.lag for o in outcomes if o.report is not None and o.report.submitted]
    assert lags and all(lag is not None and lag.broker_s == pytest.approx(GRACE_S + 1) for lag in lags)
    assert all(o.lag is None for o in outcomes if o.report is None or not o.report.submitted)
    assert loop.step().kind == "idle"  # same bar again: nothing to do
    loop.reconcile_now(loop.cycle.broker.now())
    check_books_agree(loop, emulator)
    assert len(all_orders(emulator)) >= 1
    journal = loop.cycle.journal
    assert len(journal.cycles("done")) == 24
    if which == "tiny_model":  # it alternates by construction: both sides really filled
        assert {i.side for i in journal.intents() if i.status == "filled"} == {"buy", "sell"}
    normaliser = journal.get_normaliser(tiny_model.spec.model_id)
    assert normaliser is not None and normaliser.tickers == TICKERS
    heartbeat = read_heartbeat(tmp_path / "heartbeat.json")
    assert (
        heartbeat is not None
        and heartbeat.cycles == 24
        and heartbeat.last_bar == journal.cycles()[-1].bar_time
    )
    # The heartbeat shows the newest wall-clock lag (None only while the clock rate is unmeasured).
    walls = [lag.wall_s for lag in lags if lag is not None and lag.wall_s is not None]
    assert heartbeat.lag_s == (walls[-1] if walls else None)


def test_buys_wait_for_sells_and_books_agree(
    tmp_path: Path, tiny_model: Model, emulator: EmulatorThread
) -> None:
    loop = make_loop(tmp_path, tiny_model, emulator, Alternating(len(TICKERS)))
    for _ in range(8):
        next_bar(emulator)
        assert loop.step().kind == "traded"
        loop.reconcile_now(loop.cycle.broker.now())
        check_books_agree(loop, emulator)
    journal = loop.cycle.journal
    sides = {i.side for i in journal.intents() if i.status == "filled"}
    assert sides == {"buy", "sell"}
    # Within each bar every sell was filled before any buy was sent.
    events = journal.events("submitted")
    for cycle in journal.cycles("done"):
        ids = [
            e["client_order_id"]
            for e in events
            if e["client_order_id"] in {i.client_order_id for i in journal.intents(cycle.bar_time)}
        ]
        kinds = [cid[-1] for cid in ids]
        assert kinds == sorted(kinds, key=lambda k: k == "b"), kinds
    # The normaliser never changes after the first cycle.
    first = journal.get_normaliser(tiny_model.spec.model_id)
    next_bar(emulator)
    loop.step()
    assert journal.get_normaliser(tiny_model.spec.model_id) == first


def test_restart_reuses_journal_and_normaliser(
    tmp_path: Path, tiny_model: Model, emulator: EmulatorThread
) -> None:
    loop = make_loop(tmp_path, tiny_model, emulator, Alternating(len(TICKERS)))
    next_bar(emulator)
    loop.step()
    before = loop.cycle.journal.latest_account()
    normaliser = loop.cycle.journal.get_normaliser(tiny_model.spec.model_id)
    loop.cycle.journal.close()
    again = make_loop(tmp_path, tiny_model, emulator, Alternating(len(TICKERS)))
    assert again.step().kind == "idle"
    assert again.cycle.journal.get_normaliser(tiny_model.spec.model_id) == normaliser
    after = again.cycle.journal.latest_account()
    assert before is not None and after is not None and after.cash == before.cash


def test_bars_missed_while_down_are_journaled_with_the_reason(
    tmp_path: Path, tiny_model: Model, emulator: EmulatorThread
) -> None:
    """A worker that was down for three bar closes decides the newest bar and explains the other two."""
    from cappuccino_daemon.worker.loop import MISSED_BAR

    loop = make_loop(tmp_path, tiny_model, emulator)
    next_bar(emulator)
    first = loop.step()
    assert first.kind == "traded" and first.bar is not None
    loop.cycle.journal.close()
    emulator.advance(3 * BAR_S)  # three closes pass with no worker; the newest is decided on return
    again = make_loop(tmp_path, tiny_model, emulator)
    outcome = again.step()
    assert outcome.kind == "traded" and outcome.bar is not None
    cycles = {c.bar_time: c for c in again.cycle.journal.cycles()}
    between = sorted(t for t in cycles if first.bar < t < outcome.bar)
    assert len(between) == 2
    assert [cycles[t].status for t in between] == ["skipped"] * 2
    assert {cycles[t].message for t in between} == {MISSED_BAR}
