"""The money rules: fees, the env's buy cap, live order sizing, booking real fills, the broker clamp.

The golden test proves the live path against the training env: booking a plan's orders one fill at a
time (what the worker does with real fills) lands on the env's account bit for bit.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from policy_golden import ROLLOUTS, load_golden, profile_from_sidecar

from cappuccino_daemon.model.spec import EnvProfile
from cappuccino_daemon.policy.ledger import (
    BROKER_CASH_MARGIN,
    BUY_PRICE_BUFFER,
    AccountState,
    book_buy,
    book_fill,
    book_sell,
    clamp_to_broker,
    env_buy,
    exceeds_broker,
    floor_qty,
    max_buy_qty,
    reserve_buy,
    size_live_buy,
    size_live_sell,
    with_cooldown,
)
from cappuccino_daemon.policy.planner import StepPlan, plan_step

FINRL = EnvProfile("finrl-crypto", 1_000_000.0, 0.003, 0.003, 0.9, 0.0, (0.011, 0.11, 0.00011))
CAPPU = EnvProfile("cappuccino-nov2025", 1000.0, 0.0025, 0.0025, 0.99, 0.2, (0.0055, 0.033, 0.000011))
ONES = np.ones(3)
STEP = Decimal("0.001")


def _acct(cash: float, holdings: list[float], cooldown: list[float] | None = None) -> AccountState:
    return AccountState(cash, np.array(holdings, np.float32), np.array(cooldown or [0, 0, 0], np.float32))


def _book_orders(
    account: AccountState, plan: StepPlan, prices: np.ndarray, profile: EnvProfile
) -> AccountState:
    """What the live worker does: the plan's cooldown at decision time, then one booking per fill."""
    booked = with_cooldown(account, plan.after.cooldown)
    for order in plan.orders:
        booked = book_fill(booked, order.index, order.side, order.qty, float(prices[order.index]), profile)
    return booked


# -- fees and the env's buy rule ------------------------------------------------------------------------
def test_fees_come_off_sells_and_on_top_of_buys_and_holdings_stay_float32() -> None:
    assert book_sell(3.0, 10.0, 2.0, 100.0, FINRL) == (1.0, 10.0 + 200.0 * (1 - 0.003))
    assert book_buy(1.0, 1000.0, 2.0, 100.0, FINRL) == (3.0, 1000.0 - 200.0 * (1 + 0.003))
    assert book_buy(1.0, 1000.0, 0.0, 100.0, FINRL) == (1.0, 1000.0)
    held, _ = book_buy(0.0, 0.0, 0.1, 1.0, FINRL)
    assert held == float(np.float32(0.1)) != 0.1


def test_env_buy_is_capped_by_cash_after_fee_and_safety_factor() -> None:
    cap = max_buy_qty(1000.0, 10.0, FINRL)
    assert cap == pytest.approx(1000.0 / 1.003 / 10.0 * 0.9)
    assert 10.0 * cap * 1.003 == pytest.approx(1000.0 * 0.9)
    assert env_buy(1000.0, 1000.0, 10.0, 0.011, FINRL) == (cap, True, False)  # (qty, capped, zeroed)
    assert env_buy(5.0, 1000.0, 10.0, 0.011, FINRL) == (5.0, False, False)


def test_env_buy_zeroes_below_the_minimum_and_never_spends_the_reserve() -> None:
    assert env_buy(1.0, 1.0, 100.0, 0.011, FINRL) == (0.0, True, True)
    assert max_buy_qty(150.0, 10.0, CAPPU) == 0.0  # below the 20 % reserve of 1000: nothing to spend
    assert max_buy_qty(700.0, 10.0, CAPPU) == pytest.approx(500.0 / 1.0025 / 10.0 * 0.99)
    assert env_buy(1.0, -5.0, 10.0, 0.011, FINRL) == (0.0, True, True)


