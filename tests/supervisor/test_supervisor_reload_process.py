"""``systemctl reload`` end to end: a real SIGHUP to the real supervisor process (``run``'s code path)
with a fake worker that records the model folders of the config file it was started with, and the real
``cappuccino-paper validate`` as the reload's check. The supervisor keeps its pid; the worker is
replaced at its safe point (SIGTERM) and starts with the new models, with no failure counted; a
broken file is refused while the same worker keeps beating, and the fixed file is then applied.
The sd_notify side is read on a real socket: RELOADING=1 with MONOTONIC_USEC=, then READY=1 again.
Every wait polls a condition (no sleep has to land in a window)."""

from __future__ import annotations

import contextlib
import signal
import socket
import threading
from pathlib import Path
from typing import Any

import pytest
from supervisor_harness import Harness

from cappuccino_daemon.heartbeat import read_heartbeat
from cappuccino_daemon.model.testing import write_trading_stub
from cappuccino_daemon.procinfo import pid_alive

FOREVER: dict[str, Any] = {"run_s": None}
TICKERS = ("BTC", "ETH", "LTC")


@pytest.fixture(scope="module")
def stubs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("stubs")
    return write_trading_stub(root / "a_1h", TICKERS), write_trading_stub(root / "b_1h", TICKERS)


class NotifySocket:
    """A datagram socket standing in for systemd's ``$NOTIFY_SOCKET``, read all the time by a thread as
    systemd does (the queue holds ten datagrams; a full one would block the supervisor's send)."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.messages: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        with contextlib.suppress(OSError):  # closed
            while data := self.sock.recv(4096):
                self.messages.append(data.decode())

    def close(self) -> None:
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self._reader.join()

    def drain(self) -> list[str]:
        return list(self.messages)


def _worker(h: Harness, other_than: int | None = None) -> dict[str, Any] | None:
    """The fake worker's start event once the supervisor records it running (heartbeating)."""
    starts = [e for e in h.child_events("worker") if e["event"] == "start" and e["pid"] != other_than]
    if not starts or not (h.state / "supervisor.json").exists():
        return None
    saved = h.state_json()["children"].get("worker", {})
    running = saved.get("pid") == starts[-1]["pid"] and saved.get("state") == "running"
    return starts[-1] if running else None


def _beats_past(h: Harness, pid: int, cycles: int) -> bool:
    beat = read_heartbeat(h.state / "heartbeat.json")
    return beat is not None and beat.pid == pid and beat.cycles > cycles


def _counts(h: Harness) -> tuple[int, int, int]:
    saved = h.state_json()["children"]["worker"]
    return saved["starts"], saved["restarts"], saved["consecutive_failures"]


def test_sighup_swaps_the_model_set_under_the_same_supervisor(
    harness: Harness, stubs: tuple[Path, Path], tmp_path: Path
) -> None:
    a, b = stubs
    notify = NotifySocket(tmp_path / "notify.sock")
    try:
        harness.write_config(worker=[FOREVER], models=[a])
        proc = harness.start(NOTIFY_SOCKET=notify.path)
        first = harness.wait_for(lambda: _worker(harness), message="first worker running")
        harness.wait_for(lambda: any(m.startswith("READY=1") for m in notify.drain()), message="READY")
        assert first["models"] == ["a_1h"] and _counts(harness) == (1, 0, 0)
        harness.write_config(worker=[FOREVER], models=[a, b])  # a model added
        proc.send_signal(signal.SIGHUP)
        second = harness.wait_for(lambda: _worker(harness, other_than=first["pid"]), message="new worker")
        harness.wait_for(lambda: sum(m.startswith("READY=1") for m in notify.drain()) >= 2, message="READY")
        assert proc.poll() is None and harness.state_json()["supervisor_pid"] == proc.pid
        assert second["models"] == ["a_1h", "b_1h"]
        assert _counts(harness) == (2, 0, 0)  # a restart, but neither a failure nor a backoff
        assert harness.state_json()["children"]["worker"]["last_exit_reason"] == "reload"
        stopped = [e for e in harness.child_events("worker") if e["pid"] == first["pid"]]
        assert [e["event"] for e in stopped] == ["start", "sigterm", "exit"]  # stopped as for a shutdown
        assert harness.stop() == 0
    finally:
        notify.close()
    messages = notify.drain()
    reloading = next(i for i, m in enumerate(messages) if m.startswith("RELOADING=1"))
    fields = dict(line.split("=", 1) for line in messages[reloading].splitlines())
    assert int(fields["MONOTONIC_USEC"]) > 0
    assert any(m.startswith("READY=1") for m in messages[reloading + 1 :])
    assert [e["event"] for e in harness.logs() if e.get("event", "").startswith("reload_")] == [
        "reload_start",
        "reload_accepted",
    ]


def test_a_broken_config_is_refused_and_the_worker_keeps_trading_until_fixed(
    harness: Harness, stubs: tuple[Path, Path]
) -> None:
    a, b = stubs
    harness.write_config(worker=[FOREVER], models=[a])
    proc = harness.start()
    first = harness.wait_for(lambda: _worker(harness), message="first worker running")
    harness.config.write_text(harness.config.read_text() + "[[models]\n", encoding="utf-8")  # not TOML
    proc.send_signal(signal.SIGHUP)
    refused = harness.wait_for(lambda: harness.logs("reload_refused"), message="reload_refused")
    assert str(harness.config) in refused[0]["error"] and "cannot be read as TOML" in refused[0]["error"]
    beat = read_heartbeat(harness.state / "heartbeat.json")
    assert beat is not None and beat.pid == first["pid"]
    harness.wait_for(
        lambda: _beats_past(harness, first["pid"], beat.cycles), message="the same worker beating on"
    )
    assert proc.poll() is None and _worker(harness) == first and pid_alive(first["pid"])
    assert [e["event"] for e in harness.child_events("worker")] == ["start"]  # no SIGTERM, no restart
    assert _counts(harness) == (1, 0, 0)

    harness.write_config(worker=[FOREVER], models=[b])  # fixed (and the model swapped)
    proc.send_signal(signal.SIGHUP)
    second = harness.wait_for(lambda: _worker(harness, other_than=first["pid"]), message="new worker")
    assert second["models"] == ["b_1h"] and _counts(harness) == (2, 0, 0)
    assert len(harness.logs("reload_refused")) == 1 and len(harness.logs("reload_accepted")) == 1
    assert harness.state_json()["supervisor_pid"] == proc.pid
    assert harness.stop() == 0
