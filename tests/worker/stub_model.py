"""A tiny hand-weighted legacy PPO actor written into a trial folder, so the worker tests need no ../shared.

The folder has exactly what a user's training run leaves (``actor.pth`` as a plain state_dict and a
``cappuccino_manifest.json`` pinned to its sha256), so the real loader, the CLI worker subprocess and
the restricted ``torch.load(weights_only=True)`` path all run on it. The weights are set, not trained:
for each coin the action is ``tanh(2 - 1e7 * holding_state)``, i.e. buy (about +0.96) while the virtual
account holds none of the coin and sell everything (-1) once it holds any. The worker therefore buys on
one bar and sells on the next, deterministically, which exercises both order sides.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import torch
from torch import nn

from cappuccino_daemon.model.checkpoint import sha256_file
from cappuccino_daemon.model.manifest import (
    Manifest,
    ManifestArchitecture,
    ManifestNormalisation,
    ManifestProfile,
    ManifestSource,
    write_manifest,
)
from cappuccino_daemon.model.spec import FEATURES_11

NET_DIM = 8
LOOKBACK = 1
NORM_EXPS = {"cash": -12, "stocks": -8, "tech": -15, "reward": -10}  # trial_7's normalisation
NORM_ACTION = 10000.0


def stub_actor(tickers: tuple[str, ...]) -> nn.Sequential:
    """``net.0 / net.2 / net.4`` as the legacy ActorPPO names them; hand-set weights (see module doc)."""
    n = len(tickers)
    state_dim = 1 + n + LOOKBACK * len(FEATURES_11) * n
    net = nn.Sequential(
        nn.Linear(state_dim, NET_DIM),
        nn.ReLU(),
        nn.Linear(NET_DIM, NET_DIM),
        nn.ReLU(),
        nn.Linear(NET_DIM, n),
    )
    with torch.no_grad():
        for layer in (net[0], net[2], net[4]):
            assert isinstance(layer, nn.Linear)
            layer.weight.zero_()
            layer.bias.zero_()
        for j in range(n):
            net[0].weight[j, 1 + j] = 1.0  # hidden unit j sees coin j's normalised holding
            net[2].weight[j, j] = 1.0
            net[4].weight[j, j] = -1e7
        net[4].bias.fill_(2.0)
    return net


def write_stub_model(folder: Path, tickers: tuple[str, ...]) -> Path:
    """Write ``actor.pth`` + manifest into ``folder`` (a ``trial_<n>_1h`` name) and return it."""
    folder.mkdir(parents=True, exist_ok=True)
    net = stub_actor(tickers)
    state = {f"net.{k}": v for k, v in net.state_dict().items()}
    state["a_std_log"] = torch.full((1, len(tickers)), -0.5)
    actor = folder / "actor.pth"
    torch.save(state, actor)
    n = len(tickers)
    norms = {name: 2.0**exp for name, exp in NORM_EXPS.items()}
    manifest = Manifest(
        created_utc=datetime.now(UTC).isoformat(),
        source=ManifestSource(origin="manual", number=7),
        architecture=ManifestArchitecture(
            state_dim=1 + n + LOOKBACK * len(FEATURES_11) * n,
            net_dim=NET_DIM,
            action_dim=n,
            n_hidden_layers=2,
        ),
        tickers=list(tickers),
        timeframe="1h",
        lookback=LOOKBACK,
        features=list(FEATURES_11),
        normalisation=ManifestNormalisation(action=NORM_ACTION, **norms),
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
        params={"lookback": LOOKBACK, "net_dimension": NET_DIM, "norm_action": NORM_ACTION}
        | {f"norm_{k}_exp": v for k, v in NORM_EXPS.items()},
        actor_sha256=sha256_file(actor),
        notes=["hand-weighted test stub: buys a coin it does not hold, sells one it holds; not a strategy"],
    )
    write_manifest(folder, manifest)
    return folder
