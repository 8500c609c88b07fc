"""Sleeping that signals can cut short: the loop waits on a self-pipe fed by ``signal.set_wakeup_fd``.

Signal handlers only set flags (never act mid-operation); the byte written to the pipe wakes the loop so
it reaches its next safe point at once. SIGCHLD wakes it too, so a crashed child is noticed immediately.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType

StopHandler = Callable[[int], None]


class Waker:
    def __init__(self) -> None:
        self._r, self._w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._installed = False
        self._previous: dict[int, object] = {}
        self._old_wakeup_fd = -1

    def install(self, on_stop: StopHandler, on_hup: StopHandler | None = None) -> bool:
        """Route SIGTERM/SIGINT to ``on_stop`` (flag only); False when not on the main thread."""
        if threading.current_thread() is not threading.main_thread():
            return False

        def stop_handler(signum: int, _frame: FrameType | None) -> None:
            on_stop(signum)

        def hup_handler(signum: int, _frame: FrameType | None) -> None:
            if on_hup is not None:
                on_hup(signum)

        def noop(_signum: int, _frame: FrameType | None) -> None:
            return None

        self._old_wakeup_fd = signal.set_wakeup_fd(self._w, warn_on_full_buffer=False)
        for sig, handler in (
            (signal.SIGTERM, stop_handler),
            (signal.SIGINT, stop_handler),
            (signal.SIGHUP, hup_handler),
            (signal.SIGCHLD, noop),
        ):
            self._previous[sig] = signal.signal(sig, handler)
        self._installed = True
        return True

    def uninstall(self) -> None:
        if not self._installed:
            return
        for sig, handler in self._previous.items():
            with contextlib.suppress(TypeError, ValueError):
                signal.signal(sig, handler)  # type: ignore[arg-type]
        signal.set_wakeup_fd(self._old_wakeup_fd)
        self._installed = False

    def wait(self, timeout_s: float) -> None:
        """Block up to ``timeout_s`` or until a signal arrives."""
        if timeout_s <= 0:
            return
        if not self._installed:
            time.sleep(timeout_s)
            return
        with contextlib.suppress(InterruptedError):
            readable, _, _ = select.select([self._r], [], [], timeout_s)
            if readable:
                self._drain()

    def _drain(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            while os.read(self._r, 512):
                pass

    def close(self) -> None:
        self.uninstall()
        for fd in (self._r, self._w):
            with contextlib.suppress(OSError):
                os.close(fd)
