"""The real supervisor loop on a fake clock that the test steps tick by tick (like trio's MockClock).

The loop runs in a thread with an injected ``wait``: between two ticks it parks there until the test
calls ``step``, which advances the fake clock by exactly the wait the loop asked for and lets it run one
tick. Children are real subprocesses (``held_child.py``) that do nothing until the test tells them to
exit through a FIFO, and heartbeats are written by the test with fake-clock stamps, so every ordering
is decided by the test: no sleep, no wall-clock window.
"""

from __future__ import annotations

import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cappuccino_daemon.clock import FakeClock
from cappuccino_daemon.heartbeat import Heartbeat, write_heartbeat
from cappuccino_daemon.supervisor.loop import Supervisor
from cappuccino_daemon.supervisor.notify import Notifier
from cappuccino_daemon.supervisor.runtime import WORKER, ChildPlan, SupervisorConfig
from cappuccino_daemon.supervisor.state_store import ChildRecord

HELD_CHILD = Path(__file__).with_name("held_child.py")
BARRIER_S = 20.0  # how long a barrier may take on a loaded machine before the test fails


class HeldChild:
    """The test's handle on a child: its plan, its control FIFO and the liveness it fakes.

    A worker is watched through a heartbeat file (``beat``), the emulator through the mtime of its
    ready file (``touch``), exactly as the loop watches the real ones; the test writes both.
    """

    def __init__(self, tmp: Path, role: str = WORKER, ignore_term: bool = False) -> None:
        self.fifo = tmp / f"{role}.fifo"
        self.signals = tmp / f"{role}-signals.txt"
        self.heartbeat_file = tmp / "heartbeat.json"
        self.ready_file = tmp / "exchange.ready"
        os.mkfifo(self.fifo)
        flags = ["--ignore-term"] if ignore_term else []
        argv = [sys.executable, "-I", "-S", str(HELD_CHILD), str(self.fifo), str(self.signals), *flags]
        if role == WORKER:
            self.plan = ChildPlan(name=role, argv=argv, heartbeat_file=self.heartbeat_file)
        else:
            self.plan = ChildPlan(name=role, argv=argv, ready_file=self.ready_file)
        self._cycles = 0
        self._touches = 0
        self._fd: int | None = None

    def ready(self) -> None:
        """Barrier: return once the current child has its SIGTERM handler and reads the FIFO.

        The write end stays open (closing it would be EOF, which the child treats as exit 1); a stale
        one left by a dead child is closed only after the new one is open, for the same reason.
        """
        deadline = time.monotonic() + BARRIER_S
        while True:
            try:
                fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
                break
            except OSError:  # ENXIO: no reader yet
                if time.monotonic() > deadline:
                    raise AssertionError("the held child never opened its control FIFO") from None
                time.sleep(0.005)
        if self._fd is not None:
            os.close(self._fd)
        self._fd = fd

    def exit(self, pid: int, code: int) -> None:
        """Make the running child exit with ``code`` and return once it has (not yet reaped)."""
        self.ready()
        assert self._fd is not None
        os.write(self._fd, f"{code}\n".encode())
        os.close(self._fd)
        self._fd = None
        wait_dead(pid)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def beat(self, clock: FakeClock, pid: int) -> None:
        self._cycles += 1
        hb = Heartbeat(time=clock.now(), pid=pid, phase="TRADING", cycles=self._cycles, equity=1000.0)
        write_heartbeat(self.heartbeat_file, hb)

    def touch(self) -> None:
        """The emulator serving: its ready file exists and its mtime moves (a new value each call)."""
        self._touches += 1
        self.ready_file.touch()
        os.utime(self.ready_file, ns=(self._touches * 10**9, self._touches * 10**9))

    def terms(self) -> list[int]:
        """Pids that received SIGTERM, in order."""
        if not self.signals.exists():
            return []
        return [int(line.split()[0]) for line in self.signals.read_text().splitlines() if line]


def wait_dead(pid: int) -> None:
    """Barrier: block until our child ``pid`` has exited, without reaping it (the loop's poll does)."""
    deadline = time.monotonic() + BARRIER_S
    while os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
        if time.monotonic() > deadline:
            raise AssertionError(f"child {pid} did not exit")
        time.sleep(0.002)


