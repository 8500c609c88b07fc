"""Seeded synthetic OHLCV for the emulator's embedded market (the repo ships no market data).

Model, per bar: a common market shock with GARCH(1,1) volatility clustering and fat (Student-t)
tails; each coin loads on it (correlations of roughly 0.6-0.8 between coins, as in real crypto) plus
an idiosyncratic shock; log prices revert very slowly to the coin's reference level, so a service that
runs for years keeps plausible prices. Volume is in BASE units and rises with the size of the move.

Bars are generated in fixed blocks whose random streams depend only on ``(seed, block, stream)``,
where the stream is the market factor or a hash of the coin's name. So the series is deterministic
per seed, identical whichever other coins are requested, and extendable forever: ``ensure(n)``
appends blocks without changing any bar already produced.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

DEFAULT_BASES: tuple[str, ...] = ("AAVE", "AVAX", "BTC", "ETH", "LINK", "LTC", "UNI")
BLOCK = 1024
_GARCH_ALPHA = 0.07
_GARCH_BETA = 0.91
_T_DOF = 5.0
_REVERSION_PER_HOUR = 1.0e-4  # half-life of about 0.8 years
_MARKET_STREAM = 0


@dataclass(frozen=True)
class CoinProfile:
    """Reference price (USD), hourly volatility, loading on the market factor, mean USD volume per hour."""

    price: float
    hourly_vol: float
    loading: float
    usd_volume_per_hour: float


PROFILES: dict[str, CoinProfile] = {
    "BTC": CoinProfile(30_000.0, 0.0070, 0.90, 6.0e7),
    "ETH": CoinProfile(2_000.0, 0.0090, 0.85, 3.0e7),
    "AAVE": CoinProfile(250.0, 0.0130, 0.75, 3.0e6),
    "AVAX": CoinProfile(30.0, 0.0140, 0.72, 4.0e6),
    "LINK": CoinProfile(20.0, 0.0120, 0.78, 5.0e6),
    "LTC": CoinProfile(150.0, 0.0100, 0.80, 5.0e6),
    "UNI": CoinProfile(20.0, 0.0125, 0.76, 3.0e6),
}


def profile_for(base: str) -> CoinProfile:
    """Known coins use measured-looking figures; an unknown base gets a stable made-up profile."""
    if base in PROFILES:
        return PROFILES[base]
    h = zlib.crc32(base.encode("utf-8"))
    price = float(10 ** (((h % 1000) / 1000.0) * 3.0))  # between 1 and 1000 USD
    return CoinProfile(round(price, 4), 0.013, 0.7, 2.0e6)


def _stream_id(base: str) -> int:
    return zlib.crc32(base.encode("utf-8")) + 1


def _t_shocks(rng: np.random.Generator, size: int | tuple[int, ...]) -> np.ndarray:
    """Student-t shocks scaled to unit variance."""
    return rng.standard_t(_T_DOF, size=size) / np.sqrt(_T_DOF / (_T_DOF - 2.0))


class SyntheticMarket:
    """Lazily generated, block-deterministic bars for a set of coins on one timeframe."""

    def __init__(
        self, seed: int, bases: Sequence[str] = DEFAULT_BASES, *, start: datetime, timeframe: str = "1h"
    ) -> None:
        if not bases:
            raise ValueError("SyntheticMarket needs at least one base symbol")
        self.seed = int(seed)
        self.bases: tuple[str, ...] = tuple(dict.fromkeys(b.upper() for b in bases))
        self.step = pd.Timedelta(timeframe)
        if self.step <= pd.Timedelta(0):
            raise ValueError(f"timeframe must be positive, got {timeframe!r}")
        stamp = pd.Timestamp(start)
        self.start = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
        self._hours = self.step / pd.Timedelta(hours=1)
        self._profiles = [profile_for(b) for b in self.bases]
        self._log_ref = np.log(np.array([p.price for p in self._profiles]))
        # carried state between blocks
        self._h = 1.0  # GARCH variance multiplier (unconditional mean 1)
        self._z_prev = 0.0
        self._logp = self._log_ref.copy()
        self._blocks: list[dict[str, np.ndarray]] = []
        self._n = 0
        self._cache: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return self._n

    def ensure(self, n_bars: int) -> None:
        """Generate until at least ``n_bars`` bars exist (never changes existing bars)."""
        while self._n < n_bars:
            self._blocks.append(self._make_block(len(self._blocks)))
            self._n += BLOCK

    def ensure_until(self, when: datetime) -> None:
        """Generate every bar whose open time is at or before ``when``."""
        n = int((pd.Timestamp(when) - self.start) / self.step) + 1
        self.ensure(max(n, 0))

    def _make_block(self, k: int) -> dict[str, np.ndarray]:
        m_rng = np.random.default_rng([self.seed, k, _MARKET_STREAM])
        eps_m = _t_shocks(m_rng, BLOCK)
        h = np.empty(BLOCK)
        h_t, z_prev = self._h, self._z_prev
        omega = 1.0 - _GARCH_ALPHA - _GARCH_BETA
        for i in range(BLOCK):
            h_t = omega + _GARCH_ALPHA * z_prev * z_prev * h_t + _GARCH_BETA * h_t
            h[i] = h_t
            z_prev = eps_m[i]
        self._h, self._z_prev = h_t, z_prev
        scale = np.sqrt(h)

        out: dict[str, np.ndarray] = {}
        kappa = min(0.5, _REVERSION_PER_HOUR * self._hours)
        for j, (base, prof) in enumerate(zip(self.bases, self._profiles, strict=True)):
            rng = np.random.default_rng([self.seed, k, _stream_id(base)])
            eps_i = _t_shocks(rng, BLOCK)
            sigma = prof.hourly_vol * np.sqrt(self._hours) * scale
            w = prof.loading
            r = sigma * (w * eps_m + np.sqrt(1.0 - w * w) * eps_i)
            logp = np.empty(BLOCK + 1)
            logp[0] = self._logp[j]
            ref = self._log_ref[j]
            for i in range(BLOCK):
                logp[i + 1] = logp[i] + r[i] - kappa * (logp[i] - ref)
            self._logp[j] = logp[-1]
            opens, closes = np.exp(logp[:-1]), np.exp(logp[1:])
            wick_hi = np.abs(rng.standard_normal(BLOCK)) * 0.6 * sigma
            wick_lo = np.abs(rng.standard_normal(BLOCK)) * 0.6 * sigma
            highs = np.maximum(opens, closes) * np.exp(wick_hi)
            lows = np.minimum(opens, closes) * np.exp(-wick_lo)
            move = np.abs(r) / np.maximum(sigma, 1e-12)
            usd = prof.usd_volume_per_hour * self._hours * np.exp(0.4 * rng.standard_normal(BLOCK) - 0.08)
            volume = usd * (0.6 + 0.4 * move) / closes
            digits = max(2, 6 - int(np.floor(np.log10(prof.price))))  # about 7 significant digits
            prices = np.round(np.stack([opens, highs, lows, closes]), digits)
            out[base] = np.vstack([prices, np.round(volume, 6)[None, :]])
        return out

    def arrays(self, base: str) -> np.ndarray:
        """Shape (5, n): open, high, low, close, volume rows for every bar generated so far."""
        cache = self._cache
        if base not in cache or cache[base].shape[1] != self._n:
            cache[base] = (
                np.concatenate([blk[base] for blk in self._blocks], axis=1)
                if self._blocks
                else np.empty((5, 0))
            )
        return cache[base]

    def times_ns(self, n: int | None = None) -> np.ndarray:
        """Bar open times (UTC epoch nanoseconds) for the first ``n`` bars (all generated by default)."""
        count = self._n if n is None else n
        return self.start.value + np.arange(count, dtype=np.int64) * np.int64(self.step.value)

    def frame(self, base: str, n_bars: int) -> pd.DataFrame:
        """The first ``n_bars`` bars of ``base`` in the ``read_bars_csv`` frame format."""
        self.ensure(n_bars)
        data = self.arrays(base)[:, :n_bars]
        index = pd.DatetimeIndex(pd.to_datetime(self.times_ns(n_bars), utc=True), name="timestamp")
        cols = {
            name: data[i].astype("float64")
            for i, name in enumerate(("open", "high", "low", "close", "volume"))
        }
        return pd.DataFrame(cols, index=index)


def generate_synthetic_bars(
    seed: int,
    bases: Sequence[str] = DEFAULT_BASES,
    *,
    start: datetime,
    n_bars: int,
    timeframe: str = "1h",
) -> dict[str, pd.DataFrame]:
    """``n_bars`` synthetic bars per base from ``start`` (the first bar's open), keyed by bare base.

    Same frame format as ``bars.read_bars_csv``: UTC DatetimeIndex of bar open times, float columns
    open, high, low, close, volume. A longer request extends a shorter one bar for bar.
    """
    if n_bars < 0:
        raise ValueError(f"n_bars must be >= 0, got {n_bars}")
    market = SyntheticMarket(seed, bases, start=start, timeframe=timeframe)
    return {base: market.frame(base, n_bars) for base in market.bases}


MINUTES_PER_HOUR = 60
HOURS_PER_MINUTE_BLOCK = 24  # minute paths are drawn 24 hours (from the market's origin) at a time
_MINUTE_STREAM = 0x6D696E  # keeps minute paths independent of the hourly streams


def split_hours(seed: int, base: str, block: int, rows: np.ndarray) -> np.ndarray:
    """The minute bars (shape (5, 60 * k)) inside the k hourly bars ``rows`` (shape (5, k)) of
    minute block ``block`` (hours ``block * 24`` onwards).

    Deterministic per ``(seed, base, block)`` and exactly consistent with each hour: its first minute
    opens at the hour's open, its last closes at its close, its highest high is the hour's high, its
    lowest low the hour's low, and its volumes sum to the hour's volume (up to float rounding). Each
    path is a Brownian bridge from open to close in log price, scaled to the range, clipped into it.
    """
    k, m = rows.shape[1], MINUTES_PER_HOUR
    o, h, low, c, v = (rows[i][:, None] for i in range(5))
    rng = np.random.default_rng([seed, _MINUTE_STREAM, _stream_id(base), block])
    draws = rng.standard_normal((HOURS_PER_MINUTE_BLOCK, 3, m))[:k]
    walk = np.concatenate([np.zeros((k, 1)), np.cumsum(draws[:, 0], axis=1)], axis=1)
    ramp = np.linspace(0.0, 1.0, m + 1)[None, :]
    bridge = walk - ramp * walk[:, -1:]
    span = bridge.max(axis=1, keepdims=True) - bridge.min(axis=1, keepdims=True)
    span[span == 0] = 1.0
    path = np.log(o) + ramp * (np.log(c) - np.log(o)) + bridge / span * 0.5 * (np.log(h) - np.log(low))
    prices = np.clip(np.exp(path), low, h)
    prices[:, :1], prices[:, -1:] = o, c
    opens, closes = prices[:, :-1], prices[:, 1:]
    wick = (h / low - 1.0) / 10.0
    highs = np.minimum(h, np.maximum(opens, closes) * (1.0 + np.abs(draws[:, 1]) * wick))
    lows = np.maximum(low, np.minimum(opens, closes) * (1.0 - np.abs(draws[:, 2]) * wick))
    picks = rng.integers(m, size=(HOURS_PER_MINUTE_BLOCK, 2))[:k]
    highs[np.arange(k), picks[:, 0]] = h[:, 0]
    lows[np.arange(k), picks[:, 1]] = low[:, 0]
    weights = rng.gamma(2.0, size=(HOURS_PER_MINUTE_BLOCK, m))[:k]
    volumes = v * weights / weights.sum(axis=1, keepdims=True)
    volumes[:, -1] = np.maximum(0.0, v[:, 0] - volumes[:, :-1].sum(axis=1))
    return np.stack([opens, highs, lows, closes, volumes]).reshape(5, k * m)
