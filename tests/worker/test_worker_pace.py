"""Waits computed on the broker's clock are slept on ours, scaled by how fast the broker clock runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cappuccino_daemon.worker.pace import BrokerClockRate

T0 = datetime(2024, 3, 1, tzinfo=UTC)


def test_rate_is_one_until_two_readings_a_second_apart() -> None:
    pace = BrokerClockRate()
    pace.observe(10.0, T0)
    pace.observe(10.5, T0 + timedelta(seconds=300))  # too close together to judge
    assert pace.rate == 1.0 and pace.wall_seconds(60) == 60


def test_accelerated_clock_shrinks_the_wall_wait() -> None:
    """An emulator at 600x: one simulated hour is six wall seconds."""
    pace = BrokerClockRate()
    pace.observe(0.0, T0)
    pace.observe(2.0, T0 + timedelta(seconds=1200))
    assert pace.rate == 600.0
    assert pace.wall_seconds(3600) == 6.0


def test_a_slow_or_stalled_broker_clock_never_lengthens_the_wait() -> None:
    """A paused simulated clock (speed 0) must not turn a wait into forever: the rate floors at 1."""
    pace = BrokerClockRate()
    pace.observe(0.0, T0)
    pace.observe(5.0, T0)
    assert pace.rate == 1.0 and pace.wall_seconds(30) == 30
