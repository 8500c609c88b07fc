"""The 11 per-ticker features, computed exactly as the training pipeline did, and their alignment.

Indicators are TA-Lib over each ticker's own rows: ``MACD(close, 12, 26, 9)``, ``RSI(close, 14)``,
``CCI(h, l, c, 14)``, ``DX(h, l, c, 14)``, all float64. TA-Lib works on rows, not a time grid, so a
missing hour is simply two adjacent rows, as in training: nothing is resampled or forward-filled.

Alignment rule (training and live alike): only timestamps every ticker has are kept, so the state rows
are the same bars for all tickers. A timestamp one ticker lacks is dropped for everyone and reported in
``FeatureMatrix.dropped`` so callers can log it. Leading rows where an indicator is still warming up
(33 bars for MACD's signal) are dropped; a NaN after that means bad input and raises StaleDataError.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt
import pandas as pd
import talib

from cappuccino_daemon.errors import StaleDataError
from cappuccino_daemon.model.spec import FEATURES_11

OHLCV: tuple[str, ...] = ("open", "high", "low", "close", "volume")
# Below this many bars of history the recursive indicators (MACD, RSI, DX) have not converged to the
# values training saw (fixtures README §1: ~1e-2 after 100 bars, < 1e-7 after 300).
WARMUP_BARS = 300


def compute_features(bars: pd.DataFrame) -> pd.DataFrame:
    """One ticker's OHLCV (index = bar open time) -> its 11 features in ``FEATURES_11`` order."""
    missing = [c for c in OHLCV if c not in bars.columns]
    if missing:
        raise ValueError(f"bars frame lacks columns {missing}; expected {list(OHLCV)}")
    cols = {c: np.ascontiguousarray(bars[c].to_numpy(dtype=np.float64)) for c in OHLCV}
    high, low, close = cols["high"], cols["low"], cols["close"]
    macd, macd_signal, macd_hist = talib.MACD(close, fastperiod=12, slowperiod=26, signalperiod=9)
    out = {
        **cols,
        "macd": macd,
        "macd_signal": macd_signal,
        "macd_hist": macd_hist,
        "rsi": talib.RSI(close, timeperiod=14),
        "cci": talib.CCI(high, low, close, timeperiod=14),
        "dx": talib.DX(high, low, close, timeperiod=14),
    }
    return pd.DataFrame({name: out[name] for name in FEATURES_11}, index=bars.index)


@dataclass(frozen=True)
class FeatureMatrix:
    """Aligned training-style arrays: row r is the bar that opened at ``times[r]`` for every ticker."""

    tickers: tuple[str, ...]
    times: pd.DatetimeIndex
    price_array: npt.NDArray[np.float64]  # (T, n) closes
    tech_array: npt.NDArray[np.float64]  # (T, 11n) ticker-major
    dropped: dict[str, tuple[pd.Timestamp, ...]] = field(default_factory=dict)  # ticker -> times it lacked

    def __len__(self) -> int:
        return int(self.price_array.shape[0])

    def rows_newest_first(self, lookback: int, newest: int | None = None) -> npt.NDArray[np.float64]:
        """Tech rows ``newest, newest-1, ..., newest-L+1`` (default newest = last row)."""
        t = len(self) - 1 if newest is None else newest
        if t - lookback + 1 < 0 or t >= len(self):
            raise StaleDataError(f"need {lookback} aligned feature rows ending at row {t}; have {len(self)}")
        return self.tech_array[t - lookback + 1 : t + 1][::-1]


FeatureFn = Callable[[str, pd.DataFrame], pd.DataFrame]


def ticker_features(_ticker: str, bars: pd.DataFrame) -> pd.DataFrame:
    """The default ``FeatureFn``: computed afresh for every call."""
    return compute_features(bars)


