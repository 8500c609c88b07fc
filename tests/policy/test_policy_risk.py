"""The risk rules alone (policy/risk.py): breaches, marks across UTC days, and what each limit cuts."""

from __future__ import annotations

import numpy as np

from cappuccino_daemon.config import RiskLimits
from cappuccino_daemon.policy.planner import PlannedOrder
from cappuccino_daemon.policy.risk import Marks, find_breach, limit_orders

PRICES = np.array([100.0, 10.0, 1.0])
NONE_HELD = np.zeros(3, dtype=np.float32)


def test_drawdown_is_measured_from_the_peak_and_the_days_loss_from_its_first_equity() -> None:
    marks = Marks(1000.0, "2024-03-01", 1000.0).after(1200.0, "2024-03-01")
    assert (marks.peak, marks.day_start) == (1200.0, 1000.0)
    limits = RiskLimits(max_drawdown=0.3, daily_loss=0.05)
    assert find_breach(limits, 1100.0, marks) is None  # 8.3 % below peak, up on the day
    breach = find_breach(limits, 950.0, marks.after(950.0, "2024-03-01"))
    assert breach is not None and breach.limit == "daily_loss" and round(breach.value, 6) == 0.05
    next_day = marks.after(950.0, "2024-03-02")  # a new UTC day starts from its first equity
    assert next_day.day_start == 950.0 and find_breach(limits, 950.0, next_day) is None
    marks = Marks(1200.0, "2024-03-02", 950.0).after(900.0, "2024-03-02")
    breach = find_breach(RiskLimits(max_drawdown=0.2, daily_loss=0.05), 900.0, marks)  # both: drawdown first
    assert breach is not None and breach.limit == "max_drawdown" and breach.value == 0.25
    assert "25.00%" in breach.describe()


def test_a_halt_cuts_buys_and_lets_sells_through() -> None:
    orders = [PlannedOrder(0, "sell", 1.0, "sell"), PlannedOrder(1, "buy", 2.0, "buy")]
    kept, cuts = limit_orders(orders, PRICES, NONE_HELD, 1000.0, RiskLimits(), "halt")
    assert kept == orders[:1]
    assert [(c.index, c.kept, c.limit) for c in cuts] == [(1, 0.0, "halted")]


def test_flatten_sells_every_holding_whatever_the_plan() -> None:
    held = np.array([0.5, 0.0, 3.0], dtype=np.float32)
    kept, cuts = limit_orders(
        [PlannedOrder(1, "buy", 5.0, "buy")], PRICES, held, 1000.0, RiskLimits(), "flatten"
    )
    assert kept == [PlannedOrder(0, "sell", 0.5, "sell"), PlannedOrder(2, "sell", 3.0, "sell")] and cuts == []


def test_position_fraction_counts_what_is_already_held_and_notional_caps_one_buy() -> None:
    held = np.array([1.0, 0.0, 0.0], dtype=np.float32)  # 100 USD of coin 0 already
    limits = RiskLimits(max_position_fraction=0.15, max_notional_per_order=30.0)
    orders = [PlannedOrder(0, "buy", 1.0, "buy"), PlannedOrder(1, "buy", 10.0, "buy")]
    kept, cuts = limit_orders(orders, PRICES, held, 1000.0, limits, None)
    assert kept == [PlannedOrder(0, "buy", 0.3, "buy"), PlannedOrder(1, "buy", 3.0, "buy")]
    assert [c.limit for c in cuts] == ["max_notional_per_order", "max_notional_per_order"]
    kept, cuts = limit_orders(orders, PRICES, held, 1000.0, RiskLimits(max_position_fraction=0.1), None)
    assert kept == [orders[1]] and [(c.index, c.kept, c.limit) for c in cuts] == [
        (0, 0.0, "max_position_fraction")
    ]


def test_max_orders_per_bar_keeps_the_plans_order_sells_first() -> None:
    orders = [
        PlannedOrder(2, "sell", 1.0, "sell"),
        PlannedOrder(0, "buy", 0.1, "buy"),
        PlannedOrder(1, "buy", 1.0, "buy"),
    ]
    kept, cuts = limit_orders(orders, PRICES, NONE_HELD, 1000.0, RiskLimits(max_orders_per_bar=2), None)
    assert kept == orders[:2] and [(c.index, c.limit) for c in cuts] == [(1, "max_orders_per_bar")]
