"""Child processes: own process group, clean environment, SIGTERM then SIGKILL of the whole group.

The worker must never talk to systemd itself (``NotifyAccess=main``), so the notify/watchdog variables
are stripped. On Linux the child also asks the kernel for SIGTERM when the supervisor dies (PDEATHSIG),
so a ``kill -9`` of the supervisor cannot leave an orphan worker trading unsupervised.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cappuccino_daemon.supervisor.notify import NOTIFY_ENV_VARS

_PR_SET_PDEATHSIG = 1


def clean_env(
    base: Mapping[str, str] | None = None, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment for a child: ours minus sd_notify/watchdog variables, plus ``extra``."""
    env = dict(os.environ if base is None else base)
    for name in NOTIFY_ENV_VARS:
        env.pop(name, None)
    env.update(extra or {})
    return env


def die_with_parent() -> Callable[[], None]:
    """A ``preexec_fn``: the child gets SIGTERM from the kernel when we die, even by SIGKILL.

    PR_SET_PDEATHSIG fires when the parent exits after the call; a parent that died between fork and
    the call is caught by comparing ``getppid()`` with the pid taken before the fork.
    """
    parent = os.getpid()
    libc = _libc()

    def preexec() -> None:  # runs in the child between fork and exec
        if libc is not None:
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)

    return preexec


def _libc() -> Any:
    """libc for prctl (Linux only), loaded once; None elsewhere or when unavailable."""
    global _LIBC
    if _LIBC is None and sys.platform.startswith("linux"):
        import ctypes  # lazy: only a spawning supervisor needs it

        with contextlib.suppress(OSError):
            _LIBC = ctypes.CDLL(None, use_errno=True)
    return _LIBC


_LIBC: Any = None


def spawn(
    argv: Sequence[str], env: Mapping[str, str], cwd: Path | None = None, pass_fds: Sequence[int] = ()
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in a new session (its own process group); stdout/stderr go to ours (journald)."""
    return subprocess.Popen(
        list(argv),
        env=dict(env),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        close_fds=True,
        pass_fds=tuple(pass_fds),
        preexec_fn=die_with_parent(),
    )


def signal_group(pid: int, sig: int) -> bool:
    """Send ``sig`` to the child's process group (falls back to the pid); False if it is already gone."""
    try:
        os.killpg(pid, sig)
        return True
    except ProcessLookupError:
        pass
    except PermissionError:
        return False
    try:
        os.kill(pid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def request_stop(pid: int) -> None:
    """SIGTERM the group, then SIGCONT so a stopped (SIGSTOP'ed, hung) child can act on it."""
    signal_group(pid, signal.SIGTERM)
    signal_group(pid, signal.SIGCONT)


@dataclass(frozen=True)
class ExitInfo:
    """How a child ended: ``code`` for a normal exit, ``signal`` name when a signal killed it."""

    returncode: int
    code: int | None
    signal: str | None

    @classmethod
    def from_returncode(cls, returncode: int) -> ExitInfo:
        if returncode < 0:
            try:
                name = signal.Signals(-returncode).name
            except ValueError:
                name = f"SIG{-returncode}"
            return cls(returncode=returncode, code=None, signal=name)
        return cls(returncode=returncode, code=returncode, signal=None)

    def describe(self) -> str:
        return f"signal {self.signal}" if self.signal else f"exit code {self.code}"


def stop_child(
    proc: subprocess.Popen[bytes],
    timeout_s: float,
    wait: Callable[[float], None],
    monotonic: Callable[[], float],
) -> tuple[ExitInfo, bool]:
    """Blocking stop: SIGTERM (+SIGCONT), wait up to ``timeout_s``, then SIGKILL. Returns (exit, killed)."""
    if proc.poll() is None:
        request_stop(proc.pid)
        deadline = monotonic() + timeout_s
        while proc.poll() is None and monotonic() < deadline:
            wait(min(0.05, max(0.0, deadline - monotonic())))
    killed = False
    if proc.poll() is None:
        killed = True
        signal_group(proc.pid, signal.SIGKILL)
        proc.wait()
    # Stragglers in the group (grandchildren) do not outlive their leader's stop.
    signal_group(proc.pid, signal.SIGKILL)
    assert proc.returncode is not None
    return ExitInfo.from_returncode(proc.returncode), killed
