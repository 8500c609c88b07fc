"""Closed loop: the real actor driving TradingEnv reproduces the golden rollouts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from policy_golden import ROLLOUTS, load_golden, norms_from_sidecar, profile_from_sidecar

from cappuccino_daemon.policy.envsim import TradingEnv


@pytest.mark.parametrize("name", ROLLOUTS)
def test_actor_in_the_loop_makes_the_same_decisions(fixtures_dir: Path, name: str) -> None:
    from cappuccino_daemon.model.actor import load_policy

    d, sidecar = load_golden(fixtures_dir, name)
    policy = load_policy(fixtures_dir / sidecar["checkpoint"]["folder"])
    env = TradingEnv(
        d["price_array"],
        d["tech_array"],
        sidecar["lookback"],
        norms_from_sidecar(sidecar),
        profile_from_sidecar(sidecar),
    )
    state = env.reset()
    for k in range(len(d["raw_action"])):
        action = policy.act(state)
        assert np.abs(action - d["raw_action"][k]).max() <= 1e-5, k
        state, _, done, info = env.step(action)
        plan = info["plan"]
        # Same decisions: the same assets bought, sold and force-sold on every step.
        assert np.array_equal(plan.sell_qty > 0, d["sell_qty"][k] > 0), k
        assert np.array_equal(plan.forced_sell_qty > 0, d["forced_sell_qty"][k] > 0), k
        assert np.array_equal(plan.buy_qty > 0, d["buy_qty"][k] > 0), k
        assert env.total_asset == pytest.approx(d["total_asset_after"][k], rel=1e-6), k
    assert done
