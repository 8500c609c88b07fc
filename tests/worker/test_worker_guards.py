"""Data the worker must not trade on: stale bars, NaN, a gap for one ticker, clock skew; and SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from test_worker_crash import worker_cmd, worker_env
from worker_support import TICKERS, Model, all_orders, broker_for

from cappuccino_daemon.broker.alpaca import AlpacaBroker
from cappuccino_daemon.clock import FakeClock
from cappuccino_daemon.emulator.testing import EmulatorThread
from cappuccino_daemon.errors import BrokerRejectedError
from cappuccino_daemon.heartbeat import read_heartbeat
from cappuccino_daemon.worker.build import WorkerOptions, build_loop, history_bars
from cappuccino_daemon.worker.loop import WorkerLoop


@dataclass
class BarFault:
    """Wraps the real adapter and damages what get_bars returns (a data-feed fault injector)."""

    inner: AlpacaBroker
    drop_last: dict[str, int] = field(default_factory=dict)
    nan_close: set[str] = field(default_factory=set)

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def get_bars(
        self, symbols: list[str], timeframe: timedelta, start: datetime, end: datetime
    ) -> dict[str, pd.DataFrame]:
        frames = self.inner.get_bars(symbols, timeframe, start, end)
        out = {}
        for sym, frame in frames.items():
            frame = frame.copy()
            n = self.drop_last.get(sym, 0)
            if n:
                frame = frame.iloc[:-n]
            if sym in self.nan_close:
                frame.iloc[-1, frame.columns.get_loc("close")] = np.nan
            out[sym] = frame
        return out


def loop_with(
    tmp_path: Path, model: Model, broker: object, clock: object | None = None, skew: float | None = None
) -> WorkerLoop:
    opts = WorkerOptions(
        model_dir=model.dir,
        tickers=TICKERS,
        state_dir=tmp_path,
        max_clock_skew_s=skew,
        poll_interval_s=0.1,
        fill_timeout_s=5.0,
        gap_wait_s=300,
    )
    return build_loop(opts, model.spec, model.policy, broker, clock=clock)  # type: ignore[arg-type]


def test_gap_for_one_ticker_waits_then_skips_then_recovers(
    tmp_path: Path, tiny_model: Model, emulator: EmulatorThread
) -> None:
    emulator.advance(10)
    broker = BarFault(broker_for(emulator), drop_last={"LTC": 1})
    loop = loop_with(tmp_path, tiny_model, broker)
    assert loop.step().kind == "waiting"  # the bar may still arrive
    assert loop.cycle.journal.cycles() == []
    emulator.advance(300)
    outcome = loop.step()
    assert outcome.kind == "skipped" and "LTC" in outcome.message
    skipped = loop.cycle.journal.cycles("skipped")
    assert len(skipped) == 1 and "gap" in skipped[0].message
    assert all_orders(emulator) == []
    broker.drop_last = {}
    emulator.advance(3600)
    assert loop.step().kind == "traded"  # the next bar trades normally


def test_stale_feed_is_never_traded(tmp_path: Path, tiny_model: Model, emulator: EmulatorThread) -> None:
    emulator.advance(10)
    broker = BarFault(broker_for(emulator), drop_last=dict.fromkeys(TICKERS, 3))
    loop = loop_with(tmp_path, tiny_model, broker)
    assert loop.step().kind == "waiting"
    emulator.advance(600)
    assert loop.step().kind == "skipped"
    assert all_orders(emulator) == []
    heartbeat = read_heartbeat(tmp_path / "heartbeat.json")
    assert heartbeat is not None and "gap" in heartbeat.message


def test_nan_bar_is_refused(tmp_path: Path, tiny_model: Model, emulator: EmulatorThread) -> None:
    emulator.advance(10)
    loop = loop_with(tmp_path, tiny_model, BarFault(broker_for(emulator), nan_close={"BTC"}))
    outcome = loop.step()
    assert outcome.kind == "skipped" and "bad data" in outcome.message
    assert all_orders(emulator) == []
    assert loop.cycle.journal.latest_account() is None  # nothing decided, nothing booked


def test_clock_skew_is_refused(tmp_path: Path, tiny_model: Model, emulator: EmulatorThread) -> None:
    emulator.advance(10)
    local = FakeClock(emulator.now() + timedelta(seconds=120))
    loop = loop_with(tmp_path, tiny_model, broker_for(emulator), clock=local, skew=30.0)
    outcome = loop.step()
    assert outcome.kind == "refused" and "clock" in outcome.message
    assert loop.cycle.journal.cycles() == [] and all_orders(emulator) == []
    local.advance(-115)  # clock fixed: within 30 s again
    assert loop.step().kind == "traded"


def test_short_history_is_raised_to_warmup() -> None:
    assert history_bars(24, timedelta(hours=1)) == 300
    assert history_bars(1000, timedelta(hours=1)) == 1000


def test_sigterm_stops_cleanly(tmp_path: Path, tiny_model: Model) -> None:
    start = datetime.now(UTC).replace(microsecond=0)
    with EmulatorThread(synthetic_seed=3, start=start, speed=1.0) as emu:
        cmd = [c for c in worker_cmd(tiny_model, emu, tmp_path) if c not in ("--max-cycles", "1")]
        proc = subprocess.Popen(
            [*cmd, "--poll-interval", "30"],
            env=worker_env(),
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                hb = read_heartbeat(tmp_path / "heartbeat.json")
                if hb is not None and hb.phase == "WAITING":
                    break
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                time.sleep(0.1)
            sent = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(15) == 0
            assert time.monotonic() - sent < 5  # the 30 s idle sleep is interrupted
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    hb = read_heartbeat(tmp_path / "heartbeat.json")
    assert hb is not None and hb.phase == "STOPPING" and hb.cycles == 1
    assert json.loads((tmp_path / "heartbeat.json").read_text())["positions"].keys() == set(TICKERS)


@dataclass
class RefusingReads:
    """The real adapter, except that bar requests come back as a 4xx the broker will keep refusing."""

    inner: AlpacaBroker
    refuse: bool = True

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def get_bars(
        self, symbols: list[str], timeframe: timedelta, start: datetime, end: datetime
    ) -> dict[str, pd.DataFrame]:
        if self.refuse:
            raise BrokerRejectedError("get_bars: 422 invalid symbol", status_code=422)
        return self.inner.get_bars(symbols, timeframe, start, end)


def test_a_refused_read_keeps_the_worker_alive_and_trades_nothing(
    tmp_path: Path, tiny_model: Model, emulator: EmulatorThread
) -> None:
    """A 4xx on a read is reported every poll (heartbeat goes on); trading resumes when it clears."""
    emulator.advance(10)
    broker = RefusingReads(broker_for(emulator))
    loop = loop_with(tmp_path, tiny_model, broker)
    outcome = loop.step()
    assert outcome.kind == "refused" and "refused" in outcome.message
    heartbeat = read_heartbeat(tmp_path / "heartbeat.json")
    assert heartbeat is not None and "422" in heartbeat.message
    assert all_orders(emulator) == []
    broker.refuse = False
    assert loop.step().kind == "traded"
