"""Out-of-sample scoring in the spirit of Cappuccino's objective, on the env's own equity curves.

Per evaluation window: the deterministic actor (``tanh(net(s))``, what the daemon serves) steps the
training env; the bot's Sharpe comes from ``info["total_asset"]`` and the buy-and-hold Sharpe from the
env's equal-weight benchmark ``info["total_asset_eqw"]``. Score = mean(bot) - mean(hodl) - 0.1*std(bot).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch

from cappuccino_daemon.demo.nets import ActorPPO
from cappuccino_daemon.policy.envsim import TradingEnv

HOURS_PER_YEAR = 24 * 365


def sharpe(equity: npt.NDArray[np.float64], periods_per_year: float = HOURS_PER_YEAR) -> float:
    """Annualised Sharpe of per-bar simple returns (0 when flat, e.g. a policy that never buys)."""
    if equity.size < 3:
        return 0.0
    returns = np.diff(equity) / equity[:-1]
    std = float(returns.std(ddof=1))
    if not math.isfinite(std) or std < 1e-12:
        return 0.0
    return float(returns.mean() / std * math.sqrt(periods_per_year))


@dataclass(frozen=True)
class WindowResult:
    sharpe_bot: float
    sharpe_hodl: float
    final_equity: float
    final_equity_hodl: float
    trades: int  # steps on which the holdings changed


def run_window(actor: ActorPPO, env: TradingEnv) -> WindowResult:
    """One deterministic episode; equity curves start at the capital before the first step."""
    state = env.reset()
    bot = [env.total_asset]
    hodl = [env.total_asset_eqw]
    trades, done = 0, False
    with torch.inference_mode():
        while not done:
            action = actor(torch.from_numpy(state).unsqueeze(0))[0].numpy()
            before = env.stocks.copy()
            state, _, done, info = env.step(action)
            bot.append(float(info["total_asset"]))
            hodl.append(float(info["total_asset_eqw"]))
            trades += int(not np.array_equal(before, env.stocks))
    eq_bot, eq_hodl = np.asarray(bot), np.asarray(hodl)
    return WindowResult(sharpe(eq_bot), sharpe(eq_hodl), float(eq_bot[-1]), float(eq_hodl[-1]), trades)


@dataclass(frozen=True)
class Evaluation:
    windows: tuple[WindowResult, ...]

    @property
    def sharpe_list_bot(self) -> list[float]:
        return [w.sharpe_bot for w in self.windows]

    @property
    def sharpe_list_hodl(self) -> list[float]:
        return [w.sharpe_hodl for w in self.windows]

    @property
    def score(self) -> float:
        bot = np.asarray(self.sharpe_list_bot)
        hodl = np.asarray(self.sharpe_list_hodl)
        return float(bot.mean() - hodl.mean() - 0.1 * bot.std())


def evaluate(actor: ActorPPO, make_envs: list[Callable[[], TradingEnv]]) -> Evaluation:
    return Evaluation(tuple(run_window(actor, make()) for make in make_envs))
