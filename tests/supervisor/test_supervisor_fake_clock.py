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
from stepped_loop import BARRIER_S, HeldChild, SteppedLoop, has_exited, make_config, stop_and_wait, wait_dead

from cappuccino_daemon.supervisor.notify import Notifier
from cappuccino_daemon.supervisor.runtime import EMULATOR

Logs = list[MutableMapping[str, Any]]
TICK_S = 0.5  # SupervisorConfig's default tick


@pytest.fixture
def logs() -> Iterator[Logs]:
    with structlog.testing.capture_logs() as captured:
        yield captured


Rig = Callable[..., tuple[SteppedLoop, HeldChild]]
Rig2 = Callable[..., tuple[SteppedLoop, HeldChild, HeldChild]]


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    """Builds a stepped loop around a held worker; afterwards no child, FIFO end or thread remains."""
    made: list[tuple[SteppedLoop, HeldChild]] = []

    def build(ignore_term: bool = False, notifier: Notifier | None = None) -> tuple[SteppedLoop, HeldChild]:
        worker = HeldChild(tmp_path, ignore_term=ignore_term)
        loop = SteppedLoop(make_config(tmp_path, worker.plan), notifier=notifier)
        made.append((loop, worker))
        return loop, worker

    yield build
    for loop, worker in made:
        _tear_down(loop, worker)


@pytest.fixture
def rig2(tmp_path: Path) -> Iterator[Rig2]:
    """A stepped loop with an embedded (held) emulator and a held worker."""
    made: list[tuple[SteppedLoop, HeldChild, HeldChild]] = []

    def build() -> tuple[SteppedLoop, HeldChild, HeldChild]:
        worker, emulator = HeldChild(tmp_path), HeldChild(tmp_path, EMULATOR)
        loop = SteppedLoop(make_config(tmp_path, worker.plan, emulator.plan))
        made.append((loop, worker, emulator))
        return loop, worker, emulator

    yield build
    for loop, worker, emulator in made:
        _tear_down(loop, worker, emulator)


def _tear_down(loop: SteppedLoop, *held: HeldChild) -> None:
    """Never leave a held child, a FIFO end or a parked thread behind."""
    for rec in loop.supervisor.state.children.values():
        if rec.pid and not has_exited(rec.pid):
            os.killpg(rec.pid, signal.SIGKILL)
    loop.close()
    for child in held:
        child.close()


def _events(logs: Logs, name: str) -> Logs:
    return [e for e in logs if e["event"] == name]


def _crash(loop: SteppedLoop, worker: HeldChild, code: int = 3) -> float:
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


def _hang_until_sigterm(loop: SteppedLoop, worker: HeldChild, logs: Logs, freeze: bool = False) -> float:
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


def _wait_for_term(worker: HeldChild, pid: int) -> None:
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


def _serve(loop: SteppedLoop, worker: HeldChild, emulator: HeldChild, beat: bool = True) -> float:
    """One tick with the exchange serving (ready file touched) and, when ``beat``, the worker beating."""
    emulator.touch()
    pid = loop.record().pid
    if beat and pid is not None:
        worker.beat(loop.clock, pid)
    return loop.step()


def _freeze_emulator_until_restart(
    loop: SteppedLoop, worker: HeldChild, emulator: HeldChild, worker_beats: bool
) -> tuple[float, float]:
    """Serve a while, then freeze the exchange (ready file still); (last touch tick, restart tick)."""
    emu = loop.record(EMULATOR)
    emulator.ready()
    for _ in range(10):
        last_touch = _serve(loop, worker, emulator)
    assert emu.state == "running" and loop.record().state == "running"
    pid = loop.record().pid
    while emu.state != "stopping":  # frozen: no touch; the worker beats or waits on the exchange
        if worker_beats and pid is not None:
            worker.beat(loop.clock, pid)
        loop.step()
    # The ready file's silence counts like a heartbeat's: hung on the first tick past 300 s.
    assert loop.now - last_touch == 300.0 + TICK_S
    assert emu.pid is not None
    wait_dead(emu.pid)  # it obeys the SIGTERM
    seen = loop.step()
    assert (emu.state, emu.last_exit_reason, emu.backoff_s) == ("backoff", "hung", 5.0)
    restarted = loop.run_until(lambda: emu.state == "starting")
    assert restarted - seen == 5.0
    return last_touch, restarted


def test_frozen_emulator_is_restarted_not_the_worker(rig2: Rig2, logs: Logs) -> None:
    loop, worker, emulator = rig2()
    loop.start()
    assert [e["child"] for e in _events(logs, "child_spawn")] == ["emulator", "worker"]  # same tick
    _freeze_emulator_until_restart(loop, worker, emulator, worker_beats=True)
    emulator.ready()
    for _ in range(4):
        _serve(loop, worker, emulator)
    emu, rec = loop.record(EMULATOR), loop.record()
    assert emu.state == "running" and emu.hang_kills == 1 and emu.restarts == 1
    assert (rec.starts, rec.hang_kills, rec.consecutive_failures) == (1, 0, 0)
    assert [e["child"] for e in _events(logs, "child_hung")] == ["emulator"]
    assert loop.stop() == 0


def test_worker_stalled_by_a_frozen_emulator_is_not_charged(rig2: Rig2, logs: Logs) -> None:
    # The worker's heartbeat stops with its exchange (it waits on it) for longer than the heartbeat
    # timeout; the exchange is restarted, and the worker is neither killed nor charged a failure.
    loop, worker, emulator = rig2()
    loop.start()
    _, restarted = _freeze_emulator_until_restart(loop, worker, emulator, worker_beats=False)
    rec = loop.record()
    assert (rec.state, rec.starts, rec.hang_kills) == ("running", 1, 0)
    # Its hang clock restarts once the exchange serves again (the tick after the new emulator's
    # ready file appears): a worker that stays silent after that is hung exactly 300.5 s later.
    emulator.ready()
    hung_at = loop.now
    while rec.state != "stopping":
        hung_at = _serve(loop, worker, emulator, beat=False)
    assert hung_at - restarted == 300.0 + TICK_S
    assert [e["child"] for e in _events(logs, "child_hung")] == ["emulator", "worker"]
    assert rec.consecutive_failures == 0 and rec.hang_kills == 1
    assert loop.stop() == 0
