"""Bar close → last order sent, the whole path as the daemon runs it (prints figures, asserts nothing).

The real ``WorkerLoop.run()``: its sleep until the next bar close + grace (``stop.wait`` on the real
clock, the broker clock's rate measured as the worker measures it), the wake-up, reconcile, bars,
features, state, inference, plan and submits over real HTTP (alpaca-py) to an emulator whose clock
runs ``--speed`` times faster than ours (so a 1h bar closes every 3600/speed wall seconds). The figures
are the worker's own ``cycle_done`` log fields: ``lag_s`` (wall seconds, bar close to the last order
sent) and ``lag_broker_s`` (the same on the broker's clock); bars that sent nothing log neither and
are not counted, nor is the first bar after start (its broker clock rate is not yet measured).

The grace (``[worker] bar_close_grace_s``, broker seconds) passes ``speed`` times faster here than at
Alpaca's wall-speed clock, so the bench also prints ``grace + (wall lag - grace/speed)``: the lag the
same work and wake-up give at wall speed. The emulator runs in this process (a thread), so its request
handling shares our GIL: the figures are an upper bound for a worker with the exchange elsewhere.

Default: the hand-weighted stub model (trades every bar; needs no ../shared), 30 bars at 1200x, about
two minutes; ``--model-dir`` for a real trial (bars where it sends nothing are left out):

    .venv/bin/python bench/order_lag.py [--bars 30] [--speed 1200] [--grace 5] [--model-dir DIR]
"""

from __future__ import annotations

import argparse
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

TICKERS = ("BTC", "ETH", "LTC")
START = datetime(2024, 3, 1, 0, 30, tzinfo=UTC)  # mid-bar: the first close comes after a real sleep


def run(model_dir: Path, bars: int, speed: float, grace_s: float) -> list[dict[str, Any]]:
    import structlog

    from cappuccino_daemon.broker.alpaca import AlpacaBroker, AlpacaEndpoints
    from cappuccino_daemon.emulator.testing import EmulatorThread
    from cappuccino_daemon.model.actor import load_policy
    from cappuccino_daemon.model.loader import load_model_spec
    from cappuccino_daemon.worker.build import WorkerOptions, build_loop

    spec = load_model_spec(model_dir, list(TICKERS))
    policy = load_policy(model_dir)
    with (
        tempfile.TemporaryDirectory() as tmp,
        EmulatorThread(synthetic_seed=3, start=START, speed=speed) as emu,
        structlog.testing.capture_logs() as logs,
    ):
        broker = AlpacaBroker(emu.key_id, emu.secret_key, AlpacaEndpoints(emu.base_url, emu.base_url))
        opts = WorkerOptions(  # every other knob at its [worker] default, as the daemon runs
            model_dir=model_dir,
            tickers=TICKERS,
            state_dir=Path(tmp),
            grace_s=grace_s,
            max_clock_skew_s=None,  # a simulated clock is never compared with ours
            max_cycles=bars + 1,  # + the catch-up bar at start
        )
        loop = build_loop(opts, spec, policy, broker)
        loop.run()
        loop.cycle.journal.close()
    return [e for e in logs if e["event"] == "cycle_done"]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def describe(values: list[float], unit: str = "ms", scale: float = 1000.0) -> str:
    if not values:
        return "n/a"
    p50, p99 = percentile(values, 0.5), percentile(values, 0.99)
    top = max(values)
    return f"p50 {p50 * scale:8.1f} {unit}   p99 {p99 * scale:8.1f} {unit}   max {top * scale:8.1f} {unit}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bars", type=int, default=30)
    parser.add_argument("--speed", type=float, default=1200.0, help="emulator clock speed (x wall)")
    parser.add_argument("--grace", type=float, default=None, help="bar_close_grace_s (default: config's)")
    parser.add_argument("--model-dir", type=Path, default=None, help="default: the trading stub model")
    args = parser.parse_args()
    from cappuccino_daemon.config import WorkerSection
    from cappuccino_daemon.model.testing import write_trading_stub

    grace_s = WorkerSection().bar_close_grace_s if args.grace is None else args.grace
    with tempfile.TemporaryDirectory() as models:
        model_dir = args.model_dir or write_trading_stub(Path(models) / "trial_7_1h", TICKERS)
        events = run(model_dir, args.bars, args.speed, grace_s)
    sent = [e for e in events if e.get("lag_s") is not None]
    wall = [float(e["lag_s"]) for e in sent]
    broker = [float(e["lag_broker_s"]) for e in sent]
    at_wall_speed = [grace_s + (w - grace_s / args.speed) for w in wall]
    orders = sum(int(e["submitted"]) for e in sent)
    print(
        f"{len(events)} bars decided, {len(sent)} with orders ({orders} orders) and a measured clock rate; "
        f"emulator at {args.speed:g}x, grace {grace_s:g} broker s"
    )
    print(f"  bar close -> last order sent, wall      : {describe(wall)}")
    print(f"  bar close -> last order sent, broker    : {describe(broker, 's', 1.0)}")
    print(f"  at wall speed (grace + our own seconds) : {describe(at_wall_speed, 's', 1.0)}")


if __name__ == "__main__":
    main()