# -- booking fills (the live path) -----------------------------------------------------------------
def test_book_fill_applies_the_env_fees_and_leaves_the_cooldown() -> None:
    acct = _acct(1000.0, [0, 1.5, 0], [0, 7, 0])
    bought = book_fill(acct, 0, "buy", 2.0, 100.0, CAPPU)
    assert bought.cash == 1000.0 - 200.0 * 1.0025
    assert bought.holdings.tolist() == [2.0, 1.5, 0.0] and bought.holdings.dtype == np.float32
    assert bought.cooldown.tolist() == [0, 7, 0]
    sold = book_fill(bought, 1, "sell", 0.5, 40.0, CAPPU)
    assert sold.cash == bought.cash + 20.0 * 0.9975
    assert sold.holdings.tolist() == [2.0, 1.0, 0.0]
    assert acct.holdings.tolist() == [0, 1.5, 0] and acct.cash == 1000.0  # inputs untouched


def test_book_fill_clips_a_sell_to_the_holding() -> None:
    acct = _acct(0.0, [0.25, 0, 0])
    sold = book_fill(acct, 0, "sell", 1.0, 100.0, FINRL)
    assert sold.holdings[0] == 0.0
    assert sold.cash == 100.0 * 0.25 * 0.997  # only what was held is credited


@pytest.mark.parametrize("name", ROLLOUTS)
def test_booking_the_plan_fill_by_fill_reproduces_the_env_bit_for_bit(fixtures_dir: Path, name: str) -> None:
    d, sidecar = load_golden(fixtures_dir, name)
    profile = profile_from_sidecar(sidecar)
    anv = d["action_norm_vector"]
    for k in range(len(d["raw_action"])):
        acct = AccountState(
            float(d["cash_before"][k]),
            d["stocks_before"][k],
            d["cooldown_after"][k - 1] if k else np.zeros_like(d["stocks_before"][0]),
        )
        plan = plan_step(d["raw_action"][k], acct, d["fill_price"][k], anv, profile)
        booked = _book_orders(acct, plan, plan.prices, profile)
        assert booked.cash == plan.after.cash == d["cash_after"][k], k
        assert np.array_equal(booked.holdings, d["stocks_after"][k]), k
        assert np.array_equal(booked.cooldown, d["cooldown_after"][k]), k


def test_booking_floored_quantities_at_real_prices() -> None:
    acct = _acct(10_000.0, [1.23456, 0, 0], [5, 0, 0])
    plan = plan_step(np.array([-1, 1, 0], np.float32), acct, np.array([100.0, 50.0, 1.0]), ONES * 10, FINRL)
    floored = replace(
        plan, sell_qty=np.floor(plan.sell_qty * 1e4) / 1e4, buy_qty=np.floor(plan.buy_qty * 1e3) / 1e3
    )
    booked = _book_orders(acct, floored, np.array([99.0, 51.0, 1.0]), FINRL)
    assert booked.holdings[0] == np.float32(float(np.float32(1.23456)) - 1.2345)
    assert booked.holdings[1] == np.float32(floored.buy_qty[1])
    expected = 10_000.0 + 99.0 * 1.2345 * 0.997 - 51.0 * floored.buy_qty[1] * 1.003
    assert booked.cash == pytest.approx(expected, rel=1e-12)
    assert booked.cooldown.tolist() == [0, 0, 0]


# -- sizing live orders ---------------------------------------------------------------------------
def test_live_buy_is_the_env_cap_at_a_buffered_price_floored() -> None:
    worst = 100.0 * (1 + BUY_PRICE_BUFFER)
    sizing = size_live_buy(10.0, 100.0, 700.0, 1e6, STEP, Decimal("0.001"), CAPPU)
    assert not sizing.dropped
    assert sizing.qty == floor_qty(max_buy_qty(700.0, worst, CAPPU), STEP) == Decimal("4.888")
    # Filled 1 % worse than the decision close, it still leaves the reserve and the safety margin.
    assert 700.0 - worst * float(sizing.qty) * 1.0025 >= 200.0 + 500.0 * (1 - 0.99)
    assert size_live_buy(2.5, 100.0, 700.0, 1e6, STEP, Decimal("0.001"), CAPPU).qty == Decimal("2.5")


def test_live_buy_is_capped_by_the_broker_cash() -> None:
    sizing = size_live_buy(10.0, 100.0, 1e6, 300.0, STEP, Decimal("0.001"), FINRL)
    assert sizing.qty == Decimal("2.955")
    assert float(sizing.qty) * 100.0 * (1 + BUY_PRICE_BUFFER) <= 300.0 * BROKER_CASH_MARGIN + 1e-9


