"""Three models on one emulator account, one worker: own journals and prefixes, books that sum to the
broker's positions, one bar download per poll, a raising model isolated, a model removed untouched."""

from __future__ import annotations

import hashlib
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from stub_model import write_stub_model
from test_worker_e2e import GRACE_S, next_bar
from worker_support import all_orders, broker_for

from cappuccino_daemon.config import load_settings
from cappuccino_daemon.emulator.testing import EmulatorThread
from cappuccino_daemon.model.actor import load_policy
from cappuccino_daemon.model.loader import load_model_spec
from cappuccino_daemon.model.spec import ModelSpec, Policy
from cappuccino_daemon.worker.account import load_account
from cappuccino_daemon.worker.build import WorkerOptions, build_loop
from cappuccino_daemon.worker.ids import our_prefix
from cappuccino_daemon.worker.loop import WorkerLoop
from cappuccino_daemon.worker.metrics import WorkerMetrics
from cappuccino_daemon.worker.tournament import SharedBars

MODELS = {"alpha_1h": ("BTC", "ETH", "LTC"), "beta_1h": ("BTC", "ETH"), "gamma_1h": ("ETH", "LTC")}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[ModelSpec, Policy]]:
    root = tmp_path_factory.mktemp("tournament")
    out = {}
    for name, tickers in MODELS.items():
        folder = write_stub_model(root / name, tickers)
        out[name] = (load_model_spec(folder, list(tickers)), load_policy(folder))
    return out


