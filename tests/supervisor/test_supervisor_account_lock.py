"""The real supervisor process holds the account lock across worker restarts and refuses a rival."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from supervisor_harness import Harness

from cappuccino_daemon.accountlock import ENV_FD, AccountLock, LockHolder, lock_file, write_account_record
from cappuccino_daemon.errors import ConfigError

FOREVER: dict[str, Any] = {"run_s": None}


def _open_files(pid: int) -> dict[int, str]:
    out = {}
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            out[int(name)] = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            continue
    return out


def test_the_supervisor_takes_the_recorded_account_and_hands_it_to_its_worker(harness: Harness) -> None:
    path = lock_file("ACC-1", harness.tmp / "locks")
    write_account_record(harness.state, "ACC-1", path)  # what the previous worker recorded
    harness.write_config(worker=[FOREVER])
    proc = harness.start()
    start = harness.wait_for(
        lambda: next((e for e in harness.child_events("worker") if e["event"] == "start"), None),
        timeout=60,
        message="the worker's start",
    )
    with pytest.raises(ConfigError) as info:
        AccountLock("ACC-1", harness.tmp / "locks").acquire(LockHolder.me("worker", "ACC-1", None, None))
    assert f"the supervisor pid {proc.pid}" in str(info.value) and str(harness.config) in str(info.value)
    assert str(harness.state) in str(info.value)
    # The worker holds the same open file: the descriptor named in its environment points at the lock.
    environ = (Path(f"/proc/{start['pid']}/environ")).read_bytes().split(b"\0")
    fd = int(next(v for v in environ if v.startswith(ENV_FD.encode() + b"=")).split(b"=", 1)[1])
    assert _open_files(start["pid"])[fd] == str(path)
    assert harness.stop() == 0
    AccountLock("ACC-1", harness.tmp / "locks").acquire(LockHolder.me("worker", "ACC-1", None, None))


HOLDER = """
import sys
from pathlib import Path
from cappuccino_daemon.accountlock import AccountLock, LockHolder
lock = AccountLock.at(Path(sys.argv[1]), "ACC-1")
lock.acquire(LockHolder.me("worker", "ACC-1", Path(sys.argv[2]), Path(sys.argv[3])))
print("held", flush=True)
sys.stdin.read()
"""


def _holder(path: Path, config: Path, state: Path) -> subprocess.Popen[str]:
    """Another process holding the account lock (naming ``config`` and ``state``) until stdin closes."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path), str(config), str(state)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"  # the barrier
    return proc


def test_a_second_daemon_on_the_account_exits_78_before_starting_its_worker(harness: Harness) -> None:
    path = lock_file("ACC-1", harness.tmp / "locks")
    write_account_record(harness.state, "ACC-1", path)
    other_config, other_state = harness.tmp / "other.toml", harness.tmp / "other-state"
    rival = _holder(path, other_config, other_state)
    try:
        harness.write_config(worker=[FOREVER])
        assert harness.run_to_exit(timeout=60) == 78
        assert not harness.child_events("worker")  # no worker ever started
        (refusal,) = harness.logs("account_lock_refused")
        assert f"the worker pid {rival.pid}" in refusal["error"] and str(other_state) in refusal["error"]
        state = harness.state_json()
        assert state["status"] == "given_up" and "already traded" in state["message"]
    finally:
        rival.kill()
        rival.wait()


def test_a_restarted_supervisor_waits_for_its_previous_worker_to_let_go(harness: Harness) -> None:
    """kill -9 of the supervisor leaves its worker holding the inherited lock for a moment while it exits;
    the next supervisor waits for it instead of giving up with 78 (found by the chaos soak)."""
    path = lock_file("ACC-1", harness.tmp / "locks")
    write_account_record(harness.state, "ACC-1", path)
    orphan = _holder(path, harness.config, harness.state)  # the previous life's worker: our config, state
    try:
        harness.write_config(worker=[FOREVER])
        harness.start()
        (pending,) = harness.wait_for(
            lambda: harness.logs("account_lock_pending"), timeout=60, message="the wait for the lock"
        )
        assert pending["lock_file"] == str(path)
        assert not harness.child_events("worker")  # nothing trades while the orphan holds the account
        assert orphan.stdin is not None
        orphan.stdin.close()  # the orphan finishes exiting
        orphan.wait(timeout=30)
        harness.wait_for(
            lambda: [e for e in harness.child_events("worker") if e["event"] == "start"],
            timeout=60,
            message="the worker's start once the lock is free",
        )
        assert harness.logs("account_lock_refused") == []
        assert harness.stop() == 0
    finally:
        orphan.kill()
        orphan.wait()
