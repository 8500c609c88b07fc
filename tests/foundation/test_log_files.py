"""[logging] file = true: every process of the daemon also writes rotating JSON logs under paths.logs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from cappuccino_daemon.config import load_settings
from cappuccino_daemon.supervisor.plans import build_config


def test_embedded_emulator_logs_where_its_config_says(tmp_path: Path) -> None:
    """The supervisor passes only --config and the ready file (environment); the emulator child finds its
    log file in the settings ([logging] file = true → <paths.logs>/emulator.log)."""
    (tmp_path / "m").mkdir()
    config = tmp_path / "daemon.toml"
    config.write_text('[model]\ndir = "m"\n[logging]\nfile = true\n', encoding="utf-8")
    plan = build_config(load_settings(config), config)
    assert plan.emulator is not None and "--log-file" not in plan.emulator.argv
    assert plan.emulator.argv[-3:] == ["emulator", "--config", str(config.resolve())]
    ready = tmp_path / "ready"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAPPUCCINO_")}
    proc = subprocess.Popen(
        [*plan.emulator.argv, "--port", "0"],  # a free port: this test does not run the worker
        env={**env, "CAPPUCCINO_EMULATOR__READY_FILE": str(ready)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _wait_ready(proc, ready)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    log_lines = (tmp_path / "logs" / "emulator.log").read_text().splitlines()
    events = [json.loads(line)["event"] for line in log_lines]
    assert "emulator_listening" in events


def _wait_ready(proc: subprocess.Popen[bytes], ready: Path) -> None:
    deadline = time.monotonic() + 60
    while not ready.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    assert ready.exists(), f"the emulator did not write {ready} (exit {proc.poll()})"


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
