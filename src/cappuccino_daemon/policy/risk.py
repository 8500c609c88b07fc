"""Risk limits as pure rules: when a model's sub-account breaches a limit, and which orders a limit cuts.

No I/O here: ``worker/riskguard.py`` keeps the marks (peak equity, the UTC day's first equity) and the
halt in the model's journal and calls these. Equity is the virtual sub-account's at the decision bar's
closes, before its orders: the same figure the model sees, so a breach is judged on what it decided from.

Decisions the issue left open: both loss limits are fractions (one ``[risk]`` table fits any capital);
``max_notional_per_order`` and ``max_position_fraction`` cut buys only (a sell only lowers exposure, and
capping it would keep a losing model in the market longer); ``max_orders_per_bar`` keeps the plan's own
order, sells first (the env's order), so what it cuts are the last buys.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from cappuccino_daemon.config import RiskLimits
from cappuccino_daemon.policy.planner import PlannedOrder

HaltMode = Literal["halt", "flatten"]


@dataclass(frozen=True)
class Marks:
    """What the loss limits are measured from: the peak equity ever and the UTC day's first equity."""

    peak: float
    day: str  # YYYY-MM-DD (UTC) of ``day_start``
    day_start: float

    def after(self, equity: float, day: str) -> Marks:
        if day != self.day:
            return Marks(max(self.peak, equity), day, equity)
        return Marks(max(self.peak, equity), day, self.day_start)


@dataclass(frozen=True)
class Breach:
    limit: str  # max_drawdown | daily_loss | min_account_equity
    value: float  # the measured figure (a fraction, or USD for the account floor)
    threshold: float

    def describe(self) -> str:
        if self.limit == "min_account_equity":
            return f"account equity {self.value:,.2f} USD is below min_account_equity {self.threshold:,.2f}"
        return f"{self.limit} {self.value:.2%} reached the limit {self.threshold:.2%}"


@dataclass(frozen=True)
class Cut:
    """One order a limit shortened (``kept`` > 0) or removed (``kept`` == 0)."""

    index: int
    side: str
    qty: float
    kept: float
    limit: str


def find_breach(limits: RiskLimits, equity: float, marks: Marks) -> Breach | None:
    """The first loss limit this equity breaches (drawdown before the day's loss), or None."""
    if limits.max_drawdown is not None and marks.peak > 0:
        drawdown = 1.0 - equity / marks.peak
        if drawdown >= limits.max_drawdown:
            return Breach("max_drawdown", drawdown, limits.max_drawdown)
    if limits.daily_loss is not None and marks.day_start > 0:
        loss = 1.0 - equity / marks.day_start
        if loss >= limits.daily_loss:
            return Breach("daily_loss", loss, limits.daily_loss)
    return None


def limit_orders(
    orders: Sequence[PlannedOrder],
    prices: npt.NDArray[np.float64],
    holdings: npt.NDArray[np.float32],
    equity: float,
    limits: RiskLimits,
    halted: HaltMode | None,
) -> tuple[list[PlannedOrder], list[Cut]]:
    """The orders the limits let through, and each cut with the limit that made it.

    Halted (``halt``): every buy is cut, sells pass. ``flatten``: the plan is replaced by a sell of every
    holding (the executor drops what is below the broker's minimum, as for any sell).
    """
    if halted == "flatten":
        return [PlannedOrder(i, "sell", float(q), "sell") for i, q in enumerate(holdings) if q > 0], []
    kept: list[PlannedOrder] = []
    cuts: list[Cut] = []
    for order in orders:
        qty, limit = _buy_cap(order, prices, holdings, equity, limits, halted)
        if limit is not None:
            cuts.append(Cut(order.index, order.side, order.qty, qty, limit))
        if qty > 0:
            kept.append(order if qty == order.qty else PlannedOrder(order.index, order.side, qty, order.kind))
    cap = limits.max_orders_per_bar
    if cap is not None and len(kept) > cap:
        cuts += [Cut(o.index, o.side, o.qty, 0.0, "max_orders_per_bar") for o in kept[cap:]]
        kept = kept[:cap]
    return kept, cuts


def _buy_cap(
    order: PlannedOrder,
    prices: npt.NDArray[np.float64],
    holdings: npt.NDArray[np.float32],
    equity: float,
    limits: RiskLimits,
    halted: HaltMode | None,
) -> tuple[float, str | None]:
    """A buy's quantity after the per-order limits, and the tightest limit that shortened it."""
    if order.side != "buy":
        return order.qty, None
    if halted is not None:
        return 0.0, "halted"
    price = float(prices[order.index])
    qty, limit = order.qty, None
    if limits.max_notional_per_order is not None and qty * price > limits.max_notional_per_order:
        qty, limit = limits.max_notional_per_order / price, "max_notional_per_order"
    if limits.max_position_fraction is not None:
        room = limits.max_position_fraction * max(equity, 0.0) / price - float(holdings[order.index])
        if qty > room:
            qty, limit = max(room, 0.0), "max_position_fraction"
    return qty, limit
