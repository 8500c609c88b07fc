"""The emulator's simulated clock: a start time, a speed, and explicit jumps.

``now = anchor_sim + (wall - anchor_wall) * speed``. Speed 0 freezes time so tests move it only
with ``advance``; speed 1 is real time. It satisfies ``cappuccino_daemon.clock.Clock``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta


class SimClock:
    def __init__(
        self, start: datetime, speed: float = 0.0, wall: Callable[[], float] = time.monotonic
    ) -> None:
        if speed < 0:
            raise ValueError(f"speed must be >= 0, got {speed}")
        if start.tzinfo is None:
            start = start.replace(tzinfo=UTC)
        self._wall = wall
        self._speed = float(speed)
        self._anchor_sim = start.astimezone(UTC)
        self._anchor_wall = wall()
        self._lock = threading.Lock()

    @property
    def speed(self) -> float:
        return self._speed

    def now(self) -> datetime:
        with self._lock:
            elapsed = (self._wall() - self._anchor_wall) * self._speed
            return self._anchor_sim + timedelta(seconds=elapsed)

    def monotonic(self) -> float:
        return self.now().timestamp()

    def sleep(self, seconds: float) -> None:
        """Simulated sleep: jump forward instead of waiting (only sensible at speed 0)."""
        self.advance(max(0.0, seconds))

    def advance(self, seconds: float) -> datetime:
        """Jump forward by ``seconds`` of simulated time; the clock never goes backwards."""
        if seconds < 0:
            raise ValueError(f"cannot move the simulated clock backwards ({seconds} s)")
        return self.set(self.now() + timedelta(seconds=seconds))

    def set(self, when: datetime) -> datetime:
        """Jump to ``when`` (not earlier than now)."""
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        with self._lock:
            current = self._anchor_sim + timedelta(seconds=(self._wall() - self._anchor_wall) * self._speed)
            if when < current:
                raise ValueError(f"cannot move the simulated clock backwards to {when.isoformat()}")
            self._anchor_sim = when.astimezone(UTC)
            self._anchor_wall = self._wall()
            return self._anchor_sim
