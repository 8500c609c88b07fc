"""Cappuccino-style hyper-parameters for the demo study, shrunk so a trial trains in seconds.

Names follow Cappuccino's Nov-2025 ``1_optimize_unified.py`` (``norm_*_exp`` exponents, ``norm_action``
as a value, ``net_dimension``, ``batch_size`` categorical ...) so ``trials`` / ``inspect`` read the demo
study exactly like a real one. Ranges are narrower than Cappuccino's: tiny nets, larger learning rates,
and a small ``norm_action``. A raw action of 1 buys ``norm_action * p / 10**floor(log10 p)`` USD of a
coin, i.e. 1 to 10 times ``norm_action``; over the seven demo coins a full-scale "buy everything" bar
costs about 16 * ``norm_action``. With 10-40 that is $160-$640 of the $1,000 account, so the account
fills over several bars, while one coin's full-scale order stays above Alpaca's $10 minimum.
(The previous 100-1000 let the first bar or two spend everything.)
"""

from __future__ import annotations

from typing import Any

from cappuccino_daemon.demo.ppo import PPOConfig
from cappuccino_daemon.model.spec import Normalisation

BATCH_SIZES: tuple[int, ...] = (128, 256, 512)
NORM_ACTION_RANGE: tuple[int, int, int] = (10, 40, 5)  # low, high, step


def suggest_params(trial: Any) -> dict[str, Any]:
    """Sample one trial's params through an ``optuna.Trial`` (recorded in the study DB)."""
    return {
        "learning_rate": trial.suggest_float("learning_rate", 1e-4, 3e-3, log=True),
        "batch_size": trial.suggest_categorical("batch_size", list(BATCH_SIZES)),
        "gamma": trial.suggest_float("gamma", 0.95, 0.99, step=0.01),
        "net_dimension": trial.suggest_int("net_dimension", 64, 128, step=64),
        "base_target_step": trial.suggest_int("base_target_step", 512, 1024, step=256),
        "lookback": trial.suggest_int("lookback", 1, 3),
        "norm_cash_exp": trial.suggest_int("norm_cash_exp", -12, -9),
        "norm_stocks_exp": trial.suggest_int("norm_stocks_exp", -8, -5),
        "norm_tech_exp": trial.suggest_int("norm_tech_exp", -16, -12),
        "norm_reward_exp": trial.suggest_int("norm_reward_exp", -10, -7),
        "norm_action": trial.suggest_int(
            "norm_action", NORM_ACTION_RANGE[0], NORM_ACTION_RANGE[1], step=NORM_ACTION_RANGE[2]
        ),
        "clip_range": trial.suggest_float("clip_range", 0.1, 0.3, step=0.05),
        "entropy_coef": trial.suggest_float("entropy_coef", 1e-4, 1e-2, log=True),
        "gae_lambda": trial.suggest_float("gae_lambda", 0.9, 0.98, step=0.02),
        "ppo_epochs": trial.suggest_int("ppo_epochs", 2, 6),
    }


def normalisation(params: dict[str, Any]) -> Normalisation:
    """Exponents → the scalar values the env multiplies into the state (Cappuccino: ``2 ** exp``)."""
    return Normalisation(
        cash=2.0 ** int(params["norm_cash_exp"]),
        stocks=2.0 ** int(params["norm_stocks_exp"]),
        tech=2.0 ** int(params["norm_tech_exp"]),
        reward=2.0 ** int(params["norm_reward_exp"]),
        action=float(params["norm_action"]),
    )


def ppo_config(params: dict[str, Any]) -> PPOConfig:
    return PPOConfig(
        net_dim=int(params["net_dimension"]),
        learning_rate=float(params["learning_rate"]),
        batch_size=int(params["batch_size"]),
        gamma=float(params["gamma"]),
        gae_lambda=float(params["gae_lambda"]),
        clip_range=float(params["clip_range"]),
        entropy_coef=float(params["entropy_coef"]),
        ppo_epochs=int(params["ppo_epochs"]),
        horizon=int(params["base_target_step"]),
    )
