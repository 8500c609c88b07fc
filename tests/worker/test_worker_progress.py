"""Liveness is not progress: a worker that polls but refuses every bar is ``stalled`` in its heartbeat,
its log and ``status --check`` (exit 1), and says why; a resolved bar makes it ``ok`` again.

The real loop against the in-process emulator, whose clock stands still while the worker's injected
clock runs: every poll is refused for clock skew (the frozen-exchange-clock case), or the broker
refuses every bar request. Fake time only, so "two bar intervals" is exact.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator, MutableMapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import structlog
from test_worker_guards import RefusingReads, loop_with
from worker_support import Model, broker_for

from cappuccino_daemon.cli import main
from cappuccino_daemon.clock import FakeClock
from cappuccino_daemon.emulator.testing import EmulatorThread
from cappuccino_daemon.heartbeat import Progress, read_heartbeat
from cappuccino_daemon.supervisor.state_store import StateStore, SupervisorState

TWO_BARS_S = 2 * 3600.0  # the tiny model trades 1 h bars
POLL_S = 600.0


@pytest.fixture
def logs() -> Iterator[list[MutableMapping[str, Any]]]:
    with structlog.testing.capture_logs() as captured:
        yield captured


@pytest.fixture
def worker_process() -> Iterator[int]:
    """A live process whose command line says cappuccino: what ``status`` accepts as the worker's pid."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "cappuccino-worker-test"])
    yield proc.pid
    proc.kill()
    proc.wait(timeout=10)


def _status_check(tmp_path: Path, model: Model, capsys: pytest.CaptureFixture[str]) -> tuple[int, Any]:
    """``cappuccino-paper status --check --json`` on the state folder the worker under test writes."""
    config = tmp_path / "daemon.toml"
    config.write_text(f'[model]\ndir = "{model.dir}"\n\n[paths]\nstate = "{tmp_path}"\n', encoding="utf-8")
    capsys.readouterr()  # drop what the worker under test printed so far
    code = main(["status", "--config", str(config), "--json", "--check"])
    return code, json.loads(capsys.readouterr().out)


def _register_worker(state_dir: Path, pid: int) -> None:
    """The supervisor's record of the worker: ``status`` checks this pid is alive."""
    state = SupervisorState(status="running")
    worker = state.child("worker")
    worker.state, worker.pid, worker.starts = "running", pid, 1
    StateStore(state_dir).save(state, datetime.now(UTC))


def test_refused_bars_turn_the_heartbeat_stalled_after_two_bars_and_status_check_exits_1(
    tmp_path: Path,
    tiny_model: Model,
    emulator: EmulatorThread,
    capsys: pytest.CaptureFixture[str],
    worker_process: int,
) -> None:
    emulator.advance(10)
    local = FakeClock(emulator.now())
    loop = loop_with(tmp_path, tiny_model, broker_for(emulator), clock=local, skew=30.0)
    assert loop.step().kind == "traded"
    progressed_at, decided_at = local.monotonic(), local.now()
    _register_worker(tmp_path, worker_process)
    assert _status_check(tmp_path, tiny_model, capsys)[0] == 0  # trading: healthy

    # The exchange's clock stands still from here; ours runs, so every poll is refused for skew.
    # (Logs are captured around the worker only: the status command configures logging its own way.)
    states = []
    with structlog.testing.capture_logs() as logs:
        for _ in range(15):
            local.advance(POLL_S)
            assert loop.step().kind == "refused"
            hb = read_heartbeat(tmp_path / "heartbeat.json")
            assert hb is not None and hb.time == local.now()  # alive: the heartbeat goes on every poll
            expected = Progress.STALLED if local.monotonic() - progressed_at > TWO_BARS_S else Progress.OK
            assert hb.progress is expected
            states.append(hb.progress)
    assert states.count(Progress.STALLED) == 3  # the polls 7800, 8400 and 9000 s after the decision
    assert (
        hb.last_progress_at == decided_at and "clock" in hb.stall_cause and "off the broker" in hb.stall_cause
    )

    stalls = [e for e in logs if e["event"] == "worker_stalled"]
    assert len(stalls) == 1 and "clock" in stalls[0]["cause"]  # once per bar, not once per poll

    code, status = _status_check(tmp_path, tiny_model, capsys)
    assert code == 1
    assert status["stalled"] is True and status["stale"] is False  # alive and fresh, yet not trading
    assert status["heartbeat"]["progress"] == "stalled"
    assert status["heartbeat"]["last_progress_at"] == decided_at.isoformat()
    assert any("stalled" in p and "clock" in p for p in status["problems"])

    # The clocks agree again: the next bar is decided, the stall is over and says so.
    emulator.advance((local.now() - emulator.now()).total_seconds())
    with structlog.testing.capture_logs() as logs:
        assert loop.step().kind == "traded"
    hb = read_heartbeat(tmp_path / "heartbeat.json")
    assert hb is not None and hb.progress is Progress.OK and hb.stall_cause == ""
    assert [e["event"] for e in logs].count("progress_resumed") == 1
    assert _status_check(tmp_path, tiny_model, capsys)[0] == 0


def test_a_stall_is_logged_once_per_bar_with_the_refusal_as_cause(
    tmp_path: Path, tiny_model: Model, emulator: EmulatorThread, logs: list[MutableMapping[str, Any]]
) -> None:
    """Bars keep closing at the broker but every bar request is refused (a 4xx that does not clear)."""
    emulator.advance(10)
    local = FakeClock(emulator.now())
    loop = loop_with(tmp_path, tiny_model, RefusingReads(broker_for(emulator)), clock=local)
    for _ in range(5):  # five bars, a poll every 10 minutes
        for _ in range(6):
            outcome = loop.step()
            assert outcome.kind == "refused"
            emulator.advance(POLL_S)
            local.advance(POLL_S)
    stalls = [e for e in logs if e["event"] == "worker_stalled"]
    # Stalled from the first poll past two hours (at 7800 s), then once an hour: 7800, 11400, 15000 s.
    assert len(stalls) == 3
    assert all("422" in e["cause"] and e["last_progress_at"] is None for e in stalls)
    hb = read_heartbeat(tmp_path / "heartbeat.json")
    assert hb is not None and hb.progress is Progress.STALLED and "422" in hb.stall_cause
    assert hb.cycles == 0 and hb.last_progress_at is None
