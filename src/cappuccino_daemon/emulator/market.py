"""The replayed market: bars from CSV files or the synthetic generator, seen through the simulated clock.

Only bars that have CLOSED by the simulated now are visible (open + timeframe <= now). The current
price of a coin is the close of its latest closed FINEST bar (a minute for the synthetic market, the
finest file timeframe for a bars folder); orders fill at that price (plus slippage). Coarser
timeframes are aggregated on UTC boundaries (weeks start on Monday). Intraday buckets up to an hour
are served once closed; coarser ones (2Hour.., 1Day, 1Week) as soon as one of their hours has closed,
like Alpaca's in-progress daily bar.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from cappuccino_daemon.emulator.synthetic import HOURS_PER_MINUTE_BLOCK, SyntheticMarket, split_hours

NS = 1_000_000_000
MINUTE_NS = 60 * NS
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
    """Bars per bare base symbol on one native (finest) timeframe, from CSV files or the generator.

    The synthetic market generates hourly bars and splits each hour into 60 minute bars on demand
    (``synthetic.split_hours``, 24 hours at a time), so its finest timeframe is one minute while
    hourly and coarser buckets are aggregated from the hourly series exactly as before.
    """

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
        self._series = series or {}
        self._synthetic = synthetic
        self._source_step_ns = int(step.total_seconds() * NS)
        self._block_ns = HOURS_PER_MINUTE_BLOCK * self._source_step_ns
        self.step_ns = MINUTE_NS if synthetic is not None else self._source_step_ns
        self._minute_cache: dict[tuple[str, int], np.ndarray] = {}
        self._shocks: dict[str, list[tuple[int, float]]] = {}  # base → (from open time ns, factor)
        self.description = description
        bases = synthetic.bases if synthetic is not None else tuple(sorted(self._series))
        self.bases: frozenset[str] = frozenset(bases)
        self.ordered_bases: tuple[str, ...] = tuple(sorted(bases))

    @classmethod
    def from_bars_dir(cls, directory: Path, timeframe: str | None = None) -> Market:
        """The bars files of ``timeframe``, by default the finest timeframe the folder holds."""
        from cappuccino_daemon.bars import discover_bars, read_bars_csv, timeframe_delta

        timeframe = timeframe or finest_timeframe(directory)
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

    def shock(self, base: str, factor: float, now: datetime) -> datetime:
        """Scale ``base``'s prices by ``factor`` from the source bar forming at ``now`` on (bars that
        closed before stay as served: history is never rewritten). For tests and drills through
        ``POST /admin/shock``; kept in memory only, so a restarted emulator serves the unshocked market."""
        if not (factor > 0 and np.isfinite(factor)):
            raise ValueError(f"a price shock factor must be a positive number, not {factor!r}")
        if base not in self.bases:
            raise ValueError(f"no market for {base!r} (symbols: {', '.join(self.ordered_bases)})")
        step = self._source_step_ns
        origin = self._synthetic.start.value if self._synthetic is not None else 0
        start = (to_ns(now) - origin) // step * step + origin
        self._shocks.setdefault(base, []).append((start, float(factor)))
        return from_ns(start)

    def _shocked(self, base: str, window: BarWindow) -> BarWindow:
        shocks = self._shocks.get(base)
        if not shocks or not len(window):
            return window
        scale = np.ones(len(window))
        for start, factor in shocks:
            scale[window.times >= start] *= factor
        data = window.data.copy()
        data[:4] *= scale  # open, high, low, close; volume stays
        return BarWindow(window.times, data)

    def _source(self, base: str, now_ns: int) -> BarWindow:
        """Every source bar (hourly for the synthetic market) of ``base`` closed by ``now_ns``."""
        step = self._source_step_ns
        if self._synthetic is not None:
            gen = self._synthetic
            n_closed = max(0, int((now_ns - gen.start.value) // step))  # bars with open + step <= now
            gen.ensure(n_closed)
            window = BarWindow(gen.times_ns(len(gen))[:n_closed], gen.arrays(base)[:, :n_closed])
            return self._shocked(base, window)
        series = self._series.get(base)
        if series is None:
            return BarWindow(np.empty(0, dtype=np.int64), np.empty((5, 0)))
        cut = int(np.searchsorted(series.times, now_ns - step, side="right"))
        return self._shocked(base, BarWindow(series.times[:cut], series.data[:, :cut]))

    def _block_minutes(self, base: str, block: int) -> np.ndarray:
        """Minute bars of the 24 hours of minute block ``block`` (cached; generated together)."""
        key = (base, block)
        cached = self._minute_cache.get(key)
        if cached is None:
            gen = self._synthetic
            assert gen is not None
            first = block * HOURS_PER_MINUTE_BLOCK
            gen.ensure(first + HOURS_PER_MINUTE_BLOCK)
            rows = gen.arrays(base)[:, first : first + HOURS_PER_MINUTE_BLOCK]
            if len(self._minute_cache) > 5_000:
                self._minute_cache.clear()
            cached = self._minute_cache[key] = split_hours(gen.seed, base, block, rows)
        return cached

    def _finest(self, base: str, now_ns: int, start_ns: int, end_ns: int) -> BarWindow:
        """Finest bars of ``base`` closed by ``now_ns`` with open time in [start_ns, end_ns]."""
        if self._synthetic is None or base not in self.bases:
            native = self._source(base, now_ns)
            lo = int(np.searchsorted(native.times, start_ns, side="left"))
            hi = int(np.searchsorted(native.times, end_ns, side="right"))
            return BarWindow(native.times[lo:hi], native.data[:, lo:hi])
        origin, hour = self._synthetic.start.value, self._source_step_ns
        last_open = min(end_ns, now_ns - MINUTE_NS)
        first_hour = max(0, (start_ns - origin) // hour)
        last_hour = (last_open - origin) // hour
        if last_open < origin or last_hour < first_hour:
            return BarWindow(np.empty(0, dtype=np.int64), np.empty((5, 0)))
        first_block, last_block = (
            int(first_hour) // HOURS_PER_MINUTE_BLOCK,
            int(last_hour) // HOURS_PER_MINUTE_BLOCK,
        )
        blocks = range(first_block, last_block + 1)
        data = np.concatenate([self._block_minutes(base, b) for b in blocks], axis=1)
        block_ns = HOURS_PER_MINUTE_BLOCK * hour
        times = origin + first_block * block_ns + np.arange(data.shape[1], dtype=np.int64) * MINUTE_NS
        keep = (times >= start_ns) & (times <= last_open)
        return self._shocked(base, BarWindow(times[keep], data[:, keep]))

    def latest(self, base: str, now: datetime) -> tuple[int, np.ndarray] | None:
        """(open time ns, [o, h, l, c, v]) of the newest closed finest bar, or None before the first."""
        now_ns = to_ns(now)
        if self._synthetic is not None:
            origin = self._synthetic.start.value
            newest = (now_ns - MINUTE_NS - origin) // MINUTE_NS * MINUTE_NS + origin
            window = self._one_minute(base, newest) or self._finest(base, now_ns, newest, newest)
        else:
            window = self._source(base, now_ns)
        if not len(window):
            return None
        return int(window.times[-1]), window.data[:, -1]

    def _one_minute(self, base: str, open_ns: int) -> BarWindow | None:
        """The synthetic minute bar opening at ``open_ns``, read from its cached block (every fill asks
        for one: ``_finest`` would build the block's whole window to keep one column); None: not here."""
        if self._synthetic is None or base not in self.bases or open_ns < self._synthetic.start.value:
            return None
        block, offset_ns = divmod(open_ns - self._synthetic.start.value, self._block_ns)
        data = self._block_minutes(base, int(block))
        column = int(offset_ns // MINUTE_NS)
        if column >= data.shape[1]:
            return None
        return self._shocked(
            base, BarWindow(np.array([open_ns], dtype=np.int64), data[:, column : column + 1])
        )

    def price(self, base: str, now: datetime) -> float | None:
        bar = self.latest(base, now)
        return None if bar is None else float(bar[1][3])

    def bars(self, base: str, now: datetime, tf_ns: int, start_ns: int, end_ns: int) -> BarWindow:
        """Closed bars (aggregated to ``tf_ns``) with open time in [start_ns, end_ns]."""
        now_ns = to_ns(now)
        if tf_ns == self.step_ns:
            return self._finest(base, now_ns, start_ns, end_ns)
        origin = _WEEK_ORIGIN_NS if tf_ns == 7 * 86_400 * NS else 0
        first_bucket = (start_ns - origin) // tf_ns * tf_ns + origin
        if tf_ns % self._source_step_ns == 0:
            native = self._source(base, now_ns)  # hourly and coarser: from the source series
            lo = int(np.searchsorted(native.times, first_bucket, side="left"))
            hi = int(np.searchsorted(native.times, end_ns + tf_ns, side="left"))
            times, data = native.times[lo:hi], native.data[:, lo:hi]
        else:  # finer than the source: only buckets that have closed, never a half-built 5Min bar
            end_ns = min(end_ns, now_ns - tf_ns)
            fine = self._finest(base, now_ns, first_bucket, end_ns + tf_ns - 1)
            times, data = fine.times, fine.data
        return _aggregate(times, data, tf_ns, origin, start_ns, end_ns)

    def day_bars(self, base: str, now: datetime) -> tuple[BarWindow, BarWindow]:
        """(today's daily bar so far, yesterday's daily bar), each of length 0 or 1."""
        now_ns = to_ns(now)
        day = 86_400 * NS
        today = now_ns // day * day
        current = self.bars(base, now, day, today, today)
        previous = self.bars(base, now, day, today - day, today - day)
        return current, previous


def _aggregate(
    times: np.ndarray, data: np.ndarray, tf_ns: int, origin: int, start_ns: int, end_ns: int
) -> BarWindow:
    """Bucket bars onto ``tf_ns`` boundaries from ``origin``; keep buckets opening in [start, end]."""
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


_BARS_FILE = re.compile(r"^[A-Z0-9]+-[A-Z]+_(\d+[mhd])\.csv$")


def finest_timeframe(directory: Path) -> str:
    """The finest ``BASE-QUOTE_<tf>.csv`` timeframe in ``directory`` ("1h" when there is none, so
    ``discover_bars`` names the problem)."""
    from cappuccino_daemon.bars import timeframe_delta

    found = set()
    if Path(directory).is_dir():
        found = {m.group(1) for p in Path(directory).iterdir() if (m := _BARS_FILE.match(p.name))}
    return min(found, key=timeframe_delta) if found else "1h"
