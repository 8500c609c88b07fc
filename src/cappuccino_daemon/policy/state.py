"""The state vector exactly as ``CryptoEnvAlpaca.get_state`` builds it in training.

``[cash*norm_cash] ++ holdings*norm_stocks ++ tech[t]*norm_tech ++ ... ++ tech[t-L+1]*norm_tech``,
newest completed bar first, float32. The dtype path matters for bit parity: the holdings product is
taken in float32 (float32 array times a Python float under NumPy 2 promotion), cash and tech products
in float64, and everything is rounded to float32 once.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from cappuccino_daemon.errors import InvariantViolation
from cappuccino_daemon.model.spec import Normalisation


def state_dim(n_tickers: int, n_features: int, lookback: int) -> int:
    return 1 + n_tickers + n_tickers * n_features * lookback


def build_state(
    cash: float,
    holdings: npt.NDArray[np.float32],
    tech_rows_newest_first: npt.NDArray[np.float64],
    norms: Normalisation,
) -> npt.NDArray[np.float32]:
    """One float32 state; raises InvariantViolation on NaN/inf (never feed those to the actor)."""
    hold = np.asarray(holdings, dtype=np.float32)
    rows = np.asarray(tech_rows_newest_first, dtype=np.float64)
    if rows.ndim != 2:
        raise InvariantViolation(f"tech rows must be 2-D (lookback, 11n), got shape {rows.shape}")
    n = hold.shape[0]
    out = np.empty(1 + n + rows.size, dtype=np.float32)
    out[0] = float(cash) * float(norms.cash)
    out[1 : 1 + n] = hold * float(norms.stocks)
    out[1 + n :] = (rows * float(norms.tech)).ravel()
    if not np.isfinite(out).all():
        bad = np.flatnonzero(~np.isfinite(out))
        raise InvariantViolation(
            f"non-finite state entries at {bad[:10].tolist()} (cash={cash!r}, holdings={hold.tolist()}); "
            "refusing to run the actor on it"
        )
    return out


def state_from_tech_array(
    tech_array: npt.NDArray[np.float64],
    t: int,
    lookback: int,
    cash: float,
    holdings: npt.NDArray[np.float32],
    norms: Normalisation,
) -> npt.NDArray[np.float32]:
    """The state whose newest tech row is ``tech_array[t]`` (the env's ``get_state`` at time t)."""
    if t - lookback + 1 < 0 or t >= tech_array.shape[0]:
        raise InvariantViolation(
            f"state at row {t} needs rows {t - lookback + 1}..{t}; have {tech_array.shape[0]}"
        )
    return build_state(cash, holdings, tech_array[t - lookback + 1 : t + 1][::-1], norms)
