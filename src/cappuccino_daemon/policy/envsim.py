"""A reimplementation of FinRL_Crypto's ``CryptoEnvAlpaca`` (HEAD 495a428, get_state fix included).

Bit-for-bit on the golden trajectories: ``reset()`` puts time at ``L-1``; ``step()`` advances time by
one, then trades at ``price_array[time]`` (decided on bars <= t, filled at the close of bar t+1);
``max_step = T - L - 1`` so an episode has ``T - 2L`` steps; the reward is
``(Δ total asset - Δ equal-weight benchmark) * norm_reward`` and the last step returns the accumulated
``gamma_return`` instead. Trades come from :mod:`cappuccino_daemon.policy.planner` (its money from
:mod:`cappuccino_daemon.policy.ledger`), states from :mod:`cappuccino_daemon.policy.state`, so training,
replay and live trading share one code path.

Deliberate differences, none of which touch the fixtures: ``step`` does not mutate the caller's
action array (the scaled action is in ``info``); stepping past ``done`` raises; and ``reset()`` also
resets the benchmark value and ``gamma_return`` (upstream carries them into the next episode) unless
``upstream_reset_quirk=True``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from cappuccino_daemon.errors import InvariantViolation
from cappuccino_daemon.model.spec import EnvProfile, Normalisation
from cappuccino_daemon.policy.ledger import AccountState
from cappuccino_daemon.policy.normaliser import action_norm_vector
from cappuccino_daemon.policy.planner import StepPlan, plan_step
from cappuccino_daemon.policy.state import state_from_tech_array


class TradingEnv:
    """``reset() -> state``; ``step(raw_action) -> (state, reward, done, info)``."""

    env_name = "MulticryptoEnv"
    if_discrete = False

    def __init__(
        self,
        price_array: npt.NDArray[np.float64],
        tech_array: npt.NDArray[np.float64],
        lookback: int,
        norms: Normalisation,
        profile: EnvProfile,
        p0: npt.NDArray[np.float64] | None = None,
        gamma: float = 0.99,
        upstream_reset_quirk: bool = False,
    ) -> None:
        self.price_array = np.ascontiguousarray(price_array, dtype=np.float64)
        self.tech_array = np.ascontiguousarray(tech_array, dtype=np.float64)
        n_rows, n = self.price_array.shape
        if self.tech_array.shape[0] != n_rows or self.tech_array.shape[1] % n:
            raise ValueError(
                f"tech_array {self.tech_array.shape} does not fit price_array {self.price_array.shape}"
            )
        if lookback < 1 or n_rows < 2 * lookback + 1:
            raise ValueError(
                f"need at least 2*lookback+1 = {2 * lookback + 1} rows for one step; got {n_rows}"
            )
        if len(profile.minimum_qty) != n:
            raise ValueError(f"profile has {len(profile.minimum_qty)} minimum quantities for {n} tickers")
        self.lookback = lookback
        self.norms = norms
        self.profile = profile
        self.gamma = gamma
        self.upstream_reset_quirk = upstream_reset_quirk
        self.initial_cash = profile.initial_capital
        self.p0 = np.asarray(self.price_array[0] if p0 is None else p0, dtype=np.float64)
        self.action_norm_vector = action_norm_vector(self.p0, norms.action)
        self.equal_weight_stock = (self.initial_cash / n) / self.price_array[0]
        self.crypto_num = n
        self.action_dim = n
        self.state_dim = 1 + n + self.tech_array.shape[1] * lookback
        self.max_step = n_rows - lookback - 1
        self.time = lookback - 1
        self.account = AccountState.initial(self.initial_cash, n)
        self.total_asset = self.account.equity(self.price_array[self.time])
        self.total_asset_eqw = float(np.sum(self.equal_weight_stock * self.price_array[self.time]))
        self.gamma_return = 0.0
        self.episode_return = 0.0
        self.cumu_return = 0.0
        self._done = True  # must reset() first, as upstream (stocks_cooldown is None until reset)

    @property
    def cash(self) -> float:
        return self.account.cash

    @property
    def stocks(self) -> npt.NDArray[np.float32]:
        return self.account.holdings

    @property
    def stocks_cooldown(self) -> npt.NDArray[np.float32]:
        return self.account.cooldown

    def get_state(self) -> npt.NDArray[np.float32]:
        return state_from_tech_array(
            self.tech_array, self.time, self.lookback, self.account.cash, self.account.holdings, self.norms
        )

    def reset(self) -> npt.NDArray[np.float32]:
        self.time = self.lookback - 1
        self.account = AccountState.initial(self.initial_cash, self.crypto_num)
        self.total_asset = self.account.equity(self.price_array[self.time])
        if not self.upstream_reset_quirk:
            self.total_asset_eqw = float(np.sum(self.equal_weight_stock * self.price_array[self.time]))
            self.gamma_return = 0.0
        self._done = False
        return self.get_state()

    def step(
        self, raw_action: npt.NDArray[np.float32]
    ) -> tuple[npt.NDArray[np.float32], float, bool, dict[str, Any]]:
        if self._done:
            raise InvariantViolation("TradingEnv.step() called before reset() or after the episode ended")
        self.time += 1
        price = self.price_array[self.time]
        plan: StepPlan = plan_step(raw_action, self.account, price, self.action_norm_vector, self.profile)
        self.account = plan.after
        done = self.time == self.max_step
        state = self.get_state()
        next_total_asset = self.account.equity(price)
        next_total_asset_eqw = float(np.sum(self.equal_weight_stock * price))
        reward = (
            (next_total_asset - self.total_asset) - (next_total_asset_eqw - self.total_asset_eqw)
        ) * self.norms.reward
        self.total_asset = next_total_asset
        self.total_asset_eqw = next_total_asset_eqw
        self.gamma_return = self.gamma_return * self.gamma + reward
        self.cumu_return = self.total_asset / self.initial_cash
        if done:
            reward = self.gamma_return
            self.episode_return = self.total_asset / self.initial_cash
            self._done = True
        info = {
            "plan": plan,
            "time": self.time,
            "total_asset": self.total_asset,
            "total_asset_eqw": self.total_asset_eqw,
        }
        return state, float(reward), done, info
