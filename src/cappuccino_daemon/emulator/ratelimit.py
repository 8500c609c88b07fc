"""The trading API's request budget: ``limit`` requests per minute per API key, on the WALL clock.

Alpaca counts real minutes; the simulated clock can run hundreds of times faster than real time, so
a budget in simulated time would be either meaningless or impossible to meet. Each key gets a fixed
60 s window starting at its first request in that window; ``X-RateLimit-Reset`` is the window's end
(unix seconds). The clock is injected so tests step it instead of sleeping.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

WINDOW_S = 60.0


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    headers: dict[str, str]


class RateLimiter:
    def __init__(self, limit: int, clock: Callable[[], float] = time.time) -> None:
        self.limit = limit
        self._clock = clock
        self._windows: dict[str, tuple[float, int]] = {}  # key -> (window start, requests counted)
        self._lock = threading.Lock()

    def take(self, key: str) -> Verdict:
        """Count one request of ``key``; past the budget it is refused (and not counted)."""
        now = self._clock()
        with self._lock:
            start, used = self._windows.get(key, (now, 0))
            if now - start >= WINDOW_S:
                start, used = now, 0
            allowed = used < self.limit
            if allowed:
                used += 1
            self._windows[key] = (start, used)
        reset = start + WINDOW_S
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(max(0, self.limit - used)),
            "X-RateLimit-Reset": str(math.ceil(reset)),
        }
        if not allowed:
            headers["Retry-After"] = str(max(1, math.ceil(reset - now)))
        return Verdict(allowed, headers)
