"""A tournament's bar: N models decided and every order sent, against one model (prints, asserts nothing).

One worker loop over N models (``build_loop(..., others=...)``) trades an emulator whose clock is
stepped to just after each bar close + grace, so a figure is the worker's own work for a bar: one
reconciliation of the account, one shared bar download, N states, N actor forwards, N plans and every
order sent over loopback HTTP (the sleep and wake-up are ``order_lag.py``'s subject). Two figures per
bar: **to the last order sent** (the goal's measure: from the poll's start to the broker's answer to
the bar's last order) and **the whole poll** (that plus the last fills' wait, the parity check and the
journal's end of cycle). The emulator runs as its own process by default, as Alpaca is not inside the
worker; ``--emulator thread`` puts it in this process (its work then shares the worker's GIL). The
models are the hand-weighted stub (trades every bar on its coins; needs no ../shared), each in its own
folder so each has its own journal and order prefix; with ``--mix`` and ../shared present every third
model is the real 1984-wide trial_3358 actor (7 coins) and every third the trial_7 one, to mix
architectures. Printed: p50/p99 of both figures for N models and for one, the ratio of the p50s,
orders per bar and the process's peak RSS (``ru_maxrss``).

    .venv/bin/python bench/tournament.py [--models 100] [--bars 60] [--mix] [--emulator process|thread]
                                         [--senders 8]

Bars differ: the first measured bar is every model's first sell (167 orders with ``--mix``, against
68-134 later), so with a dozen bars the p99 is that one bar; 60 bars (about 2 minutes) give a p99 of
the steady state. ``--senders`` is ``[worker] order_concurrency``. On loopback 1 to 8 senders measure
the same within the machine's noise (the two cores are the limit); against Alpaca, tens of
milliseconds away, the senders are what keep a hundred orders within the second.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

TICKERS = ("BTC", "ETH", "LTC")
START = datetime(2024, 3, 1, tzinfo=UTC)
SHARED = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "train_results" / "cwd_tests"
GRACE_S = 5.0


def _models(root: Path, n: int, mix: bool) -> list[tuple[Any, Any]]:
    from cappuccino_daemon.model.actor import load_policy
    from cappuccino_daemon.model.loader import load_model_spec
    from cappuccino_daemon.model.testing import write_trading_stub

    out = []
    for i in range(n):
        real = SHARED / ("trial_3358_1h" if i % 3 == 1 else "trial_7_1h")
        if mix and i % 3 and (real / "actor.pth").is_file():
            folder = root / f"{real.name}_copy{i}"
            folder.mkdir()
            for item in real.iterdir():
                (folder / item.name).symlink_to(item)
            tickers = None if real.name == "trial_3358_1h" else list(TICKERS)  # trial_7 trades 3 coins
            out.append((load_model_spec(folder, tickers), load_policy(folder)))
            continue
        folder = write_trading_stub(root / f"stub{i}_1h", TICKERS)
        out.append((load_model_spec(folder, list(TICKERS)), load_policy(folder)))
    return out


class _ProcessEmulator:
    """``cappuccino-paper emulator`` in its own process; the clock moves through its admin API."""

    key_id, secret_key = "PKTESTEMULATOR0000001", "emulator-test-secret"

    def __enter__(self) -> _ProcessEmulator:
        self._dir = tempfile.TemporaryDirectory()
        ready = Path(self._dir.name) / "ready"
        command = [sys.executable, "-m", "cappuccino_daemon", "emulator", "--synthetic", "3", "--speed", "0"]
        command += ["--start", START.isoformat(), "--port", "0", "--ready-file", str(ready)]
        command += ["--require-keys", self.key_id, self.secret_key, "--log-level", "ERROR"]
        command += ["--lenient"]  # no 200/min budget, partial fills or lagging positions: our own work
        self._proc = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while not ready.is_file() or not ready.read_text().strip():
            if self._proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the emulator did not start")
            time.sleep(0.05)
        self.base_url = ready.read_text().strip()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._proc.terminate()
        self._proc.wait(15)
        self._dir.cleanup()

    def now(self) -> datetime:
        state = requests.get(f"{self.base_url}/admin/state", timeout=30).json()
        return datetime.fromisoformat(state["now"])

    def advance(self, seconds: float) -> None:
        requests.post(f"{self.base_url}/admin/clock/advance", json={"seconds": seconds}, timeout=30)


def _emulator(kind: str) -> Any:
    from cappuccino_daemon.emulator.testing import EmulatorThread

    return _ProcessEmulator() if kind == "process" else EmulatorThread(synthetic_seed=3, start=START)


def _bars(
    n_models: int, bars: int, mix: bool, emulator: str, senders: int = 8
) -> tuple[list[float], list[float], int]:
    """Per bar: seconds to the last order sent and for the whole ``loop.step()``; the orders sent."""
    import structlog

    from cappuccino_daemon.broker.alpaca import AlpacaBroker, AlpacaEndpoints
    from cappuccino_daemon.worker.build import WorkerOptions, build_loop, freeze_startup_heap

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))  # errors only
    with tempfile.TemporaryDirectory() as tmp, _emulator(emulator) as emu:
        loaded = _models(Path(tmp) / "models", n_models, mix)
        broker = AlpacaBroker(emu.key_id, emu.secret_key, AlpacaEndpoints(emu.base_url, emu.base_url))
        opts = WorkerOptions(
            model_dir=loaded[0][0].model_dir,
            tickers=None,
            state_dir=Path(tmp) / "state",
            grace_s=GRACE_S,
            max_clock_skew_s=None,
            request_budget_per_min=100_000,  # the emulator has no budget; measure our own work
            order_concurrency=senders,
        )
        (spec, policy), *others = loaded
        loop = build_loop(opts, spec, policy, broker, others=others)
        freeze_startup_heap()  # as the worker does before its first bar
        sent, whole, orders, per_bar = [], [], 0, []
        for _ in range(bars + 1):  # the first bar also pays the start-up reconciliation: left out
            now = emu.now()
            close = now.replace(minute=0, second=0, microsecond=0).timestamp() + 3600 + GRACE_S + 1
            emu.advance(close - now.timestamp())
            started = time.monotonic()  # the loop's clock (SystemClock.monotonic)
            outcome = loop.step()
            whole.append(time.monotonic() - started)
            if outcome.kind != "traded" or outcome.report is None or outcome.report.last_submit_mono is None:
                raise SystemExit(f"bar not traded: {outcome.kind} {outcome.message}")
            sent.append(outcome.report.last_submit_mono - started)
            per_bar.append(outcome.report.submitted)
        for c in loop.cycles:
            orders += sum(1 for i in c.journal.intents() if i.attempts > 0)
        print(f"{n_models} model(s), orders sent each bar: " + " ".join(str(k) for k in per_bar[1:]))
        return sent[1:], whole[1:], orders


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", type=int, default=100)
    parser.add_argument(
        "--bars", type=int, default=60, help="bars measured (60: the p99 is not just the slowest bar)"
    )
    parser.add_argument("--mix", action="store_true", help="mix in the real fixture actors (../shared)")
    parser.add_argument("--emulator", choices=("process", "thread"), default="process")
    parser.add_argument("--senders", type=int, default=8, help="[worker] order_concurrency (default 8)")
    args = parser.parse_args()
    one_sent, one_whole, _ = _bars(1, args.bars, False, args.emulator)
    sent, whole, orders = _bars(args.models, args.bars, args.mix, args.emulator, args.senders)
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    n, med = args.models, statistics.median
    print(f"bars measured: {args.bars} (after the first); emulator: {args.emulator}")
    for label, values in (
        ("1 model, poll start -> last order sent", one_sent),
        ("1 model, whole poll", one_whole),
        (f"{n} models, poll start -> last order sent", sent),
        (f"{n} models, whole poll", whole),
    ):
        print(f"{label}: p50 {med(values):.3f} s, p99 {_p(values, 0.99):.3f} s")
    print(f"{n} models, last order sent, each bar: " + " ".join(f"{x:.3f}" for x in sent))
    print(f"ratio of the p50s to the last order sent, {n} models / 1: {med(sent) / med(one_sent):.1f}x")
    print(f"orders sent by the {n} models: {orders} ({orders / (args.bars + 1):.0f} per bar)")
    print(f"peak RSS: {rss_mib:,.0f} MiB (goals: last order sent p99 <= 1 s, memory < 4 GB)")


if __name__ == "__main__":
    main()
