"""The parity alarm on the emulator: silent (difference 0) while the live state is the training state,
journaled, logged and counted when the served state drifts, and trading goes on either way."""

from __future__ import annotations

import dataclasses
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from test_worker_e2e import next_bar
from worker_support import TICKERS, Model, broker_for, quick_options

from cappuccino_daemon.alerts.sender import AlertSender
from cappuccino_daemon.alerts.testing import Receiver
from cappuccino_daemon.config import load_settings
from cappuccino_daemon.emulator.testing import EmulatorThread
from cappuccino_daemon.model.spec import Policy
from cappuccino_daemon.policy.features import Aligned
from cappuccino_daemon.worker.build import build_loop
from cappuccino_daemon.worker.cycle import check_and_align
from cappuccino_daemon.worker.loop import WorkerLoop
from cappuccino_daemon.worker.metrics import WorkerMetrics


@dataclass
class ReadsFeatures:
    """The trading stub plus a small term in the market part of the state: the stub alone looks only at
    its holdings, so a drift in the features would not move its action."""

    inner: Policy
    n: int

    def act(self, state: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        market = float(np.tanh(state[1 + self.n :].astype(np.float64).mean()))
        return (self.inner.act(state) + np.float32(0.01 * market)).astype(np.float32)


def _loop(tmp_path: Path, emu: EmulatorThread, model: Model) -> WorkerLoop:
    opts = quick_options(model.dir, tmp_path / "state")
    policy = ReadsFeatures(model.policy, len(TICKERS))
    loop = build_loop(opts, model.spec, policy, broker_for(emu))
    config = tmp_path / "daemon.toml"
    config.write_text('[model]\ndir = "m"\n[paths]\nstate = "state"\n[metrics]\nenabled = true\nport = 0\n')
    loop.metrics = WorkerMetrics.start(load_settings(config, require_model_dir=False))
    return loop


def _scrape(loop: WorkerLoop) -> str:
    assert loop.metrics.address is not None
    with urllib.request.urlopen(f"http://127.0.0.1:{loop.metrics.address[1]}/metrics", timeout=5) as resp:
        return resp.read().decode()


def test_the_live_action_is_the_replay_paths_to_the_bit(
    tmp_path: Path, emulator: EmulatorThread, tiny_model: Model
) -> None:
    loop = _loop(tmp_path, emulator, tiny_model)
    diffs = []
    for _ in range(3):
        next_bar(emulator)
        outcome = loop.step()
        assert outcome.kind == "traded" and outcome.parity is not None
        diffs.append(outcome.parity.diff)
    text = _scrape(loop)
    loop.metrics.close()
    model = loop.cycle.spec.model_id
    assert diffs == [0.0, 0.0, 0.0]
    assert loop.cycle.journal.events("parity_alarm") == []
    assert f'cappuccino_parity_alarms_total{{model="{model}"}} 0.0' in text
    assert f'cappuccino_parity_max_abs_diff{{model="{model}"}} 0.0' in text


def test_a_served_state_that_drifts_raises_the_alarm_and_trading_goes_on(
    tmp_path: Path, emulator: EmulatorThread, tiny_model: Model
) -> None:
    """A bug planted in the live path (its newest feature row 1 % off, as a stale cache or a wrong
    window would make it) is caught by the replay path, which builds the state afresh."""

    def drifting(
        frames: dict[str, pd.DataFrame],
        tickers: Any,
        now: datetime,
        timeframe: timedelta,
        *,
        lookback: int,
        max_wait: timedelta,
    ) -> Aligned:
        aligned = check_and_align(frames, tickers, now, timeframe, lookback=lookback, max_wait=max_wait)
        tech = aligned.matrix.tech_array.copy()
        tech[-1] *= 1.01
        return dataclasses.replace(aligned, matrix=dataclasses.replace(aligned.matrix, tech_array=tech))

    loop = _loop(tmp_path, emulator, tiny_model)
    loop.cycle.aligner = drifting
    receiver = Receiver()
    sender = AlertSender([receiver.url()], timeout_s=5).start()
    loop.attach_alerts(sender, daily_summary=False)
    try:
        for _ in range(2):
            next_bar(emulator)
            outcome = loop.step()
            assert outcome.kind == "traded" and outcome.parity is not None and outcome.parity.alarm
        (message,) = receiver.wait_for(1)
        sender.close()  # the second bar's alarm is the same alert within the hour: not sent again
    finally:
        receiver.close()
    assert "parity alarm" in message["title"] and len(receiver.messages) == 1
    text = _scrape(loop)
    loop.metrics.close()
    alarms = loop.cycle.journal.events("parity_alarm")
    assert len(alarms) == 2
    detail = alarms[0]["detail"]
    live, replay = np.array(detail["live"]), np.array(detail["replay"])
    assert detail["max_abs_diff"] == np.max(np.abs(live - replay)) > 1e-6
    assert f'cappuccino_parity_alarms_total{{model="{loop.cycle.spec.model_id}"}} 2.0' in text
    assert len(loop.cycle.journal.cycles("done")) == 2  # the bars traded on the live action
