"""Raw action -> the training env's trades, as pure functions (model_formats.md §3.1).

Order and rules of ``CryptoEnvAlpaca.step``: cooldown +1 for every held asset; explicit sells in
ascending index where ``scaled < -min_qty`` (up to the holding, resets the cooldown); forced sells of
``forced_sell_fraction`` of the holding where the cooldown reached ``forced_sell_cooldown_steps``;
buys in ascending index where ``scaled > min_qty``, capped by cash after fees, the safety factor and
the untouchable ``min_cash_reserve`` share of the initial capital, and zeroed below the minimum.

The money in each step (fees, the buy cap, float32 holdings) follows :mod:`.ledger`; this module owns
what the action means (which trades, in which order, and the cooldown). Dtypes follow the env so results
are bit-identical: holdings and cooldowns float32, cash float64, ``scaled = float32(float64(raw) *
anv)``, sell sizes float32, buy sizes float64 or the float32 action.

Shared by the replay engine, the env simulator (training) and the live worker, which floors the
planned quantities to broker increments, sizes sells from the broker position, and books the real
fills with :func:`.ledger.book_fill` (the cooldown it takes from ``StepPlan.after``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from cappuccino_daemon.errors import InvariantViolation
from cappuccino_daemon.model.spec import EnvProfile
from cappuccino_daemon.policy.ledger import AccountState, book_buy, book_sell, env_buy
from cappuccino_daemon.policy.normaliser import scale_action

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
Kind = Literal["sell", "forced_sell", "buy"]
f32 = np.float32


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


@dataclass
class _Books:
    """One step's working copy of the account: Python floats holding the env's float32 values."""

    cash: float
    stocks: list[float]
    cool: list[float]


@dataclass
class _Buys:
    qty: list[float]
    capped: list[bool]
    zeroed: list[bool]


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
    px = px_arr.tolist()
    want = scaled.tolist()  # float32 values, exactly, as Python floats
    books = _Books(float(account.cash), account.holdings.tolist(), account.cooldown.tolist())
    _tick_cooldowns(books)
    sell = _explicit_sells(books, want, px, profile)
    forced, forced_mask = _forced_sells(books, px, profile)
    buys = _buys(books, want, px, profile)
    after = AccountState(
        books.cash, np.array(books.stocks, dtype=np.float32), np.array(books.cool, dtype=np.float32)
    )
    return StepPlan(
        raw,
        scaled,
        px_arr,
        np.array(sell),
        np.array(forced),
        np.array(forced_mask),
        np.array(buys.qty),
        np.array(buys.capped),
        np.array(buys.zeroed),
        account,
        after,
    )


def _tick_cooldowns(books: _Books) -> None:
    """Every held asset's cooldown counts one more step (float32, as the env)."""
    stocks, cool = books.stocks, books.cool
    for i, held in enumerate(stocks):
        if held > 0:
            cool[i] = float(f32(cool[i] + 1))


def _explicit_sells(books: _Books, want: list[float], px: list[float], profile: EnvProfile) -> list[float]:
    """Sell up to the holding where the action is below ``-minimum``; a sell resets the cooldown."""
    minq, stocks, cool = profile.minimum_qty, books.stocks, books.cool
    sell = [0.0] * len(want)
    for i, w in enumerate(want):
        if w < -minq[i] and stocks[i] > 0 and px[i] > 0:
            q = min(stocks[i], -w)
            cool[i] = 0.0
            stocks[i], books.cash = book_sell(stocks[i], books.cash, q, px[i], profile)
            sell[i] = q
    return sell


def _forced_sells(books: _Books, px: list[float], profile: EnvProfile) -> tuple[list[float], list[bool]]:
    """Sell ``forced_sell_fraction`` of every holding whose cooldown ran out, and restart the cooldown."""
    stocks, cool = books.stocks, books.cool
    fraction = float(f32(profile.forced_sell_fraction))
    forced = [0.0] * len(stocks)
    mask = [False] * len(stocks)
    for i, c in enumerate(cool):
        if c >= profile.forced_sell_cooldown_steps:
            q = float(f32(stocks[i] * fraction))
            cool[i] = 0.0
            stocks[i], books.cash = book_sell(stocks[i], books.cash, q, px[i], profile)
            forced[i] = q
            mask[i] = True
    return forced, mask


def _buys(books: _Books, want: list[float], px: list[float], profile: EnvProfile) -> _Buys:
    """Buy where the action is above the minimum, in index order, each capped by the cash left."""
    n = len(want)
    minq, stocks = profile.minimum_qty, books.stocks
    out = _Buys([0.0] * n, [False] * n, [False] * n)
    for i, w in enumerate(want):
        if w > minq[i] and px[i] > 0:
            qty, out.capped[i], out.zeroed[i] = env_buy(w, books.cash, px[i], minq[i], profile)
            stocks[i], books.cash = book_buy(stocks[i], books.cash, qty, px[i], profile)
            out.qty[i] = qty
    return out
