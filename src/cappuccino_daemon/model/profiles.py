"""Named training-environment profiles.

A profile pins what the training env did with money: capital, fees, the buy safety factor, the cash
reserve and the per-position minimum quantities. The manifest records a model's profile; replay flags
may override it. Minimums are taken BY POSITION in the state, exactly as the upstream env slices its
limits list (``LIMITS[:n] * 1.1``), whatever the ticker names are (fixtures README §2).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from cappuccino_daemon.errors import ConfigError
from cappuccino_daemon.model.spec import EnvProfile

# FinRL_Crypto config_main.ALPACA_LIMITS (written for AAVE, AVAX, BTC, NEAR, LINK, ETH, LTC, MATIC, UNI, SOL).
FINRL_CRYPTO_LIMITS: tuple[float, ...] = (0.01, 0.10, 0.0001, 0.1, 0.1, 0.001, 0.01, 10, 0.1, 0.01)
# Cappuccino Nov-2025 config order AAVE, AVAX, BTC, LINK, ETH, LTC and a leftover MATIC slot (the
# env indexes them by position, not by name). Decision: use these by position like the env did; the
# live worker applies the broker's own min_order_size / increments on top.
CAPPUCCINO_NOV2025_LIMITS: tuple[float, ...] = (0.005, 0.03, 0.00001, 0.1, 0.0003, 0.01, 0.2)
MIN_QTY_SAFETY = 1.1

FINRL_CRYPTO = "finrl-crypto"
CAPPUCCINO_NOV2025 = "cappuccino-nov2025"
PROFILE_NAMES: tuple[str, ...] = (FINRL_CRYPTO, CAPPUCCINO_NOV2025)
# A legacy trial folder with Cappuccino-style params (norm_*_exp) but no manifest.
DEFAULT_PROFILE_FOR_LEGACY = CAPPUCCINO_NOV2025


def _minimums(limits: tuple[float, ...], n_tickers: int, profile: str) -> tuple[float, ...]:
    if n_tickers > len(limits):
        raise ConfigError(
            f"Profile {profile!r} knows minimum quantities for {len(limits)} positions but the model "
            f"trades {n_tickers} tickers. Record explicit minimum_qty in the model's manifest "
            "(cappuccino_manifest.json, env_profile.minimum_qty)."
        )
    return tuple(float(x) * MIN_QTY_SAFETY for x in limits[:n_tickers])


def get_profile(
    name: str,
    n_tickers: int,
    params: Mapping[str, Any] | None = None,
    capital: float | None = None,
) -> EnvProfile:
    """The named profile for ``n_tickers`` positions; ``capital`` overrides the initial capital."""
    params = params or {}
    if name == FINRL_CRYPTO:
        profile = EnvProfile(
            name=FINRL_CRYPTO,
            initial_capital=1_000_000.0,
            buy_cost_pct=0.003,
            sell_cost_pct=0.003,
            safety_factor=0.9,
            min_cash_reserve=0.0,
            minimum_qty=_minimums(FINRL_CRYPTO_LIMITS, n_tickers, name),
        )
    elif name == CAPPUCCINO_NOV2025:
        profile = EnvProfile(
            name=CAPPUCCINO_NOV2025,
            initial_capital=1000.0,
            buy_cost_pct=0.0025,
            sell_cost_pct=0.0025,
            safety_factor=0.99,
            min_cash_reserve=float(params.get("min_cash_reserve", 0.0)),
            minimum_qty=_minimums(CAPPUCCINO_NOV2025_LIMITS, n_tickers, name),
        )
    else:
        raise ConfigError(f"Unknown environment profile {name!r}; choose one of: {', '.join(PROFILE_NAMES)}.")
    if capital is not None:
        if not (math.isfinite(capital) and capital > 0):
            raise ConfigError(
                f"--capital must be a positive number of USD, got {capital}; e.g. --capital 1000."
            )
        profile = EnvProfile(**{**profile.__dict__, "initial_capital": float(capital)})
    return profile
