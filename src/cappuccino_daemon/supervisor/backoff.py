"""Restart delays: pure arithmetic, so the schedule is tested without any process or clock.

A failure streak of n gives ``base * 2**(n-1)`` seconds, capped at ``max``; the streak resets once a child
has been healthy for ``healthy_after_s``. Defaults (5 s, 300 s, 60 s) come from ``[supervisor]``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BackoffPolicy:
    base_s: float = 5.0
    max_s: float = 300.0
    healthy_after_s: float = 60.0

    def __post_init__(self) -> None:
        if self.base_s <= 0 or self.max_s < self.base_s or self.healthy_after_s <= 0:
            raise ValueError(
                f"invalid backoff: base_s={self.base_s}, max_s={self.max_s}, "
                f"healthy_after_s={self.healthy_after_s} (need 0 < base <= max, healthy_after > 0)"
            )

    def delay(self, consecutive_failures: int) -> float:
        """Seconds to wait before the next start after ``consecutive_failures`` failures in a row."""
        if consecutive_failures <= 0:
            return 0.0
        # Cap the exponent before computing: 2**1000 would overflow a float.
        exponent = min(consecutive_failures - 1, 64)
        return float(min(self.max_s, self.base_s * (2.0**exponent)))

    def schedule(self, failures: int) -> list[float]:
        """The first ``failures`` delays, for logs and docs."""
        return [self.delay(n) for n in range(1, failures + 1)]

    def is_healthy_run(self, healthy_for_s: float | None) -> bool:
        """True once a child has been healthy long enough to forget its failure streak."""
        return healthy_for_s is not None and healthy_for_s >= self.healthy_after_s
