"""Raw action -> the training env's trades, as pure functions (model_formats.md §3.1).

Order and rules of ``CryptoEnvAlpaca.step``: cooldown +1 for every held asset; explicit sells in
ascending index where ``scaled < -min_qty`` (up to the holding, resets the cooldown); forced sells of
``forced_sell_fraction`` of the holding where the cooldown reached ``forced_sell_cooldown_steps``;
buys in ascending index where ``scaled > min_qty``, capped by cash after fees, the safety factor and
the untouchable ``min_cash_reserve`` share of the initial capital, and zeroed below the minimum.

Dtypes follow the env so results are bit-identical: holdings and cooldowns float32, cash float64,
``scaled = float32(float64(raw) * anv)``, sell sizes float32, buy sizes float64 or the float32 action.

Shared by the replay engine, the env simulator (training) and the live worker, which floors the
planned quantities to broker increments, sizes sells from the broker position, and then books the real
fills into its virtual account with :func:`apply_plan`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from cappuccino_daemon.errors import InvariantViolation
from cappuccino_daemon.model.spec import EnvProfile
from cappuccino_daemon.policy.normaliser import scale_action

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
Kind = Literal["sell", "forced_sell", "buy"]
f32 = np.float32


@dataclass(frozen=True)
class AccountState:
    """The (virtual) account the model sees: cash in USD, holdings in coins, cooldown in steps."""

    cash: float
    holdings: F32
    cooldown: F32

    @classmethod
    def initial(cls, capital: float, n: int) -> AccountState:
        return cls(float(capital), np.zeros(n, dtype=np.float32), np.zeros(n, dtype=np.float32))

    def equity(self, prices: F64) -> float:
        """``cash + sum(holdings * prices)`` with the env's dtypes (its ``total_asset``)."""
        return float(self.cash + (self.holdings * np.asarray(prices, dtype=np.float64)).sum())


@dataclass(frozen=True)
class PlannedOrder:
    index: int  # position in the state's ticker order
    side: Literal["buy", "sell"]
    qty: float  # coins
    kind: Kind


@dataclass(frozen=True)
class StepPlan:
    """Everything one env step decided, and the account it leaves if filled at ``prices``."""

    raw_action: F32
    scaled_action: F32
    prices: F64
    sell_qty: F64  # explicit sells
    forced_sell_qty: F64
    forced_mask: npt.NDArray[np.bool_]  # assets whose cooldown triggered a forced sell
    buy_qty: F64
    buy_capped_by_cash: npt.NDArray[np.bool_]
    buy_zeroed_below_min: npt.NDArray[np.bool_]
    before: AccountState
    after: AccountState

    @property
    def orders(self) -> list[PlannedOrder]:
        """Sells (explicit, then forced) before buys, each in ascending index: the env's order."""
        out: list[PlannedOrder] = []
        for i in np.flatnonzero(self.sell_qty > 0):
            out.append(PlannedOrder(int(i), "sell", float(self.sell_qty[i]), "sell"))
        for i in np.flatnonzero(self.forced_sell_qty > 0):
            out.append(PlannedOrder(int(i), "sell", float(self.forced_sell_qty[i]), "forced_sell"))
        for i in np.flatnonzero(self.buy_qty > 0):
            out.append(PlannedOrder(int(i), "buy", float(self.buy_qty[i]), "buy"))
        return out


def _check_inputs(raw: F32, account: AccountState, prices: F64, anv: F64, profile: EnvProfile) -> None:
    n = account.holdings.shape[0]
    shapes = (raw.shape, prices.shape, anv.shape, account.cooldown.shape)
    if shapes != ((n,),) * 4 or len(profile.minimum_qty) != n:
        raise InvariantViolation(
            f"planner shapes disagree with {n} holdings: {shapes}, minimums {len(profile.minimum_qty)}"
        )
    # A sum is NaN/inf when any term is (cheaper than isfinite().all() on every step).
    if not (
        math.isfinite(float(raw.sum())) and math.isfinite(float(prices.sum())) and math.isfinite(account.cash)
    ):
        raise InvariantViolation(f"non-finite planner input: raw={raw.tolist()} prices={prices.tolist()}")


