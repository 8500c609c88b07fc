"""Backoff, reset and hang sequences of the real loop, asserted exactly on a fake clock stepped per tick.

The children are real subprocesses held on a FIFO (``held_child.py``); the test decides when each one
exits and writes its heartbeats itself, so every instant below is exact fake time, never a window.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Callable, Iterator, MutableMapping
from pathlib import Path
from typing import Any

import pytest
import structlog
from stepped_loop import BARRIER_S, HeldWorker, SteppedLoop, has_exited, make_config, stop_and_wait, wait_dead

from cappuccino_daemon.supervisor.notify import Notifier

Logs = list[MutableMapping[str, Any]]
TICK_S = 0.5  # SupervisorConfig's default tick


@pytest.fixture
def logs() -> Iterator[Logs]:
    with structlog.testing.capture_logs() as captured:
        yield captured


Rig = Callable[..., tuple[SteppedLoop, HeldWorker]]


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    """Builds a stepped loop around a held worker; afterwards no child, FIFO end or thread remains."""
    made: list[tuple[SteppedLoop, HeldWorker]] = []

    def build(ignore_term: bool = False, notifier: Notifier | None = None) -> tuple[SteppedLoop, HeldWorker]:
        worker = HeldWorker(tmp_path, ignore_term=ignore_term)
        loop = SteppedLoop(make_config(tmp_path, worker.plan), notifier=notifier)
        made.append((loop, worker))
        return loop, worker

    yield build
    for loop, worker in made:
        rec = loop.supervisor.state.children.get("worker")
        if rec is not None and rec.pid and not has_exited(rec.pid):
            os.killpg(rec.pid, signal.SIGKILL)
        if loop.exit_code is None:
            loop.stop()
        worker.close()


def _events(logs: Logs, name: str) -> Logs:
    return [e for e in logs if e["event"] == name]


def _crash(loop: SteppedLoop, worker: HeldWorker, code: int = 3) -> float:
    """The running worker exits with ``code``; returns the fake time of the tick that saw it."""
    pid = loop.record().pid
    assert pid is not None
    worker.exit(pid, code)
    return loop.step()


def test_backoff_doubles_5_to_300_then_resets_after_60s_healthy(rig: Rig, logs: Logs) -> None:
    loop, worker = rig()
    assert loop.start() == 0.0
    rec = loop.record()
    assert rec.state == "starting" and rec.starts == 1  # spawned on the very first tick
    for failures, delay in enumerate([5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 300.0, 300.0], start=1):
        seen = _crash(loop, worker)
        assert (rec.state, rec.consecutive_failures, rec.backoff_s) == ("backoff", failures, delay)
        restarted = loop.run_until(lambda: rec.state == "starting")
        assert restarted - seen == delay  # not one tick early, not one tick late
    assert rec.starts == 9 and rec.restarts == 8
    assert [e["delay_s"] for e in _events(logs, "backoff_chosen")] == [5, 10, 20, 40, 80, 160, 300, 300]

    # Healthy from its first heartbeat: the streak is forgotten exactly 60 s later, not a tick before.
    pid = rec.pid
    assert pid is not None
    worker.beat(loop.clock, pid)
    healthy_from = loop.step()
    assert rec.state == "running" and rec.consecutive_failures == 8
    reset_at = loop.run_until(lambda: rec.consecutive_failures == 0)
    assert reset_at - healthy_from == 60.0
    assert _events(logs, "backoff_reset")[0]["previous_failures"] == 8
    seen = _crash(loop, worker)
    assert (rec.consecutive_failures, rec.backoff_s) == (1, 5.0)
    assert loop.run_until(lambda: rec.state == "starting") - seen == 5.0
    assert loop.stop() == 0


def test_a_crash_before_60s_healthy_keeps_doubling(rig: Rig, logs: Logs) -> None:
    loop, worker = rig()
    loop.start()
    rec = loop.record()
    seen = _crash(loop, worker)
    assert loop.run_until(lambda: rec.state == "starting") - seen == 5.0
    assert rec.pid is not None
    worker.beat(loop.clock, rec.pid)
    healthy_from = loop.step()
    loop.run_until(lambda: loop.now - healthy_from >= 60.0 - TICK_S)  # the last tick short of 60 s
    assert rec.consecutive_failures == 1
    seen = _crash(loop, worker)  # seen at exactly 60 s healthy: that run counts as healthy
    assert seen - healthy_from == 60.0 and (rec.consecutive_failures, rec.backoff_s) == (1, 5.0)
    assert loop.run_until(lambda: rec.state == "starting") - seen == 5.0
    assert rec.pid is not None
    worker.beat(loop.clock, rec.pid)
    healthy_from = loop.step()
    loop.run_until(lambda: loop.now - healthy_from >= 60.0 - 2 * TICK_S)
    seen = _crash(loop, worker)  # seen at 59.5 s healthy: still a failure streak
    assert seen - healthy_from == 59.5 and (rec.consecutive_failures, rec.backoff_s) == (2, 10.0)
    assert loop.stop() == 0


def _hang_until_sigterm(loop: SteppedLoop, worker: HeldWorker, logs: Logs, freeze: bool = False) -> float:
    """Run a worker to its first heartbeat, let it fall silent; the fake time of the SIGTERM tick."""
    rec = loop.record()
    pid = rec.pid
    assert pid is not None
    worker.ready()  # barrier: its SIGTERM handler is installed
    worker.beat(loop.clock, pid)
    last_beat = loop.step()
    assert rec.state == "running"
    if freeze:
        stop_and_wait(pid)  # SIGSTOPped: only the SIGCONT sent with the SIGTERM lets it drain
    hung_at = loop.run_until(lambda: rec.state == "stopping")
    # Silent for more than heartbeat_timeout_s (300 s): the first tick past it, not a tick earlier.
    assert hung_at - last_beat == 300.0 + TICK_S
    assert _events(logs, "child_hung")[0]["heartbeat_silent_s"] == 300.5
    assert rec.hang_kills == 1
    return hung_at


def _wait_for_term(worker: HeldWorker, pid: int) -> None:
    deadline = time.monotonic() + BARRIER_S
    while pid not in worker.terms():  # barrier: the child's handler has recorded the SIGTERM
        assert time.monotonic() < deadline, "SIGTERM never reached the hung worker"
        time.sleep(0.002)


def test_hung_worker_gets_sigterm_after_heartbeat_timeout_and_restarts(rig: Rig, logs: Logs) -> None:
    loop, worker = rig()
    loop.start()
    rec = loop.record()
    first = rec.pid
    assert first is not None
    _hang_until_sigterm(loop, worker, logs, freeze=True)
    _wait_for_term(worker, first)
    wait_dead(first)  # it drains on SIGTERM (exit 0), thanks to the SIGCONT that follows it
    seen = loop.step()
    assert (rec.last_exit_reason, rec.last_exit_code, rec.last_exit_signal) == ("hung", 0, None)
    assert (rec.state, rec.consecutive_failures, rec.backoff_s) == ("backoff", 1, 5.0)
    assert not _events(logs, "child_sigkill")
    assert loop.run_until(lambda: rec.state == "starting") - seen == 5.0
    assert rec.pid != first and rec.restarts == 1
    assert loop.stop() == 0


def test_hung_worker_ignoring_sigterm_gets_sigkill_after_stop_timeout(rig: Rig, logs: Logs) -> None:
    loop, worker = rig(ignore_term=True)
    loop.start()
    rec = loop.record()
    first = rec.pid
    assert first is not None
    hung_at = _hang_until_sigterm(loop, worker, logs)
    _wait_for_term(worker, first)
    killed_at = loop.run_until(lambda: bool(_events(logs, "child_sigkill")))
    assert killed_at - hung_at == 30.0  # stop_timeout_s after the SIGTERM, exactly
    assert rec.state == "stopping"
    wait_dead(first)
    seen = loop.step()
    assert (rec.last_exit_reason, rec.last_exit_signal) == ("hung", "SIGKILL")
    assert (rec.state, rec.backoff_s) == ("backoff", 5.0)
    assert loop.run_until(lambda: rec.state == "starting") - seen == 5.0
    assert loop.stop() == 0


def test_watchdog_withheld_while_the_worker_is_hung(rig: Rig, tmp_path: Path) -> None:
    sock_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.setblocking(False)
    pings: list[float] = []

    def drain(at: float) -> None:
        while True:
            try:
                message = sock.recv(4096).decode()
            except BlockingIOError:
                return
            if message == "WATCHDOG=1":
                pings.append(at)

    try:
        # WATCHDOG_USEC 2 s: a ping is due every 1 s of fake time while the loop is healthy.
        notifier = Notifier(environ={"NOTIFY_SOCKET": str(sock_path), "WATCHDOG_USEC": "2000000"})
        loop, worker = rig(ignore_term=True, notifier=notifier)
        loop.start()
        rec = loop.record()
        first = rec.pid
        assert first is not None
        worker.beat(loop.clock, first)
        last_beat = loop.step()
        while rec.state != "backoff":
            drain(loop.step())
        restarted = loop.run_until(lambda: rec.state == "starting")
        drain(restarted)
    finally:
        sock.close()
    silent_from = last_beat + 300.0  # heartbeat stale from here: no more pings
    killed_exit = restarted - 5.0  # the tick that saw the SIGKILLed worker gone
    assert pings and pings[0] <= last_beat + 1.0
    assert not [t for t in pings if silent_from < t < killed_exit]
    assert max(pings) >= killed_exit
