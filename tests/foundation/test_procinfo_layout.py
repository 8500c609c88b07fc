"""One liveness rule (procinfo) and one spelling of the state directory's files (layout), used everywhere."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cappuccino_daemon.config import load_settings
from cappuccino_daemon.layout import StateLayout
from cappuccino_daemon.ops.status import StatusInputs
from cappuccino_daemon.procinfo import pid_alive, pid_cmdline, process_started_at, runs_cappuccino
from cappuccino_daemon.supervisor.lock import InstanceLock
from cappuccino_daemon.supervisor.plans import build_config
from cappuccino_daemon.supervisor.state_store import StateStore

linux_only = pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="needs Linux /proc")


def _sleeper(*marker: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "import sys, time; time.sleep(60)", *marker])


def test_a_running_process_is_alive_and_a_reaped_one_is_not() -> None:
    proc = _sleeper()
    try:
        assert pid_alive(proc.pid)
    finally:
        proc.kill()
        proc.wait()
    assert not pid_alive(proc.pid)
    assert not pid_alive(None) and not pid_alive(0) and not pid_alive(-5)


@linux_only
def test_a_zombie_is_not_alive() -> None:
    proc = _sleeper()
    proc.kill()
    os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)  # exited, not reaped: a zombie
    try:
        os.kill(proc.pid, 0)  # the pid still exists...
        assert not pid_alive(proc.pid)  # ...but it trades nothing
    finally:
        proc.wait()


@linux_only
def test_status_asks_for_cappuccino_in_the_command_line_the_supervisor_for_the_exact_argv() -> None:
    stranger, ours = _sleeper(), _sleeper("cappuccino-paper", "worker")
    try:
        assert pid_alive(stranger.pid) and not runs_cappuccino(stranger.pid)  # a reused pid, for status
        assert runs_cappuccino(ours.pid)
        assert pid_cmdline(ours.pid)[-2:] == ["cappuccino-paper", "worker"]
        started = process_started_at(ours.pid)
        assert started is not None and started.tzinfo is not None
    finally:
        for proc in (stranger, ours):
            proc.kill()
            proc.wait()
    assert not runs_cappuccino(ours.pid) and pid_cmdline(ours.pid) == []


def test_every_component_finds_the_files_where_the_layout_says(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    config = tmp_path / "daemon.toml"
    config.write_text(f'[model]\ndir = "{model}"\n[paths]\nstate = "{tmp_path / "state"}"\n')
    settings = load_settings(config, require_model_dir=False)
    layout = StateLayout(settings.paths.state)
    plan = build_config(settings, config)
    assert plan.worker.heartbeat_file == layout.heartbeat == layout.root / "heartbeat.json"
    assert plan.emulator is not None and plan.emulator.ready_file == layout.emulator_ready
    assert settings.emulator.state_file == layout.emulator_state
    assert StateStore(layout.root).path == layout.supervisor_state == layout.root / "supervisor.json"
    assert InstanceLock(layout.root).path == layout.supervisor_lock
    inputs = StatusInputs.from_settings(settings)
    assert (inputs.heartbeat_file, inputs.supervisor_file) == (layout.heartbeat, layout.supervisor_state)
    assert layout.journal("m-1234abcd") == layout.root / "journal" / "m-1234abcd.sqlite"
    assert layout.journals() == []
    layout.journal_dir.mkdir(parents=True)
    layout.journal("b").write_bytes(b"")
    layout.journal("a").write_bytes(b"")
    (layout.journal_dir / "notes.txt").write_text("")
    assert [p.name for p in layout.journals()] == ["a.sqlite", "b.sqlite"]