def feature_matrix(
    frames: Mapping[str, pd.DataFrame], tickers: Sequence[str], features: FeatureFn = ticker_features
) -> FeatureMatrix:
    """Features per ticker, then the common timestamps, minus leading warm-up rows (same for all).

    ``features(ticker, bars)``: ``compute_features`` by default; a tournament passes a memo so that a
    ticker several models trade is computed once per bar (each ticker's features depend on its own bars
    only, so the result is the same)."""
    if not tickers:
        raise ValueError("feature_matrix needs at least one ticker")
    absent = [t for t in tickers if t not in frames]
    if absent:
        raise StaleDataError(f"no bars at all for {absent}")
    feats = {t: features(t, frames[t]) for t in tickers}
    common = feats[tickers[0]].index
    for t in tickers[1:]:
        common = common.intersection(feats[t].index)
    common = common.sort_values()
    dropped: dict[str, tuple[pd.Timestamp, ...]] = {}
    union = feats[tickers[0]].index
    for t in tickers[1:]:
        union = union.union(feats[t].index)
    for t in tickers:
        lacking = union.difference(feats[t].index)
        if len(lacking):
            dropped[t] = tuple(lacking)
    tech = np.hstack([feats[t].loc[common].to_numpy(dtype=np.float64) for t in tickers])
    finite_rows = np.isfinite(tech).all(axis=1)
    first = int(np.argmax(finite_rows)) if finite_rows.any() else len(common)
    bad = np.flatnonzero(~finite_rows[first:])
    if bad.size:
        row = first + int(bad[0])
        col = int(np.flatnonzero(~np.isfinite(tech[row]))[0])
        ticker, feat = tickers[col // len(FEATURES_11)], FEATURES_11[col % len(FEATURES_11)]
        raise StaleDataError(
            f"non-finite {feat} for {ticker} at {common[row].isoformat()} after warm-up: "
            "the input bars hold NaN/inf or non-positive values; fix the data source"
        )
    tech = np.ascontiguousarray(tech[first:])
    close_cols = [FEATURES_11.index("close") + len(FEATURES_11) * j for j in range(len(tickers))]
    prices = np.ascontiguousarray(tech[:, close_cols])
    times = pd.DatetimeIndex(common[first:])
    return FeatureMatrix(tuple(tickers), times, prices, tech, dropped)


class BarGap(StaleDataError):
    """The newest completed bar is missing for some tickers.

    ``retry_until`` set: the bar may still arrive, poll again until then. ``None``: the wait is over,
    skip this cycle (log it) and trade at the next bar, where the missing row simply drops out.
    """

    def __init__(
        self, message: str, missing: tuple[str, ...], expected: datetime, retry_until: datetime | None
    ) -> None:
        super().__init__(message)
        self.missing = missing
        self.expected = expected
        self.retry_until = retry_until


@dataclass(frozen=True)
class Aligned:
    """What the live worker trades on: the matrix whose last row is the newest completed bar."""

    newest: datetime  # open time of the newest completed bar, common to all tickers
    matrix: FeatureMatrix
    warmup_ok: bool  # every ticker had >= WARMUP_BARS rows of raw history

    @property
    def prices(self) -> npt.NDArray[np.float64]:
        """Closes of the newest bar, per ticker in state order."""
        return self.matrix.price_array[-1]

    def state_rows(self, lookback: int) -> npt.NDArray[np.float64]:
        return self.matrix.rows_newest_first(lookback)


def floor_time(now: datetime, step: timedelta) -> datetime:
    """``now`` rounded down to a multiple of ``step`` since the Unix epoch (bar boundaries)."""
    epoch = datetime(1970, 1, 1, tzinfo=now.tzinfo)
    return now - (now - epoch) % step


def align_latest(
    frames: Mapping[str, pd.DataFrame],
    tickers: Sequence[str],
    now: datetime,
    timeframe: timedelta,
    *,
    lookback: int,
    max_wait: timedelta = timedelta(minutes=5),
    features: FeatureFn = ticker_features,
) -> Aligned:
    """Trim in-progress bars, insist the newest completed bar exists for every ticker, build features.

    The newest completed bar is the one that opened at ``floor(now) - timeframe``. Bars that opened
    later are still forming and are dropped. If a ticker lacks the expected bar, raise ``BarGap``
    (retryable until ``max_wait`` after the bar's close, then final): never forward-fill, never trade
    an older bar as if it were new. Raises StaleDataError when fewer than ``lookback`` rows remain.
    """
    if now.tzinfo is None:
        raise ValueError("align_latest needs an aware UTC 'now'")
    expected = pd.Timestamp(floor_time(now, timeframe) - timeframe)
    trimmed: dict[str, pd.DataFrame] = {}
    missing: list[str] = []
    for t in tickers:
        frame = frames.get(t)
        if frame is None or frame.empty:
            missing.append(t)
            continue
        frame = frame.loc[frame.index <= expected]
        trimmed[t] = frame
        if frame.empty or frame.index[-1] != expected:
            missing.append(t)
    if missing:
        bar_close = expected.to_pydatetime() + timeframe
        deadline = bar_close + max_wait
        retry_until = deadline if now < deadline else None
        last = {
            t: (trimmed[t].index[-1].isoformat() if t in trimmed and len(trimmed[t]) else None)
            for t in missing
        }
        raise BarGap(
            f"bar {expected.isoformat()} missing for {missing} (their newest: {last}); "
            + ("waiting for it" if retry_until else f"gave up after {max_wait}; skipping this cycle"),
            tuple(missing),
            expected.to_pydatetime(),
            retry_until,
        )
    matrix = feature_matrix(trimmed, tickers, features)
    if len(matrix) < lookback or matrix.times[-1] != expected:
        raise StaleDataError(
            f"only {len(matrix)} aligned feature rows (need {lookback}) ending at "
            f"{matrix.times[-1].isoformat() if len(matrix) else None}; expected newest {expected.isoformat()}"
        )
    warmup_ok = all(len(trimmed[t]) >= WARMUP_BARS for t in tickers)
    return Aligned(expected.to_pydatetime(), matrix, warmup_ok)
