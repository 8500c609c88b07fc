"""The money rules, once: fees, buy sizing against cash, minimums, and the clamp to the broker.

Every place that moves money uses these functions, so the training env, replay and the live worker
cannot drift apart:

- the planner (:func:`~cappuccino_daemon.policy.planner.plan_step`, hence the env simulator and replay)
  books simulated trades with :func:`book_sell` / :func:`book_buy` (fees, float32 holdings) and sizes
  its buys with :func:`env_buy`;
- the live worker books each real fill with :func:`book_fill` (the same arithmetic on real prices),
  sizes broker orders with :func:`size_live_sell` / :func:`size_live_buy`, reserves the cash of a
  sent buy with :func:`reserve_buy`, and reconciliation clamps a virtual holding with
  :func:`clamp_to_broker`.

Pure: no I/O, no broker types (quantities the broker dictates, increments and minimum sizes, come in
as ``Decimal``). Dtypes follow the training env so results are bit-identical: holdings float32, cash
float64; one +, - or * of float32 values done in float64 and rounded to float32 equals the float32
operation, so Python floats rounded with ``np.float32`` at the env's points reproduce it exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, Decimal
from typing import Any

import numpy as np
import numpy.typing as npt

from cappuccino_daemon.model.spec import EnvProfile

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]

MIN_NOTIONAL_USD = 10.0  # Alpaca refuses USD-quoted crypto buys below $10 (its minimum notional)
BUY_PRICE_BUFFER = 0.01  # live buys are sized for a 1 % worse fill than the decision bar's close
BROKER_CASH_MARGIN = 0.995  # a live buy never asks for more than 99.5 % of the broker's cash
CLAMP_REL_TOLERANCE = 1e-6  # virtual above broker by less than this share is float32/decimal rounding
CLAMP_ABS_TOLERANCE = 1e-9  # coins; the same for holdings near zero


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


# -- fees and coins (scalar, one call per trade: the planner's inner loops call these) ------------------
def book_sell(
    holding: float, cash: float, qty: float, price: float, profile: EnvProfile
) -> tuple[float, float]:
    """``(holding, cash)`` after selling ``qty`` at ``price``: the fee comes off the proceeds, and the
    holding stays a float32 value (the env keeps holdings in float32)."""
    return float(np.float32(holding - qty)), cash + price * qty * (1 - profile.sell_cost_pct)


def book_buy(
    holding: float, cash: float, qty: float, price: float, profile: EnvProfile
) -> tuple[float, float]:
    """``(holding, cash)`` after buying ``qty`` at ``price``: the fee comes on top of the notional."""
    return float(np.float32(holding + qty)), cash - price * qty * (1 + profile.buy_cost_pct)


# -- buy sizing -------------------------------------------------------------------------------------
def max_buy_qty(cash: float, price: float, profile: EnvProfile) -> float:
    """Coins ``cash`` can buy at ``price`` after the fee, the safety factor and the reserve.

    The reserve is Cappuccino's ``min_cash_reserve`` share of the initial capital, which buys may never
    spend. Without a reserve the env divides the raw cash (negative cash gives a negative cap, which no
    minimum passes); with one, only cash above the reserve counts.
    """
    reserve = profile.initial_capital * profile.min_cash_reserve
    avail = cash if reserve <= 0 else max(0.0, cash - reserve)
    return (avail / (1 + profile.buy_cost_pct) / price) * profile.safety_factor


def env_buy(
    want: float, cash: float, price: float, minimum: float, profile: EnvProfile
) -> tuple[float, bool, bool]:
    """The training env's buy rule: ``min(want, max_buy_qty)``, zero when that is below ``minimum``.

    Returns ``(qty, capped_by_cash, zeroed_below_min)``; a plain tuple because the env makes one per
    buy per step.
    """
    cap = max_buy_qty(cash, price, profile)
    qty = min(cap, want)
    capped = not want < cap
    if qty < minimum:
        return 0.0, capped, True
    return qty, capped, False


# -- live orders: broker increments and minimums ----------------------------------------------------
def floor_qty(qty: float | Decimal, increment: Decimal) -> Decimal:
    """``qty`` floored onto the broker's ``min_trade_increment`` (never rounded up, never negative)."""
    value = Decimal(str(qty)) if not isinstance(qty, Decimal) else qty
    if value <= 0:
        return Decimal(0)
    if increment <= 0:
        return value
    return (value / increment).to_integral_value(rounding=ROUND_FLOOR) * increment


@dataclass(frozen=True)
class Sizing:
    """A live order's quantity, or why it is dropped (``reason``) with the figures that decided it."""

    qty: Decimal
    reason: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def dropped(self) -> bool:
        return self.reason is not None


