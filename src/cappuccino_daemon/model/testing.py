"""Tiny legacy trial folders made the way the training code makes them (for tests and bug reports).

``write_tiny_actor`` saves a legacy-ElegantRL ``ActorPPO`` state_dict (``net.0/2/4`` + ``a_std_log``)
with ``torch.save`` as ``AgentBase.save_or_load_agent`` does. ``write_best_trial`` runs one trial of an
in-memory Optuna study whose ``suggest_*`` calls pin the checkpoint's values, sets the user_attrs the
optimiser sets, and pickles the resulting ``FrozenTrial`` as ``best_trial`` (FinRL_Crypto's
``save_best_agent`` callback). Nothing here is used by the daemon itself.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cappuccino_daemon.model.checkpoint import ACTOR_FILE, N_FEATURES_DEFAULT

FINRL_CRYPTO_NORMS: dict[str, float] = {
    "norm_cash": 2.0**-12,
    "norm_stocks": 2.0**-8,
    "norm_tech": 2.0**-15,
    "norm_reward": 2.0**-10,
    "norm_action": 10000.0,
}
CAPPUCCINO_NORM_EXPS: dict[str, int] = {
    "norm_cash_exp": -12,
    "norm_stocks_exp": -8,
    "norm_tech_exp": -15,
    "norm_reward_exp": -10,
}


def state_dim_for(n_tickers: int, lookback: int, n_features: int = N_FEATURES_DEFAULT) -> int:
    """``1 + n + n * features * lookback``: cash, holdings, then the technical rows."""
    return 1 + n_tickers + n_tickers * n_features * lookback


def write_tiny_actor(
    folder: Path, n_tickers: int, lookback: int = 1, net_dim: int = 8, seed: int = 0
) -> Path:
    """``folder/actor.pth``: a small random legacy PPO actor (state_dict, plain tensors)."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    state = state_dim_for(n_tickers, lookback)
    shapes = {
        "net.0.weight": (net_dim, state),
        "net.0.bias": (net_dim,),
        "net.2.weight": (net_dim, net_dim),
        "net.2.bias": (net_dim,),
        "net.4.weight": (n_tickers, net_dim),
        "net.4.bias": (n_tickers,),
    }
    sd = {k: torch.randn(*s, generator=gen) * 0.1 for k, s in shapes.items()}
    sd["a_std_log"] = torch.zeros(1, n_tickers) - 0.5
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(sd, folder / ACTOR_FILE)
    return folder / ACTOR_FILE


def frozen_trial(params: Mapping[str, Any], user_attrs: Mapping[str, Any], value: float = 1.0) -> Any:
    """One COMPLETE trial of an in-memory study; each param is suggested so that it takes its value."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def objective(trial: optuna.Trial) -> float:
        for name, v in params.items():
            if isinstance(v, bool | str):
                trial.suggest_categorical(name, [v])
            elif isinstance(v, int):
                trial.suggest_int(name, v, v)
            else:
                trial.suggest_float(name, float(v), float(v))
        for name, attr in user_attrs.items():
            trial.set_user_attr(name, attr)
        return value

    study = optuna.create_study(direction="maximize")  # in-memory, study_name None, as FinRL_Crypto
    study.optimize(objective, n_trials=1)
    return study.best_trial


def finrl_crypto_params(net_dim: int, lookback: int) -> dict[str, Any]:
    """The params FinRL_Crypto's ``1_optimize_cpcv.py`` suggests (value norms, not exponents)."""
    return {
        "learning_rate": 0.0075,
        "batch_size": 1024,
        "gamma": 0.98,
        "net_dimension": net_dim,
        "target_step": 5000,
        "eval_time_gap": 60,
        "break_step": 45000,
        "lookback": lookback,
        **FINRL_CRYPTO_NORMS,
    }


def cappuccino_params(net_dim: int, lookback: int) -> dict[str, Any]:
    """Cappuccino-style params (``norm_*_exp``); its trials record no tickers."""
    return {"net_dimension": net_dim, "lookback": lookback, "norm_action": 100.0, **CAPPUCCINO_NORM_EXPS}


def write_best_trial(
    folder: Path,
    params: Mapping[str, Any],
    *,
    ticker_list: Sequence[str] | None = None,
    timeframe: str = "1h",
    extra_attrs: Mapping[str, Any] | None = None,
) -> Path:
    """``folder/best_trial``: a pickled real FrozenTrial; ``ticker_list`` as FinRL_Crypto stores it.

    ``extra_attrs`` adds more user_attrs (FinRL_Crypto also stores numpy arrays such as ``price_array``).
    """
    attrs: dict[str, Any] = {"model_name": "ppo", "timeframe": timeframe, "name_test": folder.name}
    attrs.update(extra_attrs or {})
    if ticker_list is not None:
        attrs["ticker_list"] = list(ticker_list)
    trial = frozen_trial(params, attrs)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "best_trial"
    with path.open("wb") as fh:
        pickle.dump(trial, fh, protocol=pickle.HIGHEST_PROTOCOL)
    return path
