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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cappuccino_daemon.model.checkpoint import ACTOR_FILE, N_FEATURES_DEFAULT
from cappuccino_daemon.model.spec import FEATURES_11

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


STUB_NET_DIM = 8
STUB_LOOKBACK = 1
STUB_NORM_EXPS = {"cash": -12, "stocks": -8, "tech": -15, "reward": -10}  # trial_7's normalisation
STUB_NORM_ACTION = 10000.0
# Alpaca's crypto minimum order sizes (as emulator/symbols.py serves them); the stub buys below twice
# the minimum, so fee or rounding dust it cannot sell never stops it trading.
STUB_MIN_ORDER = {"BTC": 1e-4, "ETH": 1e-3, "LTC": 1e-2, "AAVE": 1e-2, "AVAX": 0.1, "LINK": 0.1, "UNI": 0.1}


def stub_actor(tickers: tuple[str, ...]) -> dict[str, Any]:
    """The legacy ActorPPO state_dict (``net.0 / net.2 / net.4``) with hand-set weights (see the doc of
    ``write_trading_stub``): hidden unit j sees coin j's normalised holding."""
    import torch

    n = len(tickers)
    state_dim = 1 + n + STUB_LOOKBACK * len(FEATURES_11) * n
    w0 = torch.zeros(STUB_NET_DIM, state_dim)
    w2 = torch.zeros(STUB_NET_DIM, STUB_NET_DIM)
    w4 = torch.zeros(n, STUB_NET_DIM)
    norm_stocks = 2.0 ** STUB_NORM_EXPS["stocks"]
    for j, ticker in enumerate(tickers):
        w0[j, 1 + j] = 1.0
        w2[j, j] = 1.0
        # tanh(2 - w * holding_state) turns negative (sell) at twice the coin's minimum order size
        w4[j, j] = -1.0 / (STUB_MIN_ORDER.get(ticker, 0.1) * norm_stocks)
    return {
        "net.0.weight": w0,
        "net.0.bias": torch.zeros(STUB_NET_DIM),
        "net.2.weight": w2,
        "net.2.bias": torch.zeros(STUB_NET_DIM),
        "net.4.weight": w4,
        "net.4.bias": torch.full((n,), 2.0),
        "a_std_log": torch.full((1, n), -0.5),
    }


def write_trading_stub(folder: Path, tickers: tuple[str, ...]) -> Path:
    """A trial folder (``actor.pth`` + pinned manifest) whose actor trades every bar, for tests and the soak.

    The weights are set, not trained: for each coin the action is ``tanh(2 - holding / min_order)``, i.e.
    buy (about +0.96) while the virtual account holds none of the coin (or only dust below twice the
    coin's minimum order size, which it could not sell) and sell everything (-1) once it holds a real
    position, so the worker buys on one bar and sells on the next and both order sides are exercised,
    for as many bars as the test or soak runs.
    """
    import torch

    from cappuccino_daemon.model.checkpoint import sha256_file
    from cappuccino_daemon.model.manifest import (
        Manifest,
        ManifestArchitecture,
        ManifestNormalisation,
        ManifestProfile,
        ManifestSource,
        write_manifest,
    )

    folder.mkdir(parents=True, exist_ok=True)
    actor = folder / "actor.pth"
    torch.save(stub_actor(tickers), actor)
    n = len(tickers)
    norms = {name: 2.0**exp for name, exp in STUB_NORM_EXPS.items()}
    manifest = Manifest(
        created_utc=datetime.now(UTC).isoformat(),
        source=ManifestSource(origin="manual", number=7),
        architecture=ManifestArchitecture(
            state_dim=1 + n + STUB_LOOKBACK * len(FEATURES_11) * n,
            net_dim=STUB_NET_DIM,
            action_dim=n,
            n_hidden_layers=2,
        ),
        tickers=list(tickers),
        timeframe="1h",
        lookback=STUB_LOOKBACK,
        features=list(FEATURES_11),
        normalisation=ManifestNormalisation(action=STUB_NORM_ACTION, **norms),
        env_profile=ManifestProfile(
            name="cappuccino-nov2025",
            initial_capital=1000.0,
            buy_cost_pct=0.0025,
            sell_cost_pct=0.0025,
            safety_factor=0.99,
            min_cash_reserve=0.1,
            minimum_qty=[0.0055, 0.033, 1.1e-05][:n],
            forced_sell_cooldown_steps=48,
            forced_sell_fraction=0.05,
        ),
        params={"lookback": STUB_LOOKBACK, "net_dimension": STUB_NET_DIM, "norm_action": STUB_NORM_ACTION}
        | {f"norm_{k}_exp": v for k, v in STUB_NORM_EXPS.items()},
        actor_sha256=sha256_file(actor),
        notes=["hand-weighted test stub: buys a coin it does not hold, sells one it holds; not a strategy"],
    )
    write_manifest(folder, manifest)
    return folder
