"""The logged lag: bar close → last order sent, wall and broker seconds kept apart, only when sent.

Our clock is a fake; the in-memory broker's clock runs ``SPEED`` times faster (as the accelerated
emulator's does), moving only when ours does. So every figure below is exact: a formula that mixed
the two clocks, or measured from the wake-up instead of the bar close, gives a different number.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import structlog
from worker_support import TICKERS, Model

from cappuccino_daemon.broker.memory import MemoryBroker
from cappuccino_daemon.clock import FakeClock
from cappuccino_daemon.config import load_settings
from cappuccino_daemon.worker.build import WorkerOptions, build_loop
from cappuccino_daemon.worker.loop import WorkerLoop
from cappuccino_daemon.worker.metrics import WorkerMetrics

SPEED = 600.0  # broker seconds per wall second
BAR = datetime(2024, 3, 1, 10, tzinfo=UTC)  # open of the first bar the worker decides on
CLOSE = BAR + timedelta(hours=1)
LATE_S = 60.0  # broker seconds after each bar close at which the worker wakes

Logs = list[MutableMapping[str, Any]]


class AcceleratedClock(FakeClock):
    """Our fake clock; every second slept or advanced on it is ``SPEED`` seconds at the broker."""

    def __init__(self, broker: MemoryBroker) -> None:
        super().__init__(datetime(2030, 1, 1, tzinfo=UTC))  # our date is irrelevant: skew check off
        self.broker = broker

    def advance(self, seconds: float) -> None:
        super().advance(seconds)
        self.broker.advance(seconds * SPEED)


@dataclass
class Scripted:
    """Returns the given actions in turn (then zeros): a policy whose orders the test chooses."""

    actions: list[list[float]]

    def act(self, state: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        row = self.actions.pop(0) if self.actions else [0.0] * len(TICKERS)
        return np.asarray(row, dtype=np.float32)


@pytest.fixture
def logs() -> Iterator[Logs]:
    with structlog.testing.capture_logs() as captured:
        yield captured


def make(
    tmp_path: Path, model: Model, policy: Scripted, fill_delay_s: float
) -> tuple[WorkerLoop, AcceleratedClock]:
    broker = MemoryBroker(start=CLOSE + timedelta(seconds=LATE_S), fill_delay_s=fill_delay_s)
    clock = AcceleratedClock(broker)
    opts = WorkerOptions(
        model_dir=model.dir,
        tickers=TICKERS,
        state_dir=tmp_path,
        grace_s=30.0,
        max_clock_skew_s=None,
        poll_interval_s=60.0,
        fill_timeout_s=60.0,
        gap_wait_s=0.0,
        parity_check_every=0,  # a scripted policy is not a function of its state
    )
    loop = build_loop(opts, model.spec, policy, broker, clock=clock)
    return loop, clock


def next_bar(clock: AcceleratedClock) -> None:
    """Move both clocks on until the next bar closed ``LATE_S`` broker seconds ago."""
    now = clock.broker.now()
    target = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1, seconds=LATE_S)
    clock.advance((target - now).total_seconds() / SPEED)


def cycle_done(logs: Logs) -> list[MutableMapping[str, Any]]:
    return [e for e in logs if e["event"] == "cycle_done"]


def test_wall_and_broker_seconds_are_kept_apart(tmp_path: Path, tiny_model: Model, logs: Logs) -> None:
    """Bar 2 wakes 60 broker s (0.1 s ours) after its close, sells BTC, waits for the fill (300 broker
    s = 0.5 s ours), then buys LTC: the lag is 0.6 s ours and 360 s the broker's, each in its own unit."""
    policy = Scripted([[1.0, 0.0, 0.0], [-1.0, 0.0, 1.0]])
    loop, clock = make(tmp_path, tiny_model, policy, fill_delay_s=300.0)
    first = loop.step()
    # The first poll after a start cannot know the broker clock's rate: broker seconds only.
    assert first.kind == "traded" and first.report is not None and first.report.submitted == 1
    assert first.lag is not None and first.lag.wall_s is None
    assert first.lag.broker_s == LATE_S
    next_bar(clock)
    second = loop.step()
    assert second.kind == "traded" and second.report is not None and second.report.submitted == 2
    assert loop.pace.rate == SPEED
    assert second.lag is not None
    assert second.lag.wall_s == pytest.approx(LATE_S / SPEED + 0.5, abs=1e-9)  # 0.6 s, ours
    assert second.lag.broker_s == pytest.approx(LATE_S + 0.5 * SPEED, abs=1e-9)  # 360 s, the broker's
    # Logged, journaled and published as the wall figure, with the broker figure beside it in the log.
    done = cycle_done(logs)
    assert [e.get("lag_s") for e in done] == [None, 0.6]
    assert [e.get("lag_broker_s") for e in done] == [LATE_S, 360.0]
    assert loop.cycle.journal.get_cycle(BAR + timedelta(hours=1)).lag_s == pytest.approx(0.6)  # type: ignore[union-attr]
    assert loop.status.lag_s == pytest.approx(0.6)


