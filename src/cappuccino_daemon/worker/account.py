"""The virtual sub-account: what the model sees as its cash and holdings, fed by REAL fills.

The model was trained on an account of ``profile.initial_capital`` (e.g. $1,000) whatever the broker
account holds, so the state uses this account, not the broker's. It follows the training env's money
rules on real fill prices and quantities (:func:`cappuccino_daemon.policy.ledger.book_fill`). Alpaca
charges its fee in the received coin, so the broker position ends up slightly below the virtual
holding; reconciliation then clamps the virtual holding down to the broker's
(:func:`~cappuccino_daemon.policy.ledger.clamp_to_broker`: the broker is the truth for what we own).
This module only loads and stores the account.

Persistence: the journal's newest account snapshot IS the account; every change is one snapshot,
committed together with the fill that caused it.
"""

from __future__ import annotations

import numpy as np

from cappuccino_daemon.journal.store import AccountRecord, Journal
from cappuccino_daemon.policy.ledger import AccountState


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
