"""The demo's training reward: the env's own reward plus a cash-balance term (a risk budget).

Why: trained for a minute on a driftless synthetic market, a plain actor learns little beyond a fixed
sign per coin, so it buys until the $1,000 are gone and then can only log dropped orders. A real desk
would give it a risk budget; ours is "keep about ``target`` of the equity in cash", charged every step
as ``weight * equity * (cash_share - target)**2`` USD (scaled by ``norm_reward`` like the env's reward).
The actor sees its cash in the state, so it can learn to buy when cash is plentiful and sell when it
runs short; whether and when it trades is still entirely the actor's decision. Only training uses it:
the daemon, ``replay`` and the evaluation run the unshaped env. A minute of PPO learns the budget only
in part; the main lever against the all-in first bars is the small ``norm_action`` (see params.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from cappuccino_daemon.policy.envsim import TradingEnv

CASH_TARGET = 0.5
CASH_WEIGHT = 0.5
TRAIN_REWARD = (
    f"env reward - {CASH_WEIGHT} * equity * (cash_share - {CASH_TARGET})**2 * norm_reward "
    "(demo cash budget; evaluation and serving use the env reward)"
)


class CashBudgetEnv:
    """Wraps :class:`TradingEnv`; same ``reset``/``step`` contract, shaped reward."""

    def __init__(self, env: TradingEnv, target: float = CASH_TARGET, weight: float = CASH_WEIGHT) -> None:
        self.env = env
        self.target = target
        self.weight = weight

    def penalty(self) -> float:
        """Reward units charged for the current cash share (0 at the target)."""
        equity = self.env.total_asset
        if not equity > 0:
            return 0.0
        share = self.env.cash / equity
        return self.weight * equity * (share - self.target) ** 2 * self.env.norms.reward

    def reset(self) -> npt.NDArray[np.float32]:
        return self.env.reset()

    def step(
        self, raw_action: npt.NDArray[np.float32]
    ) -> tuple[npt.NDArray[np.float32], float, bool, dict[str, Any]]:
        state, reward, done, info = self.env.step(raw_action)
        return state, reward - self.penalty(), done, info
