"""TradingEnv + planner reproduce the upstream CryptoEnvAlpaca fixtures bit for bit (open loop)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from policy_golden import ROLLOUTS, TRAJECTORIES, load_golden, norms_from_sidecar, profile_from_sidecar

from cappuccino_daemon.errors import InvariantViolation
from cappuccino_daemon.policy.envsim import TradingEnv


def _env(fixtures_dir: Path, name: str) -> tuple[TradingEnv, dict[str, np.ndarray]]:
    arrays, sidecar = load_golden(fixtures_dir, name)
    env = TradingEnv(
        arrays["price_array"],
        arrays["tech_array"],
        sidecar["lookback"],
        norms_from_sidecar(sidecar),
        profile_from_sidecar(sidecar),
    )
    return env, arrays


@pytest.mark.parametrize("name", TRAJECTORIES + ROLLOUTS)
def test_open_loop_reproduces_every_array_exactly(fixtures_dir: Path, name: str) -> None:
    env, d = _env(fixtures_dir, name)
    assert np.array_equal(env.action_norm_vector, d["action_norm_vector"])
    assert env.max_step == len(d["price_array"]) - env.lookback - 1
    state = env.reset()
    assert state.dtype == np.float32
    assert np.array_equal(state, d["state_reset"])
    steps = len(d["raw_action"])
    for k in range(steps):
        assert np.array_equal(state, d["state_before"][k]), f"state before step {k}"
        raw = d["raw_action"][k].copy()
        state, reward, done, info = env.step(raw)
        assert np.array_equal(raw, d["raw_action"][k]), "step must not mutate the caller's action"
        plan = info["plan"]
        assert info["time"] == d["bar_index"][k]
        assert np.array_equal(plan.prices, d["fill_price"][k])
        assert np.array_equal(plan.scaled_action, d["scaled_action"][k]), k
        assert env.cash == d["cash_after"][k], k
        assert env.stocks.dtype == np.float32
        assert np.array_equal(env.stocks, d["stocks_after"][k]), k
        assert np.array_equal(env.stocks_cooldown, d["cooldown_after"][k]), k
        assert env.total_asset == d["total_asset_after"][k]
        assert env.total_asset_eqw == d["total_asset_eqw_after"][k]
        assert env.gamma_return == d["gamma_return_after"][k]
        assert reward == d["reward"][k], k
        assert done == bool(d["done"][k])
        if "sell_qty" in d:  # rollouts decompose every trade
            assert np.array_equal(plan.sell_qty, d["sell_qty"][k]), k
            assert np.array_equal(plan.forced_sell_qty, d["forced_sell_qty"][k]), k
            assert np.array_equal(plan.buy_qty, d["buy_qty"][k]), k
            assert np.array_equal(plan.buy_capped_by_cash, d["buy_capped_by_cash"][k]), k
            assert np.array_equal(plan.buy_zeroed_below_min, d["buy_zeroed_below_min"][k]), k
    assert done
    if "state_after_last" in d:
        assert np.array_equal(state, d["state_after_last"])
    with pytest.raises(InvariantViolation):
        env.step(d["raw_action"][0].copy())


def test_forced_sells_happen_in_the_hold_phase(fixtures_dir: Path) -> None:
    """Trajectory (a) holds for 70 steps so cooldowns reach 48: the 5 % rule must fire there."""
    env, d = _env(fixtures_dir, TRAJECTORIES[0])
    env.reset()
    forced = 0
    for k in range(len(d["raw_action"])):
        _, _, _, info = env.step(d["raw_action"][k].copy())
        forced += int(info["plan"].forced_mask.sum())
    assert forced >= 7  # sidecar events: 7 forced 5 % sells


def test_second_episode_resets_benchmark_unless_quirk(fixtures_dir: Path) -> None:
    env, d = _env(fixtures_dir, TRAJECTORIES[1])
    for _ in range(2):
        env.reset()
        rewards = []
        for k in range(3):
            _, reward, _, _ = env.step(d["raw_action"][k].copy())
            rewards.append(reward)
        assert rewards == list(d["reward"][:3])  # fresh benchmark each episode
    assert np.array_equal(env.reset(), d["state_reset"])


def test_too_short_window_is_refused(fixtures_dir: Path) -> None:
    _, sidecar = load_golden(fixtures_dir, TRAJECTORIES[0])
    arrays, _ = load_golden(fixtures_dir, TRAJECTORIES[0])
    with pytest.raises(ValueError, match="2\\*lookback\\+1"):
        TradingEnv(
            arrays["price_array"][:6],
            arrays["tech_array"][:6],
            3,
            norms_from_sidecar(sidecar),
            profile_from_sidecar(sidecar),
        )