def test_live_buy_drops_below_the_minimums() -> None:
    below_size = size_live_buy(0.005, 100.0, 1000.0, 1e6, STEP, Decimal("0.01"), FINRL)
    assert below_size.qty == 0 and below_size.reason == "below_min_order_size"
    assert below_size.detail == {"planned": 0.005, "capped": 0.005, "min_order_size": "0.01"}
    below_notional = size_live_buy(0.05, 100.0, 1000.0, 1e6, STEP, Decimal("0.001"), FINRL)
    assert below_notional.reason == "below_min_notional" and below_notional.detail == {"notional": 5.0}
    in_reserve = size_live_buy(1.0, 100.0, 150.0, 1e6, STEP, Decimal("0.001"), CAPPU)
    assert in_reserve.reason == "below_min_order_size" and in_reserve.detail["capped"] == 0.0
    overdrawn = size_live_buy(1.0, 100.0, -5.0, 1e6, STEP, Decimal("0.001"), FINRL)
    assert overdrawn.reason == "below_min_order_size" and overdrawn.detail["capped"] == 0.0
    no_broker_cash = size_live_buy(1.0, 100.0, 1000.0, -1.0, STEP, Decimal("0.001"), FINRL)
    assert no_broker_cash.reason == "below_min_order_size"


def test_each_sent_buy_reserves_its_cost_so_the_next_is_capped_by_the_rest() -> None:
    first = size_live_buy(3.0, 100.0, 700.0, 1000.0, STEP, Decimal("0.001"), CAPPU)
    assert first.qty == Decimal("3")
    cash, broker_cash = reserve_buy(700.0, 1000.0, float(first.qty), 100.0, CAPPU)
    assert cash == 700.0 - 300.0 * 1.0025  # the virtual account pays the fee in USD
    assert broker_cash == 700.0  # the broker takes its fee in the coin
    second = size_live_buy(10.0, 100.0, cash, broker_cash, STEP, Decimal("0.001"), CAPPU)
    assert second.qty == floor_qty(max_buy_qty(cash, 101.0, CAPPU), STEP) < Decimal("3")


def test_live_sell_never_exceeds_the_broker_position() -> None:
    assert size_live_sell(0.7, Decimal("0.5"), Decimal("0.0001"), Decimal("0.0001")).qty == Decimal("0.5")
    assert size_live_sell(0.123456, Decimal(1), Decimal("0.0001"), Decimal(0)).qty == Decimal("0.1234")
    dust = size_live_sell(0.7, Decimal("0.00005"), Decimal("0.0001"), Decimal("0.0001"))
    assert dust.reason == "below_min_order_size" and dust.qty == 0
    assert dust.detail == {"planned": 0.7, "broker_position": "0.00005", "min_order_size": "0.0001"}
    nothing_held = size_live_sell(0.7, Decimal(0), Decimal("0.0001"), Decimal(0))
    assert nothing_held.dropped


# -- the clamp to the broker position ---------------------------------------------------------
def test_clamp_lowers_a_virtual_holding_to_the_broker_position() -> None:
    acct = _acct(500.0, [1.0, 0.5, 0.0], [3, 4, 0])
    assert exceeds_broker(1.0, 0.99)
    clamped = clamp_to_broker(acct, 0, 0.99)
    assert clamped.holdings.tolist() == [np.float32(0.99), 0.5, 0.0]
    assert clamped.cash == 500.0 and clamped.cooldown.tolist() == [3, 4, 0]
    assert acct.holdings[0] == 1.0
    # A broker position above the virtual holding is someone else's coin: never added.
    assert not exceeds_broker(0.5, 0.7)
    assert clamp_to_broker(acct, 1, 0.7).holdings[1] == 0.5


def test_rounding_between_float32_and_decimal_is_not_a_drift() -> None:
    virtual = float(np.float32(0.1))  # 0.10000000149...
    assert not exceeds_broker(virtual, float(Decimal("0.1")))
    assert not exceeds_broker(5e-10, 0.0)  # dust below a billionth of a coin
    assert exceeds_broker(virtual, 0.0999)
