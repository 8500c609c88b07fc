"""The worker is the supervisor's model check: a bad model exits 78 before any broker request.

Real processes: the real worker command, and the real ``run`` with the real embedded emulator.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from supervisor_harness import Harness


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_worker_refuses_a_bad_model_before_waiting_for_the_exchange(tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()  # no actor.pth
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "cappuccino_daemon",
            "worker",
            "--model-dir",
            str(tmp_path / "model"),
            "--broker",
            "emulator",
            "--broker-url",
            "http://127.0.0.1:9",  # nothing listens: contacting it would be exit 75, not 78
            "--exchange-ready-file",
            str(tmp_path / "never-written"),  # waiting for it first would end in exit 75 after 600 s
            "--exchange-wait",
            "600",
            "--state-dir",
            str(tmp_path / "state"),
        ],
        env=Harness(tmp_path).env(),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 78, result.stderr[-2000:]
    assert "actor.pth" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "state" / "journal").exists()  # nothing journaled, nothing traded


def test_run_gives_up_on_an_invalid_model_without_restarting(tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    config = tmp_path / "daemon.toml"
    config.write_text(
        f'[model]\ndir = "{tmp_path / "model"}"\n[broker]\nkind = "emulator"\n'
        f"[emulator]\nport = {_free_port()}\nsynthetic_seed = 3\n"
        f'[paths]\nstate = "{tmp_path / "state"}"\nlogs = "{tmp_path / "logs"}"\n'
        "[logging]\njson = true\n[supervisor]\nbackoff_base_s = 0.2\nbackoff_max_s = 0.4\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "cappuccino_daemon", "run", "--config", str(config)],
        env=Harness(tmp_path).env(),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 78, result.stderr[-3000:]
    events = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    spawned = [e["child"] for e in events if e.get("event") == "child_spawn"]
    assert spawned == ["emulator", "worker"]  # started together, the worker never restarted
    given_up = [e for e in events if e.get("event") == "child_given_up"]
    assert len(given_up) == 1 and given_up[0]["child"] == "worker"
    assert "actor.pth" in result.stderr
    assert not [e for e in events if e.get("event") == "broker_connected"]
    state = json.loads((tmp_path / "state" / "supervisor.json").read_text())
    assert state["status"] == "given_up" and state["children"]["emulator"]["state"] == "stopped"


def test_worker_waits_for_the_exchange_ready_file_on_a_fake_clock(tmp_path: Path) -> None:
    from cappuccino_daemon.errors import TransientBrokerError
    from cappuccino_daemon.worker.build import wait_for_exchange

    ready = tmp_path / "emulator.ready"
    now = [0.0]

    def sleep(seconds: float) -> None:  # the exchange announces itself after 1 s of (fake) waiting
        now[0] += seconds
        if now[0] >= 1.0:
            ready.write_text("http://127.0.0.1:1\n")

    wait_for_exchange(ready, 5.0, monotonic=lambda: now[0], sleep=sleep)
    assert ready.exists() and 1.0 <= now[0] < 5.0

    ready.unlink()
    now[0] = 0.0

    def idle(seconds: float) -> None:  # an exchange that never comes
        now[0] += seconds

    with pytest.raises(TransientBrokerError, match=r"emulator\.ready"):
        wait_for_exchange(ready, 0.5, monotonic=lambda: now[0], sleep=idle)
    assert now[0] >= 0.5
