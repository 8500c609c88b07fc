"""Decision time per bar: features (TA-Lib over the history window) + state + inference + plan.

Uses the golden OHLCV and the trial_12_1h actor from ../shared. Prints figures; asserts nothing.
Usage: .venv/bin/python bench/decision_time.py [--history 1000] [--bars 200]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from cappuccino_daemon.bars import discover_bars, read_bars_csv
from cappuccino_daemon.model.actor import load_policy
from cappuccino_daemon.model.profiles import get_profile
from cappuccino_daemon.model.spec import DEFAULT_TRAINING_TICKERS, Normalisation
from cappuccino_daemon.policy.envsim import TradingEnv
from cappuccino_daemon.policy.features import feature_matrix
from cappuccino_daemon.policy.normaliser import action_norm_vector
from cappuccino_daemon.policy.planner import AccountState, plan_step
from cappuccino_daemon.policy.state import build_state

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def _pct(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--history", type=int, default=1000, help="bars of history per decision")
    ap.add_argument("--bars", type=int, default=200, help="decisions to time")
    args = ap.parse_args()
    tickers = list(DEFAULT_TRAINING_TICKERS)
    paths = discover_bars(SHARED / "data" / "ohlcv", "1h")
    frames = {t: read_bars_csv(paths[t]) for t in tickers}
    policy = load_policy(SHARED / "fixtures" / "train_results" / "cwd_tests" / "trial_12_1h")
    norms = Normalisation(2.0**-12, 2.0**-8, 2.0**-15, 2.0**-10, 10000)
    profile = get_profile("finrl-crypto", len(tickers))
    lookback = 3
    account = AccountState.initial(profile.initial_capital, len(tickers))
    anv = action_norm_vector(
        frames["BTC"]["close"].iloc[[args.history]].to_numpy().repeat(len(tickers)), norms.action
    )
    parts: dict[str, list[float]] = {"features": [], "state": [], "inference": [], "plan": [], "total": []}
    for i in range(args.bars):
        end = args.history + i
        t0 = time.perf_counter()
        m = feature_matrix({t: f.iloc[end - args.history : end] for t, f in frames.items()}, tickers)
        t1 = time.perf_counter()
        state = build_state(account.cash, account.holdings, m.rows_newest_first(lookback), norms)
        t2 = time.perf_counter()
        action = policy.act(state)
        t3 = time.perf_counter()
        plan = plan_step(action, account, m.price_array[-1], anv, profile)
        t4 = time.perf_counter()
        account = plan.after
        for key, dt in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t4 - t0), strict=True):
            dt_ms = dt * 1e3
            parts[key].append(dt_ms)
    print(f"decision time per bar, {len(tickers)} tickers, {args.history} bars of history, n={args.bars}")
    for key, values in parts.items():
        print(f"  {key:<10} median {statistics.median(values):8.3f} ms   p95 {_pct(values, 0.95):8.3f} ms")

    # Env step throughput (what the demo trainer pays per step, no actor).
    with np.load(SHARED / "fixtures" / "rollouts" / "roll_a2_trial_12_1h_20210301_na1000.npz") as npz:
        price, tech, raw = npz["price_array"], npz["tech_array"], npz["raw_action"]
    env = TradingEnv(price, tech, 3, Normalisation(2.0**-12, 2.0**-8, 2.0**-15, 2.0**-10, 1000), profile)
    t0 = time.perf_counter()
    steps = 0
    for _ in range(5):
        env.reset()
        for a in raw:
            env.step(a)
            steps += 1
    print(
        f"TradingEnv.step: {(time.perf_counter() - t0) / steps * 1e6:.1f} us/step ({steps} steps, 7 tickers)"
    )


if __name__ == "__main__":
    main()
