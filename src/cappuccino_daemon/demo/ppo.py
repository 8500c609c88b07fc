"""A small, honest PPO (clipped surrogate, GAE, value baseline) for the legacy actor layout.

The environment is passed in as a factory so the demo trains on the project's own training env
(``policy.envsim.TradingEnv``) and never re-implements trading rules here. Training is bounded both by
a wall-time deadline (the demo's ``--seconds`` budget) and by ``max_updates`` (for deterministic runs).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import torch

from cappuccino_daemon.demo.nets import LOG_SQRT_2PI, ActorPPO, CriticPPO

FloatArray = npt.NDArray[np.float32]


class StepEnv(Protocol):
    """What PPO needs from an environment: a float state and a scalar reward per step."""

    def reset(self) -> Any: ...

    def step(self, raw_action: Any) -> Any: ...


EnvFactory = Callable[[int], StepEnv]  # start row of the episode window -> fresh env


@dataclass(frozen=True)
class PPOConfig:
    net_dim: int = 64
    learning_rate: float = 3e-4
    batch_size: int = 256
    gamma: float = 0.98
    gae_lambda: float = 0.95
    clip_range: float = 0.2
    entropy_coef: float = 0.0
    value_loss_coef: float = 0.5
    max_grad_norm: float = 0.5
    ppo_epochs: int = 4
    horizon: int = 1024  # env steps per rollout (target_step)
    adam_epsilon: float = 1e-8


@dataclass
class TrainReport:
    """What happened: counts, timing and the deterministic objective before and after training."""

    updates: int = 0
    env_steps: int = 0
    train_seconds: float = 0.0
    stopped_by: str = "max_updates"
    objective_before: float = float("nan")
    objective_after: float = float("nan")
    mean_rollout_reward: list[float] = field(default_factory=list)

    @property
    def steps_per_second(self) -> float:
        return self.env_steps / self.train_seconds if self.train_seconds > 0 else 0.0


def _unpack_step(result: Any) -> tuple[FloatArray, float, bool]:
    """Accept gym-style ``(state, reward, done, ...)`` tuples; the first three fields are all we use."""
    state, reward, done = result[0], result[1], result[2]
    return np.asarray(state, dtype=np.float32), float(reward), bool(done)


def deterministic_return(actor: ActorPPO, env: StepEnv) -> float:
    """Sum of env rewards when acting with ``actor.forward`` (the action the daemon would serve)."""
    state = np.asarray(env.reset(), dtype=np.float32)
    total, done = 0.0, False
    with torch.inference_mode():
        while not done:
            action = actor(torch.from_numpy(state).unsqueeze(0))[0].numpy()
            state, reward, done = _unpack_step(env.step(action.copy()))
            total += reward
    return total


class Adam:
    """Plain Adam (Kingma & Ba, bias-corrected).

    Ours rather than ``torch.optim.Adam`` only because constructing a torch optimizer imports
    ``torch._dynamo`` (2-4 s on 2 cores), a large share of a one-minute demo budget.
    """

    def __init__(
        self,
        params: list[torch.nn.Parameter],
        lr: float,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        self.params = params
        self.lr, self.betas, self.eps = lr, betas, eps
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]
        self.t = 0

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        self.t += 1
        b1, b2 = self.betas
        c1, c2 = 1 - b1**self.t, 1 - b2**self.t
        for p, m, v in zip(self.params, self.m, self.v, strict=True):
            if p.grad is None:
                continue
            m.mul_(b1).add_(p.grad, alpha=1 - b1)
            v.mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
            p.addcdiv_(m / c1, (v / c2).sqrt_().add_(self.eps), value=-self.lr)


class _NumpyGaussian:
    """A frozen float32 numpy copy of ``ActorPPO`` for fast single-state exploration."""

    def __init__(self, actor: ActorPPO) -> None:
        sd = {k: v.detach().numpy().copy() for k, v in actor.state_dict().items()}
        self.w = [(sd[f"net.{i}.weight"].T.copy(), sd[f"net.{i}.bias"]) for i in (0, 2, 4)]
        self.std_log = sd["a_std_log"][0]
        self.std = np.exp(self.std_log)
        self.action_dim = int(self.std.shape[0])
        self.logprob_const = float(-(self.std_log + LOG_SQRT_2PI).sum())

    def sample(self, state: FloatArray, rng: np.random.Generator) -> tuple[FloatArray, float]:
        h = np.maximum(state @ self.w[0][0] + self.w[0][1], 0.0)
        h = np.maximum(h @ self.w[1][0] + self.w[1][1], 0.0)
        mean = h @ self.w[2][0] + self.w[2][1]
        noise = rng.standard_normal(self.action_dim).astype(np.float32)
        logprob = self.logprob_const - 0.5 * float(np.dot(noise, noise))
        return (mean + noise * self.std).astype(np.float32), logprob


class PPOTrainer:
    """Collects rollouts from fresh env windows, then runs clipped-surrogate PPO epochs."""

    def __init__(
        self,
        state_dim: int,
        action_dim: int,
        config: PPOConfig,
        make_env: EnvFactory,
        episode_starts: npt.NDArray[np.int64],
        seed: int,
    ) -> None:
        if len(episode_starts) == 0:
            raise ValueError("PPOTrainer needs at least one episode start row")
        self.config = config
        self.make_env = make_env
        self.episode_starts = episode_starts
        torch.manual_seed(seed)
        self.rng = np.random.default_rng(seed)
        self.gen = torch.Generator().manual_seed(seed)
        self.actor = ActorPPO(config.net_dim, state_dim, action_dim)
        self.critic = CriticPPO(config.net_dim, state_dim)
        self.act_optim = Adam(list(self.actor.parameters()), lr=config.learning_rate, eps=config.adam_epsilon)
        self.cri_optim = Adam(
            list(self.critic.parameters()), lr=config.learning_rate, eps=config.adam_epsilon
        )
        self._env: StepEnv | None = None
        self._state: FloatArray | None = None

    def _new_episode(self) -> FloatArray:
        start = int(self.rng.choice(self.episode_starts))
        self._env = self.make_env(start)
        return np.asarray(self._env.reset(), dtype=np.float32)

    def collect(self) -> dict[str, torch.Tensor]:
        """One rollout of ``horizon`` steps (across episode boundaries), with GAE advantages.

        Acting runs on a numpy snapshot of the actor: per-step torch calls cost ~10x more than the env.
        """
        cfg = self.config
        n = cfg.horizon
        policy = _NumpyGaussian(self.actor)
        states: list[FloatArray] = []
        actions = np.zeros((n, policy.action_dim), dtype=np.float32)
        logprobs = np.zeros(n, dtype=np.float32)
        rewards = np.zeros(n, dtype=np.float64)
        dones = np.zeros(n, dtype=np.float64)
        state = self._state if self._state is not None else self._new_episode()
        for i in range(n):
            assert self._env is not None
            action, logprob = policy.sample(state, self.rng)
            states.append(state)
            actions[i] = action
            logprobs[i] = logprob
            state, reward, done = _unpack_step(self._env.step(np.tanh(action)))
            rewards[i] = reward
            dones[i] = float(done)
            if done:
                state = self._new_episode()
        self._state = state
        all_states = torch.from_numpy(np.stack([*states, state]))
        with torch.inference_mode():
            values = self.critic(all_states).numpy().astype(np.float64)
        advantages = np.zeros(n, dtype=np.float64)
        last = 0.0
        for i in range(n - 1, -1, -1):
            not_done = 1.0 - dones[i]
            delta = rewards[i] + cfg.gamma * values[i + 1] * not_done - values[i]
            last = delta + cfg.gamma * cfg.gae_lambda * not_done * last
            advantages[i] = last
        returns = advantages + values[:-1]
        return {
            "states": all_states[:-1],
            "actions": torch.from_numpy(actions),
            "logprobs": torch.from_numpy(logprobs),
            "advantages": torch.from_numpy(advantages.astype(np.float32)),
            "returns": torch.from_numpy(returns.astype(np.float32)),
            "mean_reward": torch.tensor(float(rewards.mean())),
        }

    def update(self, batch: dict[str, torch.Tensor]) -> None:
        cfg = self.config
        n = batch["states"].shape[0]
        adv = batch["advantages"]
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        for _ in range(cfg.ppo_epochs):
            order = torch.randperm(n, generator=self.gen)
            for lo in range(0, n, cfg.batch_size):
                idx = order[lo : lo + cfg.batch_size]
                logprob, entropy = self.actor.logprob_entropy(batch["states"][idx], batch["actions"][idx])
                ratio = (logprob - batch["logprobs"][idx]).exp()
                surrogate = torch.min(
                    ratio * adv[idx], ratio.clamp(1 - cfg.clip_range, 1 + cfg.clip_range) * adv[idx]
                )
                actor_loss = -(surrogate.mean() + cfg.entropy_coef * entropy.mean())
                self.act_optim.zero_grad()
                actor_loss.backward()
                torch.nn.utils.clip_grad_norm_(self.actor.parameters(), cfg.max_grad_norm)
                self.act_optim.step()

                value = self.critic(batch["states"][idx])
                critic_loss = cfg.value_loss_coef * (value - batch["returns"][idx]).pow(2).mean()
                self.cri_optim.zero_grad()
                critic_loss.backward()
                torch.nn.utils.clip_grad_norm_(self.critic.parameters(), cfg.max_grad_norm)
                self.cri_optim.step()

    def train(
        self,
        deadline: float,
        max_updates: int,
        objective_env: Callable[[], StepEnv] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> TrainReport:
        """Rollout + update until ``max_updates`` or the monotonic ``deadline`` (always >= 1 update)."""
        report = TrainReport()
        if objective_env is not None:
            report.objective_before = deterministic_return(self.actor, objective_env())
        t0 = monotonic()
        last_update_s = 0.0
        while report.updates < max_updates:
            started = monotonic()
            # Stop when the next update would overrun the budget (the first update always runs).
            if report.updates > 0 and started + last_update_s >= deadline:
                report.stopped_by = "deadline"
                break
            batch = self.collect()
            self.update(batch)
            report.updates += 1
            report.env_steps += self.config.horizon
            report.mean_rollout_reward.append(float(batch["mean_reward"]))
            last_update_s = monotonic() - started
        report.train_seconds = monotonic() - t0
        if objective_env is not None:
            report.objective_after = deterministic_return(self.actor, objective_env())
        return report