def size_live_sell(
    planned: float, position_qty: Decimal, increment: Decimal, min_order_size: Decimal
) -> Sizing:
    """A sell never exceeds the broker position (Alpaca took its buy fee in the coin), floored."""
    qty = floor_qty(min(Decimal(str(planned)), position_qty), increment)
    if qty <= 0 or qty < min_order_size:
        detail = {
            "planned": planned,
            "broker_position": str(position_qty),
            "min_order_size": str(min_order_size),
        }
        return Sizing(Decimal(0), "below_min_order_size", detail)
    return Sizing(qty)


def size_live_buy(
    planned: float,
    price: float,
    cash: float,
    broker_cash: float,
    increment: Decimal,
    min_order_size: Decimal,
    profile: EnvProfile,
) -> Sizing:
    """A buy capped by the virtual cash (env rule, at a buffered price) and by the broker's cash.

    A market order fills at a price we only learn afterwards, so it is sized as if the fill were
    ``BUY_PRICE_BUFFER`` worse than ``price``; below the minimum size or Alpaca's minimum notional it
    is dropped.
    """
    worst = price * (1 + BUY_PRICE_BUFFER)
    cap = max(0.0, max_buy_qty(cash, worst, profile))
    broker_cap = max(0.0, broker_cash) * BROKER_CASH_MARGIN / worst
    want = min(planned, cap, broker_cap)
    qty = floor_qty(max(want, 0.0), increment)
    if qty <= 0 or qty < min_order_size:
        detail = {"planned": planned, "capped": want, "min_order_size": str(min_order_size)}
        return Sizing(Decimal(0), "below_min_order_size", detail)
    if float(qty) * price < MIN_NOTIONAL_USD:
        return Sizing(Decimal(0), "below_min_notional", {"notional": float(qty) * price})
    return Sizing(qty)


def reserve_buy(
    cash: float, broker_cash: float, qty: float, price: float, profile: EnvProfile
) -> tuple[float, float]:
    """Virtual and broker cash left once a sent buy is paid, so the next buy is capped by the rest.

    The virtual account pays the fee in USD; the broker takes it in the coin, so its cash pays only
    the notional.
    """
    return book_buy(0.0, cash, qty, price, profile)[1], broker_cash - qty * price


# -- booking into the virtual account ------------------------------------------------------------
def book_fill(
    account: AccountState, index: int, side: str, qty: float, price: float, profile: EnvProfile
) -> AccountState:
    """The account after one real fill, with the env's arithmetic (cooldown untouched).

    A sell larger than the holding is clipped to it (the virtual account never goes short).
    """
    holdings = np.array(account.holdings, dtype=np.float32)
    held = float(holdings[index])
    if side == "sell":
        held, cash = book_sell(held, account.cash, min(float(qty), held), price, profile)
    else:
        held, cash = book_buy(held, account.cash, float(qty), price, profile)
    holdings[index] = held
    return AccountState(float(cash), holdings, np.array(account.cooldown, dtype=np.float32))


def with_cooldown(account: AccountState, cooldown: Sequence[float] | F32) -> AccountState:
    """The account with the cooldown a plan decided (the live worker books fills, not the plan)."""
    return AccountState(
        account.cash, np.array(account.holdings, dtype=np.float32), np.asarray(cooldown, np.float32)
    )


def exceeds_broker(virtual: float, broker_qty: float) -> bool:
    """Whether a virtual holding is above the broker's position by more than rounding."""
    return virtual - broker_qty > max(CLAMP_ABS_TOLERANCE, virtual * CLAMP_REL_TOLERANCE)


def clamp_to_broker(account: AccountState, index: int, broker_qty: float) -> AccountState:
    """The account with holding ``index`` lowered to the broker's position (the broker is the truth
    for what we own; a broker position above the virtual holding is someone else's coin, kept out)."""
    holdings = np.array(account.holdings, dtype=np.float32)
    holdings[index] = np.float32(min(float(holdings[index]), broker_qty))
    return AccountState(account.cash, holdings, np.array(account.cooldown, dtype=np.float32))


def clamp_shares(
    holdings: Sequence[float], broker_qty: float, bought: Sequence[float] | None = None
) -> list[float]:
    """Each model's holding after the broker's shortfall on one symbol is shared out (many models, one
    account). Alpaca takes its fee in the coin, a fixed share of each buy, so the shortfall since the
    last reconciliation belongs to the models that bought since then, in proportion to what each bought
    (``bought``); without such buys, in proportion to what each holds. A single holder gets exactly the
    broker's position (the one-model rule)."""
    holders = [i for i, h in enumerate(holdings) if h > 0]
    if len(holders) <= 1:
        return [broker_qty if i in holders else float(h) for i, h in enumerate(holdings)]
    shortfall = float(sum(holdings)) - broker_qty
    weights = [max(0.0, float(b)) if h > 0 else 0.0 for b, h in zip(bought or [], holdings, strict=False)]
    if not weights or sum(weights) <= 0:
        weights = [max(0.0, float(h)) for h in holdings]
    total = sum(weights)
    return [max(0.0, float(h) - shortfall * w / total) for h, w in zip(holdings, weights, strict=True)]
