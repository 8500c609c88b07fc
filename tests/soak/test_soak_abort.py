"""The soak stops at once, saying so, when the daemon exits by itself (it used to wait for its timeout)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cappuccino_daemon.soak.runner import Daemon, SoakAborted, SoakPlan, _deadline_check


def test_a_supervisor_that_exits_on_its_own_aborts_the_soak(tmp_path: Path) -> None:
    daemon = Daemon(tmp_path / "daemon.toml", tmp_path, port=1)
    daemon.proc = subprocess.Popen([sys.executable, "-c", "raise SystemExit(78)"])
    daemon.proc.wait(timeout=60)
    plan = SoakPlan(timeout_s=1e9)
    with pytest.raises(SoakAborted, match=r"exited 78 on its own while waiting for 40 bars") as info:
        _deadline_check(daemon, 0.0, plan, "40 bars")
    assert str(tmp_path / "supervisor.log") in str(info.value)


def test_a_running_supervisor_aborts_only_when_the_time_is_up(tmp_path: Path) -> None:
    daemon = Daemon(tmp_path / "daemon.toml", tmp_path, port=1)
    daemon.proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    try:
        _deadline_check(daemon, started=float("inf"), plan=SoakPlan(timeout_s=10), what="settling")
        with pytest.raises(SoakAborted, match="settling did not happen within 10 s"):
            _deadline_check(daemon, started=-1e9, plan=SoakPlan(timeout_s=10), what="settling")
    finally:
        daemon.proc.kill()
        daemon.proc.wait()
