"""The frozen description of a model that every later layer (state, planner, worker, replay) runs on.

``ModelSpec`` is produced by the model layer from the checkpoint's tensor shapes plus the manifest
(or a legacy ``best_trial``). Nothing downstream reads pickles, Optuna or raw params again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

# The 11 per-ticker features of the Nov-2025 Cappuccino / FinRL_Crypto Alpaca pipeline, in state order.
FEATURES_11: tuple[str, ...] = (
    "open",
    "high",
    "low",
    "close",
    "volume",
    "macd",
    "macd_signal",
    "macd_hist",
    "rsi",
    "cci",
    "dx",
)

# Training arrays iterate tickers alphabetically (FinRL_Crypto sorts its download by ticker).
DEFAULT_TRAINING_TICKERS: tuple[str, ...] = ("AAVE", "AVAX", "BTC", "ETH", "LINK", "LTC", "UNI")


@dataclass(frozen=True)
class Normalisation:
    """Scalars the training env multiplied into the state (values, not exponents)."""

    cash: float
    stocks: float
    tech: float
    reward: float
    action: float  # norm_action, used by the action normaliser


@dataclass(frozen=True)
class EnvProfile:
    """A named set of training-environment parameters (capital, fees, minimums, cooldown rule)."""

    name: str
    initial_capital: float
    buy_cost_pct: float
    sell_cost_pct: float
    safety_factor: float
    min_cash_reserve: float  # fraction of initial capital buys may not touch (0 in FinRL_Crypto)
    minimum_qty: tuple[float, ...]  # per state position, already including the env's x1.1
    forced_sell_cooldown_steps: int = 48
    forced_sell_fraction: float = 0.05


@dataclass(frozen=True)
class TrialSource:
    """Where the params came from: (study, number) is the key; trial_id is the global DB id."""

    study: str | None
    number: int | None
    trial_id: int | None
    origin: str  # "manifest" | "best_trial" | "defaults"


@dataclass(frozen=True)
class ModelSpec:
    model_dir: Path
    algorithm: str  # "ppo"
    state_dim: int
    net_dim: int
    action_dim: int
    n_hidden_layers: int
    tickers: tuple[str, ...]  # state order, bare bases such as "BTC"
    lookback: int
    features: tuple[str, ...]
    timeframe: str  # "1h"
    norms: Normalisation
    profile: EnvProfile
    source: TrialSource
    action_normaliser: str = "order-of-magnitude"  # norm_action / 10**floor(log10(p0))
    params: dict[str, Any] = field(default_factory=dict)
    user_attrs: dict[str, Any] = field(default_factory=dict)
    actor_sha256: str = ""
    warnings: tuple[str, ...] = ()
    # False only for ``inspect`` on a legacy model nobody recorded the tickers of (``tickers`` is empty);
    # every serving path refuses such a model before a spec exists.
    tickers_known: bool = True

    @property
    def n_tickers(self) -> int:
        return len(self.tickers)

    @cached_property
    def model_id(self) -> str:
        """Short stable id used in client_order_ids, journal names and logs (symlinks resolved once: a
        tournament asks for it many times a bar, and the id must not move while the process runs)."""
        name = self.model_dir.resolve().name
        return f"{name}-{self.actor_sha256[:8]}" if self.actor_sha256 else name


class Policy(Protocol):
    """A deterministic actor: float32 state (state_dim,) -> float32 action in [-1, 1] (action_dim,)."""

    def act(self, state: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]: ...