@dataclass
class RaisesOnCall:
    """A model whose actor fails on one call (a bug in the model, not in the worker)."""

    inner: Policy
    fail_on: int
    calls: int = 0

    def act(self, state: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        self.calls += 1
        if self.calls == self.fail_on:
            raise RuntimeError("boom in the actor")
        return self.inner.act(state)


def _loop(
    tmp_path: Path, emu: EmulatorThread, entries: list[tuple[ModelSpec, Policy]], parity: int = 1
) -> WorkerLoop:
    """``parity=0`` for actors that count their calls (the parity check calls each actor once more)."""
    opts = WorkerOptions(
        model_dir=entries[0][0].model_dir,
        tickers=None,
        state_dir=tmp_path,
        max_clock_skew_s=None,
        poll_interval_s=0.1,
        grace_s=GRACE_S,
        fill_timeout_s=5.0,
        parity_check_every=parity,
    )
    (spec, policy), *others = entries
    return build_loop(opts, spec, policy, broker_for(emu), others=others)


def _check_books_sum_to_the_broker(loop: WorkerLoop) -> None:
    positions = loop.cycle.broker.get_positions()
    summed: dict[str, float] = {}
    for c in loop.cycles:
        account = load_account(c.journal, c.spec.profile.initial_capital, len(c.tickers))
        for symbol, qty in zip(c.tickers, account.holdings, strict=True):
            summed[symbol] = summed.get(symbol, 0.0) + float(qty)
    for symbol, qty in summed.items():
        broker_qty = float(positions[symbol].qty) if symbol in positions else 0.0
        # abs 1e-8: the float32 dust of several books (the broker keeps a few 1e-9 coins of fees)
        assert qty == pytest.approx(broker_qty, rel=1e-6, abs=1e-8), symbol


def test_three_models_trade_one_account_with_their_own_books(
    tmp_path: Path, emulator: EmulatorThread, models: dict[str, tuple[ModelSpec, Policy]]
) -> None:
    loop = _loop(tmp_path, emulator, list(models.values()))
    config = tmp_path / "daemon.toml"
    config.write_text('[model]\ndir = "m"\n[paths]\nstate = "state"\n[metrics]\nenabled = true\nport = 0\n')
    loop.metrics = WorkerMetrics.start(load_settings(config, require_model_dir=False))
    kinds = []
    for _ in range(6):
        next_bar(emulator)
        kinds.append(loop.step().kind)
    assert kinds == ["traded"] * 6
    loop.reconcile_now(loop.cycle.broker.now())
    shared = loop.cycle.bar_source
    assert isinstance(shared, SharedBars) and all(c.bar_source is shared for c in loop.cycles)
    assert shared.downloads == 6  # one download per poll for all three models...
    assert shared.prefetched == 6  # ...each started while the account was reconciled
    assert shared.computed == 6 * 3  # BTC, ETH, LTC once per bar, though seven model-tickers read them
    owners = {our_prefix(c.spec.model_id): c for c in loop.cycles}
    assert len(owners) == 3 and len({c.journal.path for c in loop.cycles}) == 3
    orders = all_orders(emulator)
    for order in orders:  # every order belongs to exactly one model, by prefix, and is in its journal
        (cycle,) = [c for p, c in owners.items() if order["client_order_id"].startswith(p)]
        assert cycle.journal.get_intent(order["client_order_id"]) is not None
        assert order["symbol"].split("/")[0] in cycle.tickers
    for c in loop.cycles:
        assert len(c.journal.cycles("done")) == 6
        filled = [i for i in c.journal.intents() if i.status == "filled"]
        assert {i.side for i in filled} == {"buy", "sell"}, c.spec.model_id
        assert {i.symbol for i in filled} <= set(c.tickers)
    assert len(orders) == sum(len(c.journal.fills()) for c in loop.cycles)
    _check_books_sum_to_the_broker(loop)
    assert loop.metrics.address is not None
    with urllib.request.urlopen(f"http://127.0.0.1:{loop.metrics.address[1]}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    loop.metrics.close()
    for c in loop.cycles:  # one equity series and filled-order count per model
        assert f'cappuccino_model_equity_usd{{model="{c.spec.model_id}"}}' in text
        filled = sum(1 for i in c.journal.intents() if i.status == "filled")
        assert f'cappuccino_model_halted{{model="{c.spec.model_id}"}} 0.0' in text
        assert f'cappuccino_parity_alarms_total{{model="{c.spec.model_id}"}} 0.0' in text
        assert c.journal.events("parity_alarm") == []  # shared bars and features: the training state
        assert (
            f'cappuccino_model_orders_total{{model="{c.spec.model_id}",outcome="filled"}} {filled:.1f}'
            in text
        )


def test_a_model_that_raises_skips_its_bar_and_the_others_trade_on(
    tmp_path: Path, emulator: EmulatorThread, models: dict[str, tuple[ModelSpec, Policy]]
) -> None:
    alpha, beta, gamma = models.values()
    broken = RaisesOnCall(beta[1], fail_on=2)
    loop = _loop(tmp_path, emulator, [alpha, (beta[0], broken), gamma], parity=0)
    for _ in range(4):
        next_bar(emulator)
        assert loop.step().kind == "traded"  # the poll as a whole goes on
    a, b, g = loop.cycles
    skipped = b.journal.cycles("skipped")
    assert len(skipped) == 1 and "actor raised RuntimeError: boom in the actor" in skipped[0].message
    assert len(b.journal.cycles("done")) == 3
    assert len(a.journal.cycles("done")) == 4 and len(g.journal.cycles("done")) == 4
    loop.reconcile_now(loop.cycle.broker.now())
    _check_books_sum_to_the_broker(loop)


def test_removing_a_model_leaves_the_others_books_and_its_own_journal_alone(
    tmp_path: Path, emulator: EmulatorThread, models: dict[str, tuple[ModelSpec, Policy]]
) -> None:
    alpha, beta, gamma = models.values()
    loop = _loop(tmp_path, emulator, [alpha, beta, gamma])
    for _ in range(3):  # odd: every model ends holding its coins
        next_bar(emulator)
        loop.step()
    loop.reconcile_now(loop.cycle.broker.now())
    a, b, g = loop.cycles
    before = {c.spec.model_id: c.journal.latest_account() for c in (a, g)}
    beta_file = b.journal.path
    beta_hash = hashlib.sha256(beta_file.read_bytes()).hexdigest()
    restarted = _loop(tmp_path, emulator, [alpha, gamma])  # beta removed from the config
    restarted.reconcile_now(restarted.cycle.broker.now())
    for c in restarted.cycles:  # beta's coins at the broker are now foreign: nothing clamped
        assert c.journal.latest_account() == before[c.spec.model_id]
    assert hashlib.sha256(beta_file.read_bytes()).hexdigest() == beta_hash
    next_bar(emulator)
    assert restarted.step().kind == "traded"
    beta_symbols = set(MODELS["beta_1h"])
    positions = restarted.cycle.broker.get_positions()
    beta_account = load_account(b.journal, b.spec.profile.initial_capital, len(b.tickers))
    for symbol, held in zip(b.tickers, beta_account.holdings, strict=True):  # still at the broker
        assert symbol in beta_symbols and float(positions[symbol].qty) >= float(held) * (1 - 1e-6)


@dataclass
class Recording:
    """Passes the states through and keeps them."""

    inner: Policy
    states: list[npt.NDArray[np.float32]]

    def act(self, state: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        self.states.append(state.copy())
        return self.inner.act(state)


def test_a_model_sees_the_same_market_alone_and_in_a_tournament(
    tmp_path: Path, models: dict[str, tuple[ModelSpec, Policy]]
) -> None:
    """Shared bars and features change nothing: the market part of every state is bit for bit the one the
    model builds alone, and its books stay within the clamp rule's rounding (the broker reports one
    position per symbol, so a model's share of it is computed, in float32 holdings)."""
    from worker_support import START

    alpha, beta, gamma = models.values()
    n = len(gamma[0].tickers)

    twin = write_stub_model(tmp_path / "twin_1h", gamma[0].tickers)  # gamma's coins, its own books
    delta = (load_model_spec(twin, list(gamma[0].tickers)), load_policy(twin))
    matrices = []

    def states(folder: str, others: list[tuple[ModelSpec, Policy]]) -> list[npt.NDArray[np.float32]]:
        seen: list[npt.NDArray[np.float32]] = []
        with EmulatorThread(synthetic_seed=3, start=START) as emu:
            loop = _loop(tmp_path / folder, emu, [(gamma[0], Recording(gamma[1], seen)), *others], parity=0)
            for _ in range(4):
                next_bar(emu)
                assert loop.step().kind == "traded"
            if others:
                assert isinstance(loop.cycle.bar_source, SharedBars)
                matrices.append(loop.cycle.bar_source.aligned_built)
        return seen

    alone, together = states("alone", []), states("together", [alpha, beta, delta])
    assert matrices == [4 * 3]  # four models, three ticker lists: gamma and its twin share one matrix
    assert len(alone) == len(together) == 4
    for a, t in zip(alone, together, strict=True):
        assert a[1 + n :].tobytes() == t[1 + n :].tobytes()  # the technical rows: identical
        assert t[: 1 + n] == pytest.approx(a[: 1 + n], rel=1e-6, abs=1e-6)  # cash and holdings
