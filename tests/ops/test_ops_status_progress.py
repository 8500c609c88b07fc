"""``status`` on a worker that is alive and beating but resolves no bars: ``stalled``, not healthy."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from ops_helpers import T2, Daemon, make_daemon

from cappuccino_daemon.cli import main
from cappuccino_daemon.heartbeat import Heartbeat, Progress, write_heartbeat

CAUSE = "broker refused a request: get_bars: 422 invalid symbol"


def _running(tmp_path: Path, pid: int, progress: Progress) -> Daemon:
    d = make_daemon(tmp_path)
    d.supervisor_pid = d.worker_pid = pid
    d.write_supervisor()
    stalled = progress is Progress.STALLED
    write_heartbeat(
        d.state / "heartbeat.json",
        Heartbeat(
            time=datetime.now(UTC), pid=pid, phase="WAITING", cycles=0, last_bar=T2, progress=progress,
            last_progress_at=T2 if stalled else datetime.now(UTC), stall_cause=CAUSE if stalled else "",
        ),
    )  # fmt: skip
    return d


def test_a_stalled_worker_makes_status_check_exit_1_and_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], cappuccino_process: subprocess.Popen[bytes]
) -> None:
    d = _running(tmp_path, cappuccino_process.pid, Progress.STALLED)
    assert main(["status", "--config", str(d.config), "--json", "--check"]) == 1
    s = json.loads(capsys.readouterr().out)
    assert s["running"] is True and s["stale"] is False and s["stalled"] is True
    hb = s["heartbeat"]
    assert (hb["progress"], hb["last_progress_at"], hb["stall_cause"]) == ("stalled", T2.isoformat(), CAUSE)
    assert f"worker is stalled: no bar decided or skipped since {T2.isoformat()}: {CAUSE}" in s["problems"]

    assert main(["status", "--config", str(d.config)]) == 0  # the screen is informational
    screen = capsys.readouterr().out
    assert "STALLED" in screen and "422 invalid symbol" in screen


def test_a_worker_making_progress_is_not_stalled(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], cappuccino_process: subprocess.Popen[bytes]
) -> None:
    d = _running(tmp_path, cappuccino_process.pid, Progress.OK)
    assert main(["status", "--config", str(d.config), "--json", "--check"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["stalled"] is False and s["heartbeat"]["progress"] == "ok"
    assert not [p for p in s["problems"] if "stalled" in p]
