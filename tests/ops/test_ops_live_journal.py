"""status and report over a journal written by the REAL worker trading against the real emulator."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from test_ops_metrics import _scrape

from cappuccino_daemon.broker.alpaca import AlpacaBroker, AlpacaEndpoints
from cappuccino_daemon.broker.http import ReadRetry
from cappuccino_daemon.cli import main
from cappuccino_daemon.config import load_settings
from cappuccino_daemon.emulator.testing import EmulatorThread
from cappuccino_daemon.heartbeat import read_heartbeat
from cappuccino_daemon.ops.journal_view import read_journal
from cappuccino_daemon.ops.series import from_journal
from cappuccino_daemon.ops.status import StatusInputs, collect_status
from cappuccino_daemon.worker.metrics import WorkerMetrics

TICKERS = ("BTC", "ETH", "LTC")
BARS = 6


@dataclass
class Alternating:
    """All-in then all-out, so every bar trades (buys and sells both appear in the journal)."""

    n: int
    calls: int = 0

    def act(self, state: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        self.calls += 1
        return np.full(self.n, 1.0 if self.calls % 2 else -1.0, dtype=np.float32)


def test_status_and_report_on_a_worker_journal(shared_dir: Path, tmp_path: Path) -> None:
    from cappuccino_daemon.model.loader import load_model_spec
    from cappuccino_daemon.worker.build import WorkerOptions, build_loop, journal_path

    model_dir = shared_dir / "fixtures" / "train_results" / "cwd_tests" / "trial_7_1h"
    spec = load_model_spec(model_dir, list(TICKERS))
    opts = WorkerOptions(model_dir=model_dir, tickers=TICKERS, state_dir=tmp_path, max_clock_skew_s=None,
                         poll_interval_s=0.1, grace_s=5, fill_timeout_s=5.0,
                         parity_check_every=0)  # fmt: skip  # scripted policy: not a function of its state
    with EmulatorThread(synthetic_seed=3, start=datetime(2024, 3, 1, tzinfo=UTC)) as emu:
        retry = ReadRetry(attempts=3, base_s=0.01, max_wait_s=0.05)
        endpoints = AlpacaEndpoints(emu.base_url, emu.base_url)
        broker = AlpacaBroker(emu.key_id, emu.secret_key, endpoints, timeout_s=5.0, read_retry=retry)
        loop = build_loop(opts, spec, Alternating(len(TICKERS)), broker)
        config = tmp_path / "daemon.toml"
        config.write_text(f'[model]\ndir = "{model_dir}"\n[paths]\nstate = "{tmp_path}"\n'
                          "[metrics]\nenabled = true\nport = 0\n")  # fmt: skip
        loop.metrics = WorkerMetrics.start(load_settings(config))
        # The stepped emulator clock has no rate of its own: take one from the second reading on, so every
        # bar after the first has a wall-clock lag (the first never does: one reading measures nothing).
        loop.pace.min_span_s = 0.0
        outcomes = []
        for _ in range(BARS):
            now = emu.now()
            emu.advance(
                now.replace(minute=0, second=0, microsecond=0).timestamp() + 3600 + 6 - now.timestamp()
            )
            outcomes.append(loop.step())
        assert loop.metrics.address is not None
        scraped = _scrape(loop.metrics.address[1])
        loop.metrics.close()
        loop.cycle.journal.close()
    # The loop fed the endpoint: every bar counted, every fill counted as an order outcome.
    assert scraped["cappuccino_bars_processed_total"] == BARS
    assert scraped['cappuccino_orders_total{outcome="filled"}'] == sum(
        o.report.filled for o in outcomes if o.report
    )
    walls = [o.lag.wall_s for o in outcomes if o.lag is not None and o.lag.wall_s is not None]
    assert len(walls) == BARS - 1  # every bar sent orders; the first one's wall lag is unknown
    assert scraped["cappuccino_decision_latency_seconds_count"] == BARS - 1
    assert scraped["cappuccino_decision_latency_seconds_sum"] == pytest.approx(sum(walls))
    assert [o.kind for o in outcomes] == ["traded"] * BARS

    journal = journal_path(opts, spec)
    status = collect_status(
        StatusInputs(
            tmp_path, tmp_path / "heartbeat.json", tmp_path / "supervisor.json", journal, "test", 300.0
        )
    )
    heartbeat = read_heartbeat(tmp_path / "heartbeat.json")
    assert heartbeat is not None and heartbeat.equity is not None
    account = status["account"]
    # Our equity (newest snapshot at the newest decided bar's prices) is the worker's own figure.
    assert account["equity"] == pytest.approx(heartbeat.equity, rel=1e-9)
    assert account["equity"] == pytest.approx(outcomes[-1].equity, rel=1e-9)
    assert account["initial_capital"] == pytest.approx(spec.profile.initial_capital)
    assert account["positions"] == pytest.approx(heartbeat.positions)
    counts = status["journal"]["counts"]
    assert counts["cycles"] == {"done": BARS}
    assert counts["fills_by_side"]["buy"] > 0 and counts["fills_by_side"]["sell"] > 0
    assert counts["fills"] == sum(o.report.filled for o in outcomes if o.report)
    assert status["journal"]["last_decision"]["bar_time"] == heartbeat.last_bar.isoformat()  # type: ignore[union-attr]
    assert (
        status["heartbeat"]["stale"] is False and status["running"] is False
    )  # no live process: not running

    series = from_journal(read_journal(journal))
    assert len(series.times) == BARS and series.equity[-1] == pytest.approx(heartbeat.equity)
    out = tmp_path / "live.png"
    assert main(["report", "--journal", str(journal), "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 20_000