def _scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    rows = (line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#"))
    return {name: float(value) for name, value in rows}


def test_no_lag_is_logged_or_exported_for_a_bar_that_sent_nothing(
    tmp_path: Path, tiny_model: Model, logs: Logs
) -> None:
    config = tmp_path / "daemon.toml"
    config.write_text(
        '[model]\ndir = "m"\n\n[paths]\nstate = "state"\n\n[metrics]\nenabled = true\nport = 0\n'
    )
    metrics = WorkerMetrics.start(load_settings(config, require_model_dir=False))
    assert metrics.address is not None
    policy = Scripted([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    loop, clock = make(tmp_path, tiny_model, policy, fill_delay_s=0.0)
    loop.metrics = metrics
    try:
        for _ in range(2):  # two decided bars, no order planned
            outcome = loop.step()
            assert outcome.kind == "traded" and outcome.lag is None
            next_bar(clock)
        assert all("lag_s" not in e and "lag_broker_s" not in e for e in cycle_done(logs))
        assert [c.lag_s for c in loop.cycle.journal.cycles()] == [None, None]
        assert loop.status.lag_s is None
        scraped = _scrape(metrics.address[1])
        assert scraped["cappuccino_bars_processed_total"] == 2
        assert scraped["cappuccino_decision_latency_seconds_count"] == 0
        traded = loop.step()  # the third bar buys BTC: now there is a lag, and only its one sample
        assert traded.lag is not None and traded.lag.wall_s == pytest.approx(LATE_S / SPEED)
        scraped = _scrape(metrics.address[1])
        assert scraped["cappuccino_decision_latency_seconds_count"] == 1
        assert scraped["cappuccino_decision_latency_seconds_sum"] == pytest.approx(LATE_S / SPEED)
    finally:
        metrics.close()
        loop.cycle.journal.close()


def test_first_sleep_is_short_until_the_clock_rate_is_measured(tmp_path: Path, tiny_model: Model) -> None:
    """At rate 1.0 (unmeasured) the wait to the next close would be ~3500 s, capped only by the 60 s
    poll: 60 s of ours is 10 bars at 600x. Until measured, the wait is capped by the measuring span."""
    loop, clock = make(tmp_path, tiny_model, Scripted([]), fill_delay_s=0.0)
    outcome = loop.step()
    assert not loop.pace.measured
    assert loop._sleep_s(outcome) == loop.pace.min_span_s
    clock.advance(loop.pace.min_span_s)
    assert loop.step().kind == "idle" and loop.pace.measured
    # Measured: (next close + grace - now) broker seconds at 600x, in our seconds.
    due = CLOSE + timedelta(hours=1, seconds=30)
    assert loop._sleep_s(outcome) == pytest.approx((due - clock.broker.now()).total_seconds() / SPEED)
