"""The demo's training choices that make a first run worth watching: action scale and the cash budget."""

from __future__ import annotations

import numpy as np
import pytest

from cappuccino_daemon.demo.market import build_market
from cappuccino_daemon.demo.params import NORM_ACTION_RANGE
from cappuccino_daemon.demo.shaping import CASH_TARGET, CASH_WEIGHT, CashBudgetEnv
from cappuccino_daemon.demo.study import DEFAULT_MARKET_SEED, PROFILE_NAME
from cappuccino_daemon.model.profiles import get_profile
from cappuccino_daemon.model.spec import DEFAULT_TRAINING_TICKERS, Normalisation
from cappuccino_daemon.policy.envsim import TradingEnv
from cappuccino_daemon.policy.normaliser import action_norm_vector
from cappuccino_daemon.policy.planner import AccountState, plan_step

N = len(DEFAULT_TRAINING_TICKERS)


@pytest.fixture(scope="module")
def market():  # type: ignore[no-untyped-def]
    return build_market(DEFAULT_TRAINING_TICKERS, 400, DEFAULT_MARKET_SEED)


def _env(market, norm_action: float = 25.0) -> TradingEnv:  # type: ignore[no-untyped-def]
    price, tech = market.window(0, 60)
    norms = Normalisation(cash=2.0**-10, stocks=2.0**-6, tech=2.0**-14, reward=2.0**-8, action=norm_action)
    return TradingEnv(price, tech, 1, norms, get_profile(PROFILE_NAME, N))


def test_shaped_reward_is_env_reward_minus_the_cash_budget_penalty(market) -> None:  # type: ignore[no-untyped-def]
    plain, shaped = _env(market), CashBudgetEnv(_env(market))
    assert np.array_equal(plain.reset(), shaped.reset())
    buy_all = np.ones(N, dtype=np.float32)
    penalties = []
    for _ in range(6):
        s1, r1, d1, _ = plain.step(buy_all)
        s2, r2, d2, _ = shaped.step(buy_all)
        assert np.array_equal(s1, s2) and d1 == d2  # the market and the trades are untouched
        share = shaped.env.cash / shaped.env.total_asset
        expected = CASH_WEIGHT * shaped.env.total_asset * (share - CASH_TARGET) ** 2 * 2.0**-8
        assert r2 == pytest.approx(r1 - expected) and shaped.penalty() == pytest.approx(expected)
        penalties.append(shaped.penalty())
    assert penalties[-1] > penalties[0] > 0  # buying everything moves the cash share away from the target


def test_penalty_is_zero_at_the_target_cash_share(market) -> None:  # type: ignore[no-untyped-def]
    shaped = CashBudgetEnv(_env(market))
    shaped.reset()
    assert shaped.penalty() == pytest.approx(
        CASH_WEIGHT * 1000.0 * (1 - CASH_TARGET) ** 2 * 2.0**-8
    )  # all cash
    held = shaped.env.account
    shaped.env.account = AccountState(1000.0 * CASH_TARGET, held.holdings, held.cooldown)
    shaped.env.total_asset = 1000.0
    assert shaped.penalty() == 0.0


@pytest.mark.parametrize("norm_action", [NORM_ACTION_RANGE[0], NORM_ACTION_RANGE[1]])
def test_one_full_scale_bar_cannot_spend_the_account(market, norm_action: int) -> None:  # type: ignore[no-untyped-def]
    """The all-in failure of the old 100-1000 range: a 'buy everything' bar now leaves most cash."""
    profile = get_profile(PROFILE_NAME, N)
    prices = market.matrix.price_array[0]
    anv = action_norm_vector(prices, float(norm_action))
    plan = plan_step(np.ones(N, np.float32), AccountState.initial(1000.0, N), prices, anv, profile)
    assert plan.after.cash > 0.3 * profile.initial_capital
    usd_per_unit = anv * prices  # USD a raw action of 1 buys, per coin
    assert (usd_per_unit >= 10.0).all()  # ... and a full-scale order clears Alpaca's $10 minimum
