"""A stalled worker (alive, beating, resolving no bars) is kept running and reported, never restarted.

The real loop on a stepped fake clock with a held worker whose heartbeats the test writes (see
``stepped_loop.py``): fresh every tick, but saying ``progress: stalled``.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import structlog
from stepped_loop import HeldChild, SteppedLoop, make_config
from test_supervisor_fake_clock import _tear_down

from cappuccino_daemon.clock import FakeClock
from cappuccino_daemon.heartbeat import Heartbeat, Progress, write_heartbeat
from cappuccino_daemon.supervisor.notify import Notifier

LAST_BAR_AT = FakeClock().now() - timedelta(hours=2)
RUN_S = 400.0  # past heartbeat_timeout_s (300 s): a stale heartbeat would have been killed by now
CAUSE = "local clock is +900.0s off the broker's (limit 30.0s); refusing to trade"


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[Path, socket.socket]]:
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.setblocking(False)
    yield path, sock
    sock.close()


def _drain(sock: socket.socket) -> list[str]:
    """Every KEY=value line received (READY=1 and STATUS= may share one datagram)."""
    out: list[str] = []
    while True:
        try:
            out += sock.recv(4096).decode().splitlines()
        except BlockingIOError:
            return out


def _beat(loop: SteppedLoop, held: HeldChild, pid: int, progress: Progress) -> None:
    """A fresh heartbeat (its time is the tick's), saying whether bars get resolved."""
    stalled = progress is Progress.STALLED
    write_heartbeat(
        held.heartbeat_file,
        Heartbeat(
            time=loop.clock.now(), pid=pid, phase="WAITING", cycles=1, progress=progress,
            last_progress_at=LAST_BAR_AT if stalled else loop.clock.now(),
            stall_cause=CAUSE if stalled else "",
        ),
    )  # fmt: skip


def test_a_stalled_but_alive_worker_is_kept_running_reported_and_the_watchdog_still_fed(
    tmp_path: Path, notify_socket: tuple[Path, socket.socket]
) -> None:
    sock_path, sock = notify_socket
    notifier = Notifier(environ={"NOTIFY_SOCKET": str(sock_path), "WATCHDOG_USEC": "2000000"})
    held = HeldChild(tmp_path)
    loop = SteppedLoop(make_config(tmp_path, held.plan), notifier=notifier)
    try:
        with structlog.testing.capture_logs() as logs:
            loop.start()
            rec = loop.record()
            pid = rec.pid
            assert pid is not None
            held.ready()  # barrier: its SIGTERM handler is installed, so a SIGTERM would be recorded
            messages: list[str] = []
            start = loop.now
            while loop.now - start < RUN_S:  # longer than the heartbeat timeout, stalled throughout
                _beat(loop, held, pid, Progress.STALLED)
                loop.step()
                messages += _drain(sock)
            assert (rec.state, rec.pid, rec.starts, rec.restarts, rec.hang_kills) == ("running", pid, 1, 0, 0)
            assert held.terms() == []  # never asked to stop
            stalled = [e for e in logs if e["event"] == "child_stalled"]
            assert len(stalled) == 1 and stalled[0]["cause"] == CAUSE  # on the turn, not every beat
            pings = [m for m in messages if m == "WATCHDOG=1"]
            assert len(pings) >= RUN_S - 5  # fed every second: a stall must not restart the unit
            statuses = [m for m in messages if m.startswith("STATUS=")]
            assert statuses and "STALLED" in statuses[-1] and CAUSE in statuses[-1]

            _beat(loop, held, pid, Progress.OK)
            loop.step()
            assert [e["event"] for e in logs].count("child_progress_resumed") == 1
            assert "STALLED" not in [m for m in _drain(sock) if m.startswith("STATUS=")][-1]
    finally:
        _tear_down(loop, held)
