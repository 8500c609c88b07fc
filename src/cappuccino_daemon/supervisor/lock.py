"""Single-instance lock: two supervisors on one state directory would trade one account twice.

``flock`` on ``<state>/supervisor.lock``: the kernel drops it when the process dies (even ``kill -9``),
so there is no stale-lock cleanup. The file holds the owner's pid for the error message.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from types import TracebackType

from cappuccino_daemon.errors import ConfigError
from cappuccino_daemon.layout import StateLayout


class InstanceLock:
    def __init__(self, state_dir: Path) -> None:
        self.path = StateLayout(Path(state_dir)).supervisor_lock
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise ConfigError naming the holder and how to stop it."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise ConfigError(
                f"Cannot create the supervisor lock {self.path} ({exc.strerror or exc}): the state "
                f"directory {self.path.parent} must be writable by the user running the daemon. Fix its "
                "owner/permissions, or point [paths] state (CAPPUCCINO_PATHS__STATE) at a writable folder."
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            who = f"pid {holder}" if holder else "another process"
            raise ConfigError(
                f"Another supervisor ({who}) already runs on state directory {self.path.parent} (lock file "
                f"{self.path}); two supervisors would trade the same account twice. Stop it first "
                f"(`systemctl stop cappuccino-paper` or `kill {holder or '<pid>'}`), or give this instance "
                "its own [paths] state directory and account."
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)
        os.close(self._fd)  # closing drops the flock
        self._fd = None

    def __enter__(self) -> InstanceLock:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None