def plan_step(raw_action: F32, account: AccountState, prices: F64, anv: F64, profile: EnvProfile) -> StepPlan:
    """Simulate one env step's trades at ``prices`` (the fill row's closes) without mutating inputs.

    Works on Python floats for speed; every float32 operation of the env is reproduced by rounding
    with ``f32`` at the same point. That is exact: float64 has more than 2*24+2 bits, so one +, - or *
    on float32 values computed in float64 and rounded to float32 equals the float32 operation.
    """
    raw = np.array(raw_action, dtype=np.float32)
    px_arr = np.asarray(prices, dtype=np.float64)
    _check_inputs(raw, account, px_arr, anv, profile)
    scaled = scale_action(raw, anv)
    n = raw.shape[0]
    px = px_arr.tolist()
    want = scaled.tolist()  # float32 values, exactly, as Python floats
    minq = profile.minimum_qty
    stocks = account.holdings.tolist()
    cool = account.cooldown.tolist()
    cash = float(account.cash)
    sell = [0.0] * n
    forced = [0.0] * n
    forced_mask = [False] * n
    buy = [0.0] * n
    capped = [False] * n
    zeroed = [False] * n
    keep_sell = 1 - profile.sell_cost_pct
    fee_buy = 1 + profile.buy_cost_pct
    fraction = float(f32(profile.forced_sell_fraction))

    for i in range(n):
        if stocks[i] > 0:
            cool[i] = float(f32(cool[i] + 1))
    for i in range(n):
        if want[i] < -minq[i] and stocks[i] > 0 and px[i] > 0:
            q = min(stocks[i], -want[i])
            cool[i] = 0.0
            stocks[i] = float(f32(stocks[i] - q))
            cash += px[i] * q * keep_sell
            sell[i] = q
    for i in range(n):
        if cool[i] >= profile.forced_sell_cooldown_steps:
            q = float(f32(stocks[i] * fraction))
            cool[i] = 0.0
            stocks[i] = float(f32(stocks[i] - q))
            cash += px[i] * q * keep_sell
            forced[i] = q
            forced_mask[i] = True
    reserve = account_reserve(profile)
    for i in range(n):
        if want[i] > minq[i] and px[i] > 0:
            avail = cash if reserve <= 0 else max(0.0, cash - reserve)
            max_q = (avail / fee_buy / px[i]) * profile.safety_factor
            qty = min(max_q, want[i])
            capped[i] = not want[i] < max_q
            if qty < minq[i]:
                qty = 0.0
                zeroed[i] = True
            stocks[i] = float(f32(stocks[i] + qty))
            cash -= px[i] * qty * fee_buy
            buy[i] = qty
    after = AccountState(cash, np.array(stocks, dtype=np.float32), np.array(cool, dtype=np.float32))
    return StepPlan(
        raw,
        scaled,
        px_arr,
        np.array(sell),
        np.array(forced),
        np.array(forced_mask),
        np.array(buy),
        np.array(capped),
        np.array(zeroed),
        account,
        after,
    )


def account_reserve(profile: EnvProfile) -> float:
    """USD of the initial capital that buys may never spend (Cappuccino's ``min_cash_reserve``)."""
    return float(profile.initial_capital) * float(profile.min_cash_reserve)


def apply_plan(
    account: AccountState, plan: StepPlan, profile: EnvProfile, prices: F64 | None = None
) -> AccountState:
    """Book a plan's quantities (possibly edited: floored, or real fills) at ``prices`` into ``account``.

    Same order, cooldown rule and arithmetic as the env, so an unedited plan filled at its own prices
    reproduces ``plan.after`` bit for bit. Quantities that would overdraw a holding are clipped to it.
    """
    px = plan.prices if prices is None else np.asarray(prices, dtype=np.float64)
    stocks = np.array(account.holdings, dtype=np.float32)
    cool = np.array(account.cooldown, dtype=np.float32)
    cash: float | np.float64 = account.cash
    keep_sell = 1 - profile.sell_cost_pct
    fee_buy = 1 + profile.buy_cost_pct
    cool[stocks > 0] += 1
    for i in np.flatnonzero(plan.sell_qty > 0):
        q = min(float(plan.sell_qty[i]), float(stocks[i]))
        cool[i] = 0
        stocks[i] = np.float32(np.float64(stocks[i]) - q)
        cash += px[i] * q * keep_sell
    for i in np.flatnonzero(plan.forced_mask):
        q = min(float(plan.forced_sell_qty[i]), float(stocks[i]))
        cool[i] = 0
        stocks[i] = np.float32(np.float64(stocks[i]) - q)
        cash += px[i] * q * keep_sell
    for i in np.flatnonzero(plan.buy_qty > 0):
        q = float(plan.buy_qty[i])
        stocks[i] = np.float32(np.float64(stocks[i]) + q)
        cash -= px[i] * q * fee_buy
    return AccountState(float(cash), stocks, cool)
