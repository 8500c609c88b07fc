"""The client side of Alpaca's request budget: stay below the server's limit, wait out its resets.

Alpaca allows 200 trading requests per minute per key and answers 429 past it. We keep our own,
lower budget (``[worker] request_budget_per_min``, 180 by default) as a sliding 60 s window of our
own requests, and we also believe the server: ``X-RateLimit-Remaining`` at 0 (or a 429) means no
request until ``X-RateLimit-Reset`` (unix seconds) or ``Retry-After`` has passed. Waiting happens
*before* a request is sent, so a submit is delayed, never repeated. Clock and sleep are injected
(tests step a fake wall clock instead of sleeping).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping

from cappuccino_daemon.logsetup import get_logger

log = get_logger(__name__)

WINDOW_S = 60.0
MAX_WAIT_S = 65.0  # never trust a hint that asks for more than one window (plus slack)


def _number(headers: Mapping[str, str], name: str) -> float | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None


def retry_after_s(headers: Mapping[str, str], now: float) -> float | None:
    """Seconds to wait after a 429: ``Retry-After``, else ``X-RateLimit-Reset`` minus now."""
    hint = _number(headers, "Retry-After")
    if hint is not None:
        return max(0.0, hint)
    reset = _number(headers, "X-RateLimit-Reset")
    return max(0.0, reset - now) if reset is not None else None


def backoff_s(exc: BaseException, default_s: float) -> float:
    """How long to wait before trying again after ``exc``: a 429's hint (capped), else ``default_s``."""
    hint = getattr(exc, "retry_after_s", None)
    if isinstance(hint, int | float) and hint > 0:
        return min(float(hint), MAX_WAIT_S)
    return default_s


class RequestBudget:
    """``acquire`` before every request, ``observe`` every response; thread-safe."""

    def __init__(
        self,
        per_minute: int = 180,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if per_minute < 1:
            raise ValueError(
                f"RequestBudget(per_minute={per_minute}): needs at least 1 (0 = no budget object)"
            )
        self.per_minute = per_minute
        self.clock = clock
        self.sleep = sleep
        self._sent: deque[float] = deque()
        self._blocked_until = 0.0  # the server said: nothing before this
        self._lock = threading.Lock()
        self.waited_s = 0.0  # total time spent waiting (for logs, metrics and tests)
        self.rate_limited = 0  # 429s seen

    def _wait_needed(self, now: float) -> float:
        while self._sent and now - self._sent[0] >= WINDOW_S:
            self._sent.popleft()
        wait = max(0.0, self._blocked_until - now)
        if len(self._sent) >= self.per_minute:
            wait = max(wait, self._sent[0] + WINDOW_S - now)
        return min(wait, MAX_WAIT_S)

    def acquire(self) -> None:
        """Block until one more request fits the budget, then count it.

        At most a few rounds: a clock that does not move while we sleep must not hang the worker.
        """
        for _ in range(4):
            with self._lock:
                now = self.clock()
                wait = self._wait_needed(now)
                if wait <= 0:
                    break
            # Pacing a burst (a fill poll loop) is routine; a wait for a server reset is news.
            (log.info if wait >= 1.0 else log.debug)(
                "request_budget_wait", wait_s=round(wait, 3), budget_per_min=self.per_minute
            )
            self.waited_s += wait
            self.sleep(wait)
        with self._lock:
            self._sent.append(self.clock())

    def observe(self, status_code: int, headers: Mapping[str, str]) -> None:
        """Learn from a response: a 429 or an exhausted remaining count blocks until the reset."""
        now = self.clock()
        remaining = _number(headers, "X-RateLimit-Remaining")
        block: float | None = None
        if status_code == 429:
            self.rate_limited += 1
            wait = retry_after_s(headers, now)
            block = now + (wait if wait is not None else 1.0)
        elif remaining is not None and remaining <= 0:
            reset = _number(headers, "X-RateLimit-Reset")
            block = reset if reset is not None else now + 1.0
        if block is not None:
            with self._lock:
                self._blocked_until = max(self._blocked_until, min(block, now + MAX_WAIT_S))
