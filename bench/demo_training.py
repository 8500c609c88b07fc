"""Benchmark the demo training: wall time of a full ``demo`` run and PPO steps per second.

Usage: ``.venv/bin/python bench/demo_training.py [--seconds 60] [--trials 3]``. Prints figures only.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def main() -> None:
    started = time.monotonic()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from cappuccino_daemon.demo.study import DemoOptions, run_demo
    from cappuccino_daemon.logsetup import configure_logging

    configure_logging(level="WARNING")
    imported = time.monotonic() - started
    with tempfile.TemporaryDirectory() as tmp:
        result = run_demo(
            DemoOptions(out_dir=Path(tmp) / "demo", trials=args.trials, seconds=args.seconds, seed=args.seed),
            started=started,
        )
    wall = time.monotonic() - started
    print(f"budget {args.seconds:.0f}s, {args.trials} trials: wall {wall:.2f}s (imports {imported:.2f}s)")
    train_s = steps = 0.0
    for o in result.outcomes:
        r = o.report
        train_s += r.train_seconds
        steps += r.env_steps
        print(
            f"  trial {o.number}: {r.updates:4d} updates, {r.env_steps:7d} env steps, "
            f"{r.train_seconds:6.2f}s training, {r.steps_per_second:7.0f} steps/s (incl. updates), "
            f"stopped by {r.stopped_by}, "
            f"value {o.value:+.3f}"
        )
    print(
        f"training total: {train_s:.2f}s = {train_s / wall:.0%} of wall; "
        f"{steps / max(train_s, 1e-9):.0f} steps/s"
    )
    print(f"overhead (imports, market, study DB, evaluation, saving): {wall - train_s:.2f}s")


if __name__ == "__main__":
    main()
