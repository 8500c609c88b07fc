"""How fast the broker's clock runs against ours, so "sleep until the bar closes" works on any clock.

Alpaca's clock runs at wall speed; the accelerated emulator's runs at ``speed`` simulated seconds per
wall second. The worker computes waits in broker time and sleeps in wall time, so it divides by the
observed rate. Estimated from two readings at least ``min_span_s`` apart; 1.0 until then.
"""

from __future__ import annotations

from datetime import datetime


class BrokerClockRate:
    def __init__(self, min_span_s: float = 1.0, max_rate: float = 100_000.0) -> None:
        self._first: tuple[float, datetime] | None = None
        self._rate = 1.0
        self._measured = False
        self.min_span_s = min_span_s
        self.max_rate = max_rate

    def observe(self, monotonic_s: float, broker_now: datetime) -> None:
        if self._first is None:
            self._first = (monotonic_s, broker_now)
            return
        mono0, broker0 = self._first
        span = monotonic_s - mono0
        if span >= self.min_span_s:
            self._measured = True
            rate = (broker_now - broker0).total_seconds() / span
            self._rate = min(max(rate, 1.0), self.max_rate)  # never sleep longer than the broker wait

    @property
    def measured(self) -> bool:
        """True once two readings ``min_span_s`` apart gave a rate (before that it is a guess of 1.0)."""
        return self._measured

    @property
    def rate(self) -> float:
        return self._rate

    def wall_seconds(self, broker_seconds: float) -> float:
        return broker_seconds / self._rate
