"""Loading the golden trajectories and rollouts (shared by the tests in this folder)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from cappuccino_daemon.model.spec import EnvProfile, Normalisation

TRAJECTORIES = ("trajectories/traj_a_7tickers_L3", "trajectories/traj_b_BTC_ETH_LTC_L1")
ROLLOUTS = (
    "rollouts/roll_a_trial_12_1h_20210301",
    "rollouts/roll_a2_trial_12_1h_20210301_na1000",
    "rollouts/roll_b_trial_7_1h_20210601",
)


def load_golden(fixtures_dir: Path, name: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    with np.load(fixtures_dir / f"{name}.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    sidecar = json.loads((fixtures_dir / f"{name}.json").read_text())
    return arrays, sidecar


def profile_from_sidecar(sidecar: dict[str, Any]) -> EnvProfile:
    """The env's actual values (minimums by position, read from the sidecar, never from names)."""
    ev = sidecar["env_values_used"]
    return EnvProfile(
        name="fixture",
        initial_capital=float(ev["initial_capital"]),
        buy_cost_pct=ev["buy_cost_pct"],
        sell_cost_pct=ev["sell_cost_pct"],
        safety_factor=ev["safety_factor_stock_buy"],
        min_cash_reserve=0.0,
        minimum_qty=tuple(ev["minimum_qty_alpaca"][t] for t in sidecar["tickers"]),
        forced_sell_cooldown_steps=ev["forced_sell_cooldown_steps"],
        forced_sell_fraction=ev["forced_sell_fraction"],
    )


def norms_from_sidecar(sidecar: dict[str, Any]) -> Normalisation:
    ep = sidecar["env_params"]
    return Normalisation(
        ep["norm_cash"], ep["norm_stocks"], ep["norm_tech"], ep["norm_reward"], ep["norm_action"]
    )
