"""``act`` calls the actor's linear layers directly (no nn.Module dispatch): it must be bit-identical to
the module's forward, the legacy ActorPPO the checkpoints were trained as."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from cappuccino_daemon.model.actor import load_policy
from cappuccino_daemon.model.testing import state_dim_for, write_tiny_actor


def test_act_is_bit_identical_to_the_module_forward(tmp_path: Path) -> None:
    write_tiny_actor(tmp_path, n_tickers=3, lookback=4, net_dim=64, seed=7)
    policy = load_policy(tmp_path)
    rng = np.random.default_rng(7)
    states = rng.normal(0.0, 3.0, size=(200, state_dim_for(3, 4))).astype(np.float32)
    with torch.inference_mode():
        want = [policy._module(torch.from_numpy(s).unsqueeze(0)).numpy()[0] for s in states]
    got = [policy.act(s) for s in states]
    assert all(g.dtype == np.float32 and g.tobytes() == w.tobytes() for g, w in zip(got, want, strict=True))
    assert len({g.tobytes() for g in got}) > 100  # the states really differ (not one saturated answer)
