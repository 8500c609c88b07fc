"""The planner's rules in isolation (booking its orders as the live worker does: test_policy_ledger.py)."""

from __future__ import annotations

import numpy as np
import pytest

from cappuccino_daemon.errors import InvariantViolation
from cappuccino_daemon.model.spec import EnvProfile
from cappuccino_daemon.policy.ledger import AccountState
from cappuccino_daemon.policy.planner import plan_step

FINRL = EnvProfile("finrl-crypto", 1_000_000.0, 0.003, 0.003, 0.9, 0.0, (0.011, 0.11, 0.00011))
CAPPU = EnvProfile("cappuccino-nov2025", 1000.0, 0.0025, 0.0025, 0.99, 0.2, (0.0055, 0.033, 0.000011))
ONES = np.ones(3)


def _acct(cash: float, holdings: list[float], cooldown: list[float] | None = None) -> AccountState:
    return AccountState(cash, np.array(holdings, np.float32), np.array(cooldown or [0, 0, 0], np.float32))


def test_sells_fund_buys_and_buys_follow_index_priority() -> None:
    acct = _acct(0.0, [0, 0, 10])
    prices = np.array([100.0, 50.0, 10.0])
    plan = plan_step(np.array([1, 1, -1], np.float32), acct, prices, np.array([1e6, 1e6, 100.0]), FINRL)
    assert [(o.index, o.side, o.kind) for o in plan.orders] == [
        (2, "sell", "sell"),
        (0, "buy", "buy"),
        (1, "buy", "buy"),
    ]
    proceeds = 10 * 10.0 * (1 - 0.003)
    first = proceeds / 1.003 / 100.0 * 0.9
    assert plan.buy_qty[0] == pytest.approx(first)
    assert plan.buy_capped_by_cash[0] and plan.buy_capped_by_cash[1]
    assert plan.after.cash == pytest.approx(proceeds * 0.1 * 0.1, rel=1e-9)  # each capped buy leaves 10 %
    assert plan.after.holdings[2] == 0 and plan.after.cooldown[2] == 0


def test_no_shorting_and_below_minimum_is_ignored() -> None:
    acct = _acct(1000.0, [0, 0, 0])
    plan = plan_step(np.array([-1, 0.00001, -0.5], np.float32), acct, ONES * 10, ONES, FINRL)
    assert plan.orders == []
    assert plan.after.cash == 1000.0 and not plan.after.holdings.any()


def test_buy_zeroed_below_minimum_when_cash_is_short() -> None:
    plan = plan_step(
        np.array([1, 0, 0], np.float32), _acct(1.0, [0, 0, 0]), np.array([100.0, 1, 1]), ONES * 10, FINRL
    )
    assert plan.buy_zeroed_below_min[0] and plan.buy_qty[0] == 0 and plan.after.cash == 1.0


def test_forced_sell_after_cooldown_and_explicit_sell_resets_it() -> None:
    acct = _acct(0.0, [2, 4, 0], [47, 47, 0])
    plan = plan_step(np.array([-0.5, 0, 0], np.float32), acct, ONES * 10, ONES, FINRL)
    assert plan.sell_qty[0] == 0.5 and plan.forced_sell_qty[0] == 0  # explicit sell resets cooldown first
    assert plan.forced_mask.tolist() == [False, True, False]
    assert plan.forced_sell_qty[1] == pytest.approx(0.2)
    assert plan.after.cooldown.tolist() == [0, 0, 0]
    hold = plan_step(np.zeros(3, np.float32), _acct(0.0, [2, 0, 0], [10, 0, 0]), ONES * 10, ONES, FINRL)
    assert hold.after.cooldown.tolist() == [11, 0, 0]  # only held assets count up; buys don't reset


def test_min_cash_reserve_is_untouchable() -> None:
    plan = plan_step(np.array([1, 1, 1], np.float32), _acct(1000.0, [0, 0, 0]), ONES * 10, ONES * 1000, CAPPU)
    assert plan.after.cash >= 200.0 - 1e-9  # 20 % of the initial 1000 stays
    spent = plan_step(np.array([1, 0, 0], np.float32), _acct(150.0, [0, 0, 0]), ONES * 10, ONES * 1000, CAPPU)
    assert spent.orders == [] and spent.after.cash == 150.0


def test_inputs_are_not_mutated_and_bad_inputs_refused() -> None:
    acct = _acct(100.0, [1, 2, 3])
    raw = np.array([0.5, -0.5, 1], np.float32)
    plan_step(raw, acct, ONES * 10, ONES, FINRL)
    assert raw.tolist() == [0.5, -0.5, 1] and acct.holdings.tolist() == [1, 2, 3]
    with pytest.raises(InvariantViolation, match="non-finite"):
        plan_step(np.array([np.nan, 0, 0], np.float32), acct, ONES * 10, ONES, FINRL)
    with pytest.raises(InvariantViolation, match="non-finite"):
        plan_step(raw, acct, np.array([np.inf, 1, 1]), ONES, FINRL)
    with pytest.raises(InvariantViolation, match="shapes"):
        plan_step(raw[:2], acct, ONES * 10, ONES, FINRL)
