"""One account, one trader per host: the account lock between real processes (flock)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cappuccino_daemon.accountlock import (
    AccountLock,
    LockHolder,
    default_lock_dir,
    lock_file,
    read_account_record,
    write_account_record,
)
from cappuccino_daemon.errors import ConfigError
from cappuccino_daemon.supervisor.accounthold import AccountHold, AccountLockPending

HOLDER = """
import sys
from pathlib import Path
from cappuccino_daemon.accountlock import AccountLock, LockHolder
path, account, role, config, state = sys.argv[1:6]
lock = AccountLock.at(Path(path), account)
lock.acquire(LockHolder.me(role, account, Path(config), Path(state)))
print("held", flush=True)
sys.stdin.read()
"""


class Rival:
    """Another process holding an account lock until its stdin closes (or it is killed)."""

    def __init__(self, path: Path, account: str, role: str = "worker", state: Path | None = None) -> None:
        self.config, self.state = path.parent / "other.toml", state or path.parent / "other-state"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(path), account, role, str(self.config), str(self.state)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline().strip() == "held"  # the barrier: it holds the lock now

    def end(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


@pytest.fixture()
def rivals() -> Iterator[list[Rival]]:
    made: list[Rival] = []
    yield made
    for rival in made:
        if rival.proc.poll() is None:
            rival.proc.kill()
            rival.proc.wait()


def _me(tmp_path: Path, account: str = "ACC-1") -> LockHolder:
    return LockHolder.me("worker", account, tmp_path / "mine.toml", tmp_path / "my-state")


def test_a_second_trader_is_refused_naming_the_holder(tmp_path: Path, rivals: list[Rival]) -> None:
    path = lock_file("ACC-1", tmp_path / "locks")
    rival = Rival(path, "ACC-1")
    rivals.append(rival)
    with pytest.raises(ConfigError) as info:
        AccountLock("ACC-1", tmp_path / "locks").acquire(_me(tmp_path))
    text = str(info.value)
    assert f"pid {rival.proc.pid}" in text and str(rival.config) in text and str(rival.state) in text
    assert "Broker account ACC-1" in text and str(tmp_path / "mine.toml") in text and "\n" not in text
    # Another account is another lock.
    other = AccountLock("ACC-2", tmp_path / "locks")
    other.acquire(_me(tmp_path, "ACC-2"))
    other.release()
    # Once the holder ends, the lock is free, and the file names its new holder.
    rival.end()
    mine = AccountLock("ACC-1", tmp_path / "locks")
    mine.acquire(_me(tmp_path))
    assert mine.path == path
    with pytest.raises(ConfigError, match=f"pid {os.getpid()}"):
        AccountLock("ACC-1", tmp_path / "locks").acquire(_me(tmp_path))  # even from the same process
    mine.release()


def test_the_kernel_drops_the_lock_of_a_killed_holder(tmp_path: Path, rivals: list[Rival]) -> None:
    path = lock_file("ACC-1", tmp_path / "locks")
    rival = Rival(path, "ACC-1")
    rivals.append(rival)
    rival.proc.send_signal(signal.SIGKILL)
    rival.proc.wait(timeout=30)
    with AccountLock("ACC-1", tmp_path / "locks") as lock:
        lock.acquire(_me(tmp_path))  # no stale-lock cleanup needed


def test_an_inherited_descriptor_of_the_same_file_is_adopted(tmp_path: Path) -> None:
    parent = AccountLock("ACC-1", tmp_path / "locks")
    parent.acquire(LockHolder.me("supervisor", "ACC-1", None, tmp_path))
    child = AccountLock("ACC-1", tmp_path / "locks")
    assert child.adopt(parent.fd) and child.fd == parent.fd
    child.release()  # an adopted lock is not closed by the adopter: the parent still holds it
    with pytest.raises(ConfigError, match="the supervisor pid"):
        AccountLock("ACC-1", tmp_path / "locks").acquire(_me(tmp_path))
    stranger = AccountLock("ACC-2", tmp_path / "locks")
    assert not stranger.adopt(parent.fd) and not stranger.adopt(None)
    parent.release()


def test_odd_account_ids_become_safe_file_names(tmp_path: Path) -> None:
    weird = lock_file("../../etc/x y", tmp_path)
    assert weird.parent == tmp_path and "/" not in weird.name and ".." not in weird.name
    assert lock_file("904837e3-3b76-47ec-b432-046db621571b", tmp_path).name == (
        "account-904837e3-3b76-47ec-b432-046db621571b.lock"
    )


def test_default_lock_folder_is_per_user_and_ignores_the_session(tmp_path: Path) -> None:
    assert default_lock_dir({"RUNTIME_DIRECTORY": f"{tmp_path}/a:{tmp_path}/b"}) == tmp_path / "a"
    folder = default_lock_dir({"XDG_RUNTIME_DIR": str(tmp_path)})
    assert folder != tmp_path and (
        folder.name == f"cappuccino-paper-{os.getuid()}" or folder.name == ("cappuccino-paper")
    )


def test_supervisor_hold_takes_the_recorded_account_and_refuses_a_rival(
    tmp_path: Path, rivals: list[Rival]
) -> None:
    state = tmp_path / "state"
    hold = AccountHold(state, tmp_path / "daemon.toml", lambda: 0.0)
    assert hold.before_worker_start() is None  # no record yet: the first worker takes it itself
    path = lock_file("ACC-1", tmp_path / "locks")
    write_account_record(state, "ACC-1", path)
    assert read_account_record(state) == ("ACC-1", path)
    rival = Rival(path, "ACC-1", role="worker")
    rivals.append(rival)
    with pytest.raises(ConfigError, match=f"pid {rival.proc.pid}"):
        hold.before_worker_start()
    rival.end()
    fd = hold.before_worker_start()
    assert fd is not None and hold.before_worker_start() == fd  # held across worker restarts
    # While the supervisor holds it (and its worker inherits the descriptor) no one else can take it.
    probe = (
        "import fcntl, os, sys\n"
        "fd = os.open(sys.argv[1], os.O_RDWR)\n"
        "try:\n    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\nexcept BlockingIOError:\n    sys.exit(3)\n"
    )
    assert subprocess.run([sys.executable, "-c", probe, str(path)], timeout=30).returncode == 3
    hold.release()
    assert subprocess.run([sys.executable, "-c", probe, str(path)], timeout=30).returncode == 0


def test_our_previous_life_gets_a_grace_to_let_go_and_a_stranger_none(
    tmp_path: Path, rivals: list[Rival]
) -> None:
    """A killed supervisor's orphan worker still holds the lock while it exits (found by the soak)."""
    state = tmp_path / "state"
    now = [100.0]
    hold = AccountHold(state, tmp_path / "daemon.toml", lambda: now[0], grace_s=10.0)
    path = lock_file("ACC-1", tmp_path / "locks")
    write_account_record(state, "ACC-1", path)
    orphan = Rival(path, "ACC-1", role="worker", state=state)  # the previous life's worker, exiting
    rivals.append(orphan)
    with pytest.raises(AccountLockPending):
        hold.before_worker_start()
    assert hold.pending_for_s == 0.0
    now[0] += 9.9
    with pytest.raises(AccountLockPending):
        hold.before_worker_start()
    orphan.end()
    fd = hold.before_worker_start()  # gone: ours now, and the wait is over
    assert fd is not None and hold.pending_for_s is None
    hold.release()
    # Past the grace, our own state directory's holder is refused like anyone else.
    stuck = Rival(path, "ACC-1", role="worker", state=state)
    rivals.append(stuck)
    with pytest.raises(AccountLockPending):
        hold.before_worker_start()
    now[0] += 10.0
    with pytest.raises(ConfigError, match=f"pid {stuck.proc.pid}"):
        hold.before_worker_start()
    stuck.end()
    # A holder with another state directory is another daemon: refused at once, no grace.
    stranger = Rival(path, "ACC-1", role="supervisor")
    rivals.append(stranger)
    fresh = AccountHold(state, tmp_path / "daemon.toml", lambda: now[0], grace_s=10.0)
    with pytest.raises(ConfigError, match=f"pid {stranger.proc.pid}"):
        fresh.before_worker_start()
    assert fresh.pending_for_s is None
