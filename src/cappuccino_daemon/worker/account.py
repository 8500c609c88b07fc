"""The virtual sub-account: what the model sees as its cash and holdings, fed by REAL fills.

The model was trained on an account of ``profile.initial_capital`` (e.g. $1,000) whatever the broker
account holds, so the state uses this account, not the broker's. It follows the training env's money
rules on real fill prices and quantities: a buy of q at p costs ``p*q*(1+buy_cost_pct)`` and adds q
coins; a sell of q adds ``p*q*(1-sell_cost_pct)``. Alpaca charges its fee in the received coin, so the
broker position ends up slightly below the virtual holding; reconciliation then clamps the virtual
holding down to the broker's (the broker is the truth for what we own).

Persistence: the journal's newest account snapshot IS the account; every change is one snapshot,
committed together with the fill that caused it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from cappuccino_daemon.journal.store import AccountRecord, Journal
from cappuccino_daemon.model.spec import EnvProfile
from cappuccino_daemon.policy.planner import AccountState


def from_record(record: AccountRecord | None, capital: float, n: int) -> AccountState:
    if record is None:
        return AccountState.initial(capital, n)
    if len(record.holdings) != n:
        from cappuccino_daemon.errors import ConfigError

        raise ConfigError(
            f"The journal's virtual account has {len(record.holdings)} positions but the model trades {n}. "
            "The journal belongs to another model: pass --journal with a fresh path or move the old one "
            "aside."
        )
    return AccountState(
        float(record.cash),
        np.asarray(record.holdings, dtype=np.float32),
        np.asarray(record.cooldown, dtype=np.float32),
    )


def load_account(journal: Journal, capital: float, n: int) -> AccountState:
    return from_record(journal.latest_account(), capital, n)


def as_tuple(account: AccountState) -> tuple[float, list[float], list[float]]:
    return float(account.cash), [float(h) for h in account.holdings], [float(c) for c in account.cooldown]


def book_fill(
    account: AccountState, index: int, side: str, qty: float, price: float, profile: EnvProfile
) -> AccountState:
    """The account after one real fill, with the env's fee arithmetic (cooldown untouched)."""
    holdings = np.array(account.holdings, dtype=np.float32)
    cash = float(account.cash)
    if side == "sell":
        q = min(float(qty), float(holdings[index]))
        holdings[index] = np.float32(max(0.0, float(holdings[index]) - q))
        cash += price * q * (1 - profile.sell_cost_pct)
    else:
        holdings[index] = np.float32(float(holdings[index]) + float(qty))
        cash -= price * float(qty) * (1 + profile.buy_cost_pct)
    return AccountState(cash, holdings, np.array(account.cooldown, dtype=np.float32))


def with_cooldown(account: AccountState, cooldown: Sequence[float] | npt.NDArray[np.float32]) -> AccountState:
    return AccountState(
        account.cash, np.array(account.holdings, dtype=np.float32), np.asarray(cooldown, np.float32)
    )


def with_holding(account: AccountState, index: int, value: float) -> AccountState:
    holdings = np.array(account.holdings, dtype=np.float32)
    holdings[index] = np.float32(value)
    return AccountState(account.cash, holdings, np.array(account.cooldown, dtype=np.float32))
