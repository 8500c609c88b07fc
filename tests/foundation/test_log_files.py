"""[logging] file = true: every process of the daemon also writes rotating JSON logs under paths.logs."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from cappuccino_daemon.config import load_settings
from cappuccino_daemon.supervisor.plans import build_config


def test_supervisor_passes_log_files_to_its_children(tmp_path: Path) -> None:
    """The emulator child is told where to log; without file = true it is not."""
    (tmp_path / "m").mkdir()
    config = tmp_path / "daemon.toml"
    config.write_text('[model]\ndir = "m"\n[logging]\nfile = true\n', encoding="utf-8")
    plan = build_config(load_settings(config), config)
    assert plan.emulator is not None
    argv = plan.emulator.argv
    assert argv[argv.index("--log-file") + 1] == str(tmp_path / "logs" / "emulator.log")
    config.write_text('[model]\ndir = "m"\n', encoding="utf-8")
    plan = build_config(load_settings(config), config)
    assert plan.emulator is not None and "--log-file" not in plan.emulator.argv


def test_emulator_writes_its_json_log_file(tmp_path: Path) -> None:
    """A real emulator process writes its events to the file as JSON lines."""
    log_file, ready = tmp_path / "logs" / "emulator.log", tmp_path / "ready"
    proc = subprocess.Popen(
        [sys.executable, "-m", "cappuccino_daemon", "emulator", "--port", "0", "--synthetic", "1",
         "--ready-file", str(ready), "--log-file", str(log_file)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not ready.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert ready.exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    events = [json.loads(line)["event"] for line in log_file.read_text().splitlines()]
    assert "emulator_listening" in events and "emulator_stopped" in events
