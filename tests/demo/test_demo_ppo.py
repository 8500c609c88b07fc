"""The demo's PPO pieces: legacy layout, consistent log-probabilities, real learning, budget, seeds."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cappuccino_daemon.demo.nets import ActorPPO, CriticPPO
from cappuccino_daemon.demo.ppo import PPOConfig, PPOTrainer, _NumpyGaussian

LEGACY_ACTOR_SHAPES = {
    "net.0.weight": (64, 37),
    "net.0.bias": (64,),
    "net.2.weight": (64, 64),
    "net.2.bias": (64,),
    "net.4.weight": (3, 64),
    "net.4.bias": (3,),
    "a_std_log": (1, 3),
}


class SignEnv:
    """Reward = a0*x0 - a1*x1: the best action is known (sign(x0), -sign(x1)), so learning is measurable."""

    def __init__(self, seed: int, n: int = 64) -> None:
        self.rng = np.random.default_rng(seed)
        self.n = n

    def reset(self) -> np.ndarray:
        self.k = 0
        self.x = self.rng.standard_normal(2).astype(np.float32)
        return self.x

    def step(self, a: np.ndarray) -> tuple[np.ndarray, float, bool, dict[str, object]]:
        reward = float(a[0] * self.x[0] - a[1] * self.x[1]) * 0.1
        self.k += 1
        self.x = self.rng.standard_normal(2).astype(np.float32)
        return self.x, reward, self.k >= self.n, {}


def _trainer(seed: int = 0, **cfg: object) -> PPOTrainer:
    config = PPOConfig(**{"net_dim": 32, "horizon": 256, "batch_size": 64, "learning_rate": 3e-3, **cfg})  # type: ignore[arg-type]
    return PPOTrainer(2, 2, config, lambda s: SignEnv(int(s)), np.arange(1000, dtype=np.int64), seed)


def test_actor_and_critic_have_the_legacy_state_dict_layout() -> None:
    actor = ActorPPO(64, 37, 3)
    got = {k: tuple(v.shape) for k, v in actor.state_dict().items()}
    assert got == LEGACY_ACTOR_SHAPES
    assert torch.allclose(actor.a_std_log, torch.full((1, 3), -0.5))
    critic = {k: tuple(v.shape) for k, v in CriticPPO(64, 37).state_dict().items()}
    assert critic == {
        **{k: v for k, v in LEGACY_ACTOR_SHAPES.items() if k != "a_std_log"},
        "net.4.weight": (1, 64),
        "net.4.bias": (1,),
    }
    s = torch.randn(5, 37)
    assert torch.equal(actor(s), actor.net(s).tanh())


def test_numpy_sampler_logprob_matches_the_torch_policy() -> None:
    torch.manual_seed(3)
    actor = ActorPPO(16, 6, 4)
    with torch.no_grad():
        actor.a_std_log.fill_(-1.2)
    fast = _NumpyGaussian(actor)
    rng = np.random.default_rng(0)
    for _ in range(5):
        state = rng.standard_normal(6).astype(np.float32)
        action, logprob = fast.sample(state, rng)
        ref, entropy = actor.logprob_entropy(torch.from_numpy(state)[None], torch.from_numpy(action)[None])
        assert logprob == pytest.approx(float(ref.detach()[0]), abs=1e-4)
    # Entropy of a diagonal Gaussian: sum(log std + 0.5*log(2*pi*e)).
    assert float(entropy.detach()[0]) == pytest.approx(
        4 * (-1.2 + 0.5 * math.log(2 * math.pi * math.e)), rel=1e-6
    )


def test_ppo_learns_a_task_with_a_known_optimum() -> None:
    trainer = _trainer()
    before = {k: v.clone() for k, v in trainer.actor.state_dict().items()}
    report = trainer.train(float("inf"), 15, objective_env=lambda: SignEnv(10**6, 200))
    assert report.updates == 15 and report.stopped_by == "max_updates"
    assert report.env_steps == 15 * 256
    # Random init scores about 0; the optimum is about +32 (200 steps * 0.1 * E|x| * 2).
    assert report.objective_after > report.objective_before + 8.0
    assert report.mean_rollout_reward[-1] > report.mean_rollout_reward[0]
    assert any(not torch.equal(before[k], v) for k, v in trainer.actor.state_dict().items())


def test_deadline_stops_training_but_one_update_always_runs() -> None:
    trainer = _trainer()
    report = trainer.train(deadline=0.0, max_updates=50)
    assert report.updates == 1
    assert report.stopped_by == "deadline"


def test_same_seed_same_weights_different_seed_different_weights() -> None:
    runs = []
    for seed in (5, 5, 6):
        trainer = _trainer(seed)
        trainer.train(float("inf"), 2)
        runs.append(trainer.actor.state_dict())
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])
    assert not torch.equal(runs[0]["net.0.weight"], runs[2]["net.0.weight"])


def test_own_adam_matches_torch_adam() -> None:
    from cappuccino_daemon.demo.ppo import Adam

    torch.manual_seed(0)
    ours, ref = torch.nn.Linear(4, 3), torch.nn.Linear(4, 3)
    ref.load_state_dict(ours.state_dict())
    initial = ours.weight.detach().clone()
    opt_ours = Adam(list(ours.parameters()), lr=1e-2, eps=1e-7)
    opt_ref = torch.optim.Adam(ref.parameters(), lr=1e-2, eps=1e-7)
    x, y = torch.randn(32, 4), torch.randn(32, 3)
    for _ in range(20):
        for model, opt in ((ours, opt_ours), (ref, opt_ref)):
            opt.zero_grad()
            (model(x) - y).pow(2).mean().backward()
            opt.step()
    for a, b in zip(ours.parameters(), ref.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)
    assert not torch.allclose(ours.weight, initial, atol=1e-3)
