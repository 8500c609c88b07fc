"""Bar-close-to-order lag of the worker against the local emulator (prints figures, asserts nothing).

The emulator's clock is stepped to exactly each bar close (grace 0), so the measured lag is what the
worker itself adds: fetch bars, features, state, inference, plan, reconcile and submit(s). Two policies:
the fixture model (realistic, few orders) and an all-in/all-out one (sells, wait for fills, buys).

    .venv/bin/python bench/order_lag.py [--bars 48] [--model-dir DIR]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

DEFAULT_MODEL = Path(__file__).resolve().parents[2] / "shared/fixtures/train_results/cwd_tests/trial_7_1h"
TICKERS = ("BTC", "ETH", "LTC")


class AllInAllOut:
    def __init__(self, n: int) -> None:
        self.n = n
        self.calls = 0

    def act(self, state: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        self.calls += 1
        return np.full(self.n, 1.0 if self.calls % 2 else -1.0, dtype=np.float32)


def run(model_dir: Path, bars: int, policy_name: str) -> dict[str, Any]:
    from cappuccino_daemon.broker.alpaca import AlpacaBroker, AlpacaEndpoints
    from cappuccino_daemon.emulator.testing import EmulatorThread
    from cappuccino_daemon.model.actor import load_policy
    from cappuccino_daemon.model.loader import load_model_spec
    from cappuccino_daemon.worker.build import WorkerOptions, build_loop

    spec = load_model_spec(model_dir, list(TICKERS))
    policy: Any = load_policy(model_dir) if policy_name == "model" else AllInAllOut(len(TICKERS))
    lags: list[float] = []
    steps: list[float] = []
    orders = 0
    with (
        tempfile.TemporaryDirectory() as tmp,
        EmulatorThread(synthetic_seed=3, start=datetime(2024, 3, 1, tzinfo=UTC)) as emu,
    ):
        broker = AlpacaBroker(emu.key_id, emu.secret_key, AlpacaEndpoints(emu.base_url, emu.base_url))
        opts = WorkerOptions(
            model_dir=model_dir,
            tickers=TICKERS,
            state_dir=Path(tmp),
            grace_s=0.0,
            max_clock_skew_s=None,
            poll_interval_s=0.1,
            fill_timeout_s=5.0,
        )
        loop = build_loop(opts, spec, policy, broker)
        for _ in range(bars):
            emu.advance(3600)
            started = time.perf_counter()
            outcome = loop.step()
            steps.append(time.perf_counter() - started)
            if outcome.kind == "traded" and outcome.lag_s is not None:
                lags.append(outcome.lag_s)
                orders += outcome.report.submitted if outcome.report else 0
        loop.cycle.journal.close()
    return {"policy": policy_name, "bars": len(lags), "orders": orders, "lags": lags, "steps": steps}


def describe(values: list[float]) -> str:
    if not values:
        return "n/a"
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    return (
        f"median {statistics.median(values) * 1000:7.1f} ms  p95 {p95 * 1000:7.1f} ms  "
        f"max {max(values) * 1000:7.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bars", type=int, default=48)
    parser.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL)
    args = parser.parse_args()
    from cappuccino_daemon.logsetup import configure_logging

    configure_logging(level="ERROR")
    for name in ("model", "all-in-all-out"):
        result = run(args.model_dir, args.bars, name)
        print(f"[{result['policy']}] {result['bars']} bars, {result['orders']} orders")
        print(f"  bar close -> last order sent : {describe(result['lags'])}")
        print(f"  whole poll step (incl. fills): {describe(result['steps'])}")


if __name__ == "__main__":
    main()
