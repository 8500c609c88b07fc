"""The simulated clock and the replayed market: only closed bars, aggregation, CSV replay defaults."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cappuccino_daemon.emulator.market import NS, Market, to_ns
from cappuccino_daemon.emulator.simclock import SimClock
from cappuccino_daemon.emulator.testing import EmulatorThread

T0 = datetime(2024, 1, 1, tzinfo=UTC)


class Wall:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_sim_clock_speed_and_advance() -> None:
    wall = Wall()
    clock = SimClock(T0, speed=60.0, wall=wall)
    wall.t += 10
    assert clock.now() == T0 + timedelta(minutes=10)  # 60 simulated seconds per wall second
    clock.advance(3600)
    assert clock.now() == T0 + timedelta(minutes=70)
    with pytest.raises(ValueError):
        clock.advance(-1)
    with pytest.raises(ValueError):
        clock.set(T0)
    frozen = SimClock(T0, speed=0.0, wall=wall)
    wall.t += 1000
    assert frozen.now() == T0


def test_only_closed_bars_are_visible_and_weeks_start_monday() -> None:
    market = Market.synthetic(3, origin=T0 - timedelta(days=30))
    now = T0 + timedelta(minutes=90, seconds=30)  # the 00:00 hour closed at 01:00, 01:00 is still open
    latest = market.latest("BTC", now)
    assert latest is not None and latest[0] == to_ns(T0 + timedelta(minutes=89))  # the newest closed minute
    hour = 3600 * NS
    window = market.bars("ETH", now, hour, to_ns(T0 - timedelta(hours=5)), to_ns(now))
    assert len(window) == 6 and window.times[-1] == to_ns(T0)
    weekly = market.bars("BTC", now, 7 * 86_400 * NS, to_ns(T0 - timedelta(days=21)), to_ns(now))
    assert all(datetime.fromtimestamp(int(t) // NS, UTC).weekday() == 0 for t in weekly.times)
    assert market.price("BTC", T0 - timedelta(days=31)) is None  # before the first bar: no price


def test_csv_market_defaults_and_stale_end(ohlcv_dir: Path) -> None:
    market = Market.from_bars_dir(ohlcv_dir)
    assert market.ordered_bases == ("AAVE", "AVAX", "BTC", "ETH", "LINK", "LTC", "UNI")
    last = market.last_bar_time()
    assert last == datetime(2021, 7, 17, 20, tzinfo=UTC)
    late = last + timedelta(days=10)
    bar = market.latest("BTC", late)
    assert bar is not None and bar[0] == to_ns(last) and float(bar[1][3]) == 31723.09  # no invented bars
    with EmulatorThread(bars_dir=ohlcv_dir, start=None) as emu:
        assert emu.now() == datetime(2020, 12, 1, tzinfo=UTC) + timedelta(days=42)


def test_admin_advance_to_a_time(emu: EmulatorThread) -> None:
    import requests

    target = "2024-01-03T05:00:00Z"
    reply = requests.post(f"{emu.base_url}/admin/clock/advance", json={"to": target}, timeout=10)
    assert reply.json()["now"] == "2024-01-03T05:00:00+00:00" and emu.now() == datetime(
        2024, 1, 3, 5, tzinfo=UTC
    )
    backwards = requests.post(f"{emu.base_url}/admin/clock/advance", json={"seconds": -5}, timeout=10)
    assert backwards.status_code == 422


def test_a_fills_price_read_from_its_minute_is_the_windows_last_bar() -> None:
    """``latest`` reads one column of the cached minute block (the fast path every fill takes); it must
    be exactly the bar the whole-window path gives, shocked or not, across block edges."""
    market = Market.synthetic(5, origin=T0 - timedelta(days=3))
    market.shock("ETH", 0.5, T0 + timedelta(hours=2))
    for minutes in (1, 2, 59, 61, 24 * 60, 24 * 60 + 1, 26 * 60 + 7, 3 * 24 * 60 - 1, 3 * 24 * 60 + 5):
        now = T0 - timedelta(days=3) + timedelta(minutes=minutes, seconds=3)
        for base in ("BTC", "ETH"):
            fast = market.latest(base, now)
            newest = to_ns(now) - to_ns(now) % (60 * NS) - 60 * NS
            window = market._finest(base, to_ns(now), newest, newest)
            assert fast is not None and fast[0] == int(window.times[-1]) == newest
            assert fast[1].tolist() == window.data[:, -1].tolist()
