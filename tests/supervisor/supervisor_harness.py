"""Runs the real supervisor (``run``'s code path, via the test-only ``run_with_fakes.py``) against
scripted fake children, injected through ``ChildCommands`` instead of the user's TOML."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

FAKE_CHILD = Path(__file__).with_name("fake_child.py")
RUN_WITH_FAKES = Path(__file__).with_name("run_with_fakes.py")
SRC = Path(__file__).resolve().parents[2] / "src"

# Backoff, reset and hang timing is asserted on a fake clock (test_supervisor_fake_clock.py); here the
# windows are far beyond any scheduling hiccup, so a slow machine never turns into a spurious hang kill
# or streak reset. Only restarts are quick.
FAST = {
    "backoff_base_s": 0.2,
    "backoff_max_s": 0.8,
    "healthy_after_s": 600.0,
    "heartbeat_timeout_s": 60.0,
    "stop_timeout_s": 1.0,
}


def _toml_value(value: Any) -> str:
    return json.dumps(value)  # JSON scalars, strings and arrays of strings are valid TOML


def fake_command(events: Path, role: str, script: list[dict[str, Any]], *extra: str) -> list[str]:
    return [sys.executable, str(FAKE_CHILD), str(events), role, *extra, "--script", json.dumps(script)]


def _model_tables(folders: list[Path], single: bool) -> list[str]:
    if single:
        return ["[model]", f"dir = {_toml_value(str(folders[0]))}"]
    lines: list[str] = []
    for folder in folders:
        lines += ["[[models]]", f"dir = {_toml_value(str(folder))}", "capital = 500.0"]
    return lines


class Harness:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.state = tmp / "state"
        self.events = tmp / "events.jsonl"
        self.log_path = tmp / "supervisor.log"
        self.config = tmp / "daemon.toml"
        self.fakes = tmp / "fakes.json"
        (tmp / "model").mkdir(exist_ok=True)
        self.proc: subprocess.Popen[bytes] | None = None

    def write_config(
        self,
        worker: list[dict[str, Any]],
        validate: list[dict[str, Any]] | None = None,
        emulator: list[dict[str, Any]] | None = None,
        worker_follows_exchange: bool = False,
        models: list[Path] | None = None,
        **supervisor: Any,
    ) -> None:
        """``models``: ``[[models]]`` tables for these folders instead of one ``[model]`` (an empty folder,
        enough for the fake worker; the real ``validate`` of a reload needs real ones)."""
        sup = {**FAST, **supervisor}
        fakes = {
            "events": str(self.events),
            "worker": worker,
            "worker_follows_exchange": worker_follows_exchange,
            "validate": validate or [{"run_s": 0, "exit": 0}],
            "emulator": emulator,
        }
        self.fakes.write_text(json.dumps(fakes))
        lines = [
            *_model_tables(models or [self.tmp / "model"], single=models is None),
            "[broker]",
            f"kind = {_toml_value('emulator' if emulator is not None else 'alpaca-paper')}",
            "[emulator]",
            "port = 18765",
            f"state_file = {_toml_value(str(self.state / 'emulator.sqlite'))}",
            "[paths]",
            f"state = {_toml_value(str(self.state))}",
            f"logs = {_toml_value(str(self.tmp / 'logs'))}",
            "[logging]",
            "json = true",
            "[supervisor]",
            *(f"{key} = {_toml_value(value)}" for key, value in sup.items()),
        ]
        self.config.write_text("\n".join(lines) + "\n")

    def env(self, **extra: str) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("CAPPUCCINO_")
            and k
            not in {"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "STATE_DIRECTORY", "LOGS_DIRECTORY"}
        }
        env["PYTHONPATH"] = str(SRC) + os.pathsep + env.get("PYTHONPATH", "")
        env.update(extra)
        return env

    def start(self, **env: str) -> subprocess.Popen[bytes]:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, str(RUN_WITH_FAKES), str(self.config), str(self.fakes)],
            env=self.env(**env),
            stdout=log,
            stderr=log,
            cwd=self.tmp,
        )
        log.close()
        return self.proc

    def run_to_exit(self, timeout: float = 20.0, **env: str) -> int:
        proc = self.start(**env)
        return proc.wait(timeout=timeout)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def close(self) -> None:
        """Kill the supervisor and every fake child it started that still runs (never leave one behind)."""
        from cappuccino_daemon.procinfo import pid_alive

        self.kill()
        for event in self.child_events():
            if event["event"] == "start" and pid_alive(event["pid"]):
                os.kill(event["pid"], signal.SIGKILL)

    # ----------------------------------------------------------- observations
    def child_events(self, role: str | None = None) -> list[dict[str, Any]]:
        if not self.events.exists():
            return []
        out = [json.loads(line) for line in self.events.read_text().splitlines() if line.strip()]
        return [e for e in out if role is None or e["role"] == role]

    def logs(self, event: str | None = None) -> list[dict[str, Any]]:
        if not self.log_path.exists():
            return []
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    continue
        return [e for e in out if event is None or e.get("event") == event]

    def state_json(self) -> dict[str, Any]:
        return json.loads((self.state / "supervisor.json").read_text())

    def wait_for(
        self, what: Callable[[], Any], timeout: float = 10.0, message: str = "", running: bool = True
    ) -> Any:
        """Poll ``what`` until truthy; fails early if the supervisor died and ``running`` was expected."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = what()
            if value:
                return value
            if running and self.proc is not None and self.proc.poll() is not None:
                value = what()
                if value:
                    return value
                raise AssertionError(
                    f"supervisor exited {self.proc.returncode} while waiting: {message}\n{self.tail()}"
                )
            time.sleep(0.02)
        raise AssertionError(f"timed out waiting for {message}\n{self.tail()}")

    def tail(self, n: int = 40) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