def stop_and_wait(pid: int) -> None:
    """SIGSTOP our child (frozen: alive, silent) and return once the kernel reports it stopped."""
    os.kill(pid, signal.SIGSTOP)
    deadline = time.monotonic() + BARRIER_S
    while os.waitid(os.P_PID, pid, os.WSTOPPED | os.WNOHANG | os.WNOWAIT) is None:
        if time.monotonic() > deadline:
            raise AssertionError(f"child {pid} did not stop")
        time.sleep(0.002)


def has_exited(pid: int) -> bool:
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:  # already reaped
        return True


class SteppedLoop:
    """A ``Supervisor`` in a thread whose ``wait`` hands control back to the test."""

    def __init__(self, config: SupervisorConfig, notifier: Notifier | None = None) -> None:
        self.clock = FakeClock()
        self.supervisor = Supervisor(
            config,
            clock=self.clock,
            notifier=notifier or Notifier(environ={}),
            install_signals=False,
            wait=self._wait,
        )
        self._to_test: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._to_loop: queue.Queue[bool] = queue.Queue()
        self._requested = 0.0
        self._free_run = False
        self.exit_code: int | None = None
        self._thread = threading.Thread(target=self._main, name="supervisor-under-test", daemon=True)

    # ------------------------------------------------------------ the loop side
    def _main(self) -> None:
        try:
            self._to_test.put(("exit", self.supervisor.run()))
        except BaseException as exc:  # surfaced in the test thread
            self._to_test.put(("error", exc))

    def _wait(self, seconds: float) -> None:
        if self._free_run:  # shutting down: let real children act, keep fake time moving
            time.sleep(min(seconds, 0.01))
            self.clock.advance(seconds)
            return
        self._to_test.put(("parked", seconds))
        self._to_loop.get()

    # ------------------------------------------------------------ the test side
    @property
    def now(self) -> float:
        return self.clock.monotonic()

    def record(self, name: str = WORKER) -> ChildRecord:
        return self.supervisor.state.children[name]

    def start(self) -> float:
        """Run the loop up to its first wait (the first tick has run at fake time 0)."""
        self._thread.start()
        self._receive()
        return self.now

    def step(self) -> float:
        """Advance the fake clock by the wait the loop asked for, run one tick; its fake time."""
        self.clock.advance(self._requested)
        self._to_loop.put(True)
        self._receive()
        return self.now

    def run_until(self, done: Callable[[], bool], limit_s: float = 3600.0) -> float:
        """Step tick by tick until ``done()``; the fake time of the first tick where it holds."""
        start = self.now
        while not done():
            if self.now - start > limit_s:
                raise AssertionError(f"not reached within {limit_s} fake seconds (now {self.now})")
            self.step()
        return self.now

    def stop(self) -> int:
        """SIGTERM, as systemd would; the shutdown then runs freely. Returns the exit code."""
        self.supervisor.request_stop(signal.SIGTERM)
        self._free_run = True
        self._to_loop.put(True)
        self._receive()
        self._thread.join(BARRIER_S)
        assert self.exit_code is not None
        return self.exit_code

    def close(self) -> None:
        """Teardown: stop the loop if its thread still runs (a failed test may leave it parked)."""
        if self._thread.is_alive() and self.exit_code is None:
            self.stop()

    def _receive(self) -> None:
        kind, value = self._to_test.get(timeout=BARRIER_S * 3)
        if kind == "parked":
            self._requested = value
        elif kind == "exit":
            self.exit_code = value
        else:
            raise AssertionError("the supervisor loop raised") from value


def make_config(tmp: Path, worker: ChildPlan, emulator: ChildPlan | None = None) -> SupervisorConfig:
    """The documented defaults (backoff 5..300 s, healthy after 60 s, hang 300 s, SIGKILL after 30 s)."""
    state = tmp / "state"
    state.mkdir(exist_ok=True)
    return SupervisorConfig(state_dir=state, worker=worker, emulator=emulator)


def kill_children(loop: SteppedLoop) -> None:
    """Teardown: SIGKILL every child the loop still has running (a failed test may leave one)."""
    for rec in loop.supervisor.state.children.values():
        if rec.pid and not has_exited(rec.pid):
            os.killpg(rec.pid, signal.SIGKILL)
