"""The replayed market: bars from CSV files or the synthetic generator, seen through the simulated clock.

Only bars that have CLOSED by the simulated now are visible (open + timeframe <= now). The current
price of a coin is the close of its latest closed bar; orders fill at that price (plus slippage).
Coarser timeframes are aggregated from the native bars on UTC boundaries (weeks start on Monday); a
bucket is served as soon as one of its native bars has closed, like Alpaca's in-progress daily bar.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from cappuccino_daemon.emulator.synthetic import SyntheticMarket

NS = 1_000_000_000
_WEEK_ORIGIN_NS = 4 * 86_400 * NS  # 1970-01-05, a Monday


def to_ns(when: datetime) -> int:
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    delta = when.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * NS + delta.microseconds * 1000


def from_ns(ns: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=ns // 1000)


@dataclass(frozen=True)
class BarWindow:
    """Bars of one symbol: open times (epoch ns) and a (5, n) float array open/high/low/close/volume."""

    times: np.ndarray
    data: np.ndarray

    def __len__(self) -> int:
        return int(self.times.shape[0])


class Market:
    """Bars per bare base symbol on one native timeframe, from CSV files or a synthetic generator."""

    def __init__(
        self,
        *,
        step: timedelta,
        series: dict[str, BarWindow] | None = None,
        synthetic: SyntheticMarket | None = None,
        description: str = "",
    ) -> None:
        if (series is None) == (synthetic is None):
            raise ValueError("Market needs exactly one of series= or synthetic=")
        self.step_ns = int(step.total_seconds() * NS)
        self._series = series or {}
        self._synthetic = synthetic
        self.description = description
        bases = synthetic.bases if synthetic is not None else tuple(sorted(self._series))
        self.bases: frozenset[str] = frozenset(bases)
        self.ordered_bases: tuple[str, ...] = tuple(sorted(bases))

    @classmethod
    def from_bars_dir(cls, directory: Path, timeframe: str = "1h") -> Market:
        from cappuccino_daemon.bars import discover_bars, read_bars_csv, timeframe_delta

        series: dict[str, BarWindow] = {}
        for base, path in discover_bars(directory, timeframe).items():
            frame = read_bars_csv(path)
            times = pd.DatetimeIndex(frame.index).as_unit("ns").asi8.astype(np.int64)
            data = frame[["open", "high", "low", "close", "volume"]].to_numpy(dtype="float64").T.copy()
            series[base] = BarWindow(times, data)
        return cls(step=timeframe_delta(timeframe), series=series, description=f"bars-dir:{directory}")

    @classmethod
    def synthetic(cls, seed: int, *, origin: datetime, bases: tuple[str, ...] | None = None) -> Market:
        from cappuccino_daemon.emulator.synthetic import DEFAULT_BASES

        gen = SyntheticMarket(seed, bases or DEFAULT_BASES, start=origin, timeframe="1h")
        return cls(step=timedelta(hours=1), synthetic=gen, description=f"synthetic:{seed}")

    def first_bar_time(self) -> datetime | None:
        if self._synthetic is not None:
            return self._synthetic.start.to_pydatetime()
        firsts = [int(w.times[0]) for w in self._series.values() if len(w)]
        return from_ns(min(firsts)) if firsts else None

    def last_bar_time(self) -> datetime | None:
        """Open time of the last bar that exists at all (None for the endless synthetic market)."""
        if self._synthetic is not None:
            return None
        lasts = [int(w.times[-1]) for w in self._series.values() if len(w)]
        return from_ns(max(lasts)) if lasts else None

    def _native(self, base: str, now_ns: int) -> BarWindow:
        """Every native bar of ``base`` closed by ``now_ns``."""
        if self._synthetic is not None:
            gen = self._synthetic
            n_closed = (now_ns - gen.start.value) // self.step_ns  # bars with open + step <= now
            n_closed = max(0, int(n_closed))
            gen.ensure(n_closed)
            return BarWindow(gen.times_ns(gen.__len__())[:n_closed], gen.arrays(base)[:, :n_closed])
        window = self._series.get(base)
        if window is None:
            return BarWindow(np.empty(0, dtype=np.int64), np.empty((5, 0)))
        cut = int(np.searchsorted(window.times, now_ns - self.step_ns, side="right"))
        return BarWindow(window.times[:cut], window.data[:, :cut])

    def latest(self, base: str, now: datetime) -> tuple[int, np.ndarray] | None:
        """(open time ns, [o, h, l, c, v]) of the newest closed bar, or None before the first one."""
        window = self._native(base, to_ns(now))
        if not len(window):
            return None
        return int(window.times[-1]), window.data[:, -1]

    def price(self, base: str, now: datetime) -> float | None:
        bar = self.latest(base, now)
        return None if bar is None else float(bar[1][3])

    def bars(self, base: str, now: datetime, tf_ns: int, start_ns: int, end_ns: int) -> BarWindow:
        """Closed bars (aggregated to ``tf_ns``) with open time in [start_ns, end_ns]."""
        native = self._native(base, to_ns(now))
        if tf_ns == self.step_ns:
            lo = int(np.searchsorted(native.times, start_ns, side="left"))
            hi = int(np.searchsorted(native.times, end_ns, side="right"))
            return BarWindow(native.times[lo:hi], native.data[:, lo:hi])
        origin = _WEEK_ORIGIN_NS if tf_ns == 7 * 86_400 * NS else 0
        # restrict to native bars that can fall into buckets overlapping [start, end]
        first_bucket = (start_ns - origin) // tf_ns * tf_ns + origin
        lo = int(np.searchsorted(native.times, first_bucket, side="left"))
        hi = int(np.searchsorted(native.times, end_ns + tf_ns, side="left"))
        times, data = native.times[lo:hi], native.data[:, lo:hi]
        if times.size == 0:
            return BarWindow(times, data)
        buckets = (times - origin) // tf_ns * tf_ns + origin
        starts = np.flatnonzero(np.r_[True, buckets[1:] != buckets[:-1]])
        ends = np.r_[starts[1:], buckets.size]
        agg = np.empty((5, starts.size))
        agg[0] = data[0, starts]
        agg[1] = np.maximum.reduceat(data[1], starts)
        agg[2] = np.minimum.reduceat(data[2], starts)
        agg[3] = data[3, ends - 1]
        agg[4] = np.add.reduceat(data[4], starts)
        bucket_times = buckets[starts]
        keep = (bucket_times >= start_ns) & (bucket_times <= end_ns)
        return BarWindow(bucket_times[keep], agg[:, keep])

    def day_bars(self, base: str, now: datetime) -> tuple[BarWindow, BarWindow]:
        """(today's daily bar so far, yesterday's daily bar), each of length 0 or 1."""
        now_ns = to_ns(now)
        day = 86_400 * NS
        today = now_ns // day * day
        current = self.bars(base, now, day, today, today)
        previous = self.bars(base, now, day, today - day, today - day)
        return current, previous
