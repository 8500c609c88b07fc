"""OHLCV bar files: ``BASE-QUOTE_TIMEFRAME.csv`` with ``timestamp,open,high,low,close,volume``.

The timestamp is the bar's OPEN time in UTC. USDT files stand for USD pairs (BTC-USDT → BTC/USD).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from cappuccino_daemon.errors import ConfigError, StaleDataError

COLUMNS = ("open", "high", "low", "close", "volume")
_NAME = re.compile(r"^(?P<base>[A-Z0-9]+)-(?P<quote>[A-Z]+)_(?P<tf>\d+[mhd])\.csv$")
_TF = re.compile(r"^(\d+)([mhd])$")


def timeframe_delta(timeframe: str) -> timedelta:
    """``"1h"`` → 1 hour; ``"5m"`` → 5 minutes; ``"1d"`` → 1 day."""
    match = _TF.match(timeframe)
    if not match:
        raise ConfigError(f"Unknown timeframe {timeframe!r}: use a number followed by m, h or d, e.g. '1h'.")
    n, unit = int(match.group(1)), match.group(2)
    return {"m": timedelta(minutes=n), "h": timedelta(hours=n), "d": timedelta(days=n)}[unit]


def discover_bars(directory: Path, timeframe: str = "1h") -> dict[str, Path]:
    """Map bare base symbols (``"BTC"``) to their CSV for one timeframe."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ConfigError(
            f"Bars directory {directory} does not exist. Point --bars-dir at a folder of "
            f"BASE-QUOTE_{timeframe}.csv files (e.g. BTC-USDT_{timeframe}.csv)."
        )
    found: dict[str, Path] = {}
    for path in sorted(directory.iterdir()):
        match = _NAME.match(path.name)
        if match and match.group("tf") == timeframe:
            found[match.group("base")] = path
    if not found:
        raise ConfigError(
            f"Bars directory {directory} holds no *_{timeframe}.csv files named BASE-QUOTE_{timeframe}.csv "
            f"(e.g. BTC-USDT_{timeframe}.csv). Check --bars-dir and the model's timeframe."
        )
    return found


@dataclass(frozen=True)
class ImpossibleBar:
    """The first bar of a frame that no exchange could print: its row (0-based), open time and the rule."""

    position: int
    timestamp: pd.Timestamp
    rule: str


def find_impossible_bar(frame: pd.DataFrame) -> ImpossibleBar | None:
    """The one bar-sanity rule shared by replay, the emulator's bars folder and the worker's data check.

    Prices must be finite and positive, volume finite and non-negative, and high >= open, close >= low.
    A bar breaking this (a sign flip, a swapped column, a NaN cell) would otherwise be traded on.
    """
    if frame.empty:
        return None
    o, h, lo, c, v = (frame[col].to_numpy(dtype="float64") for col in COLUMNS)
    checks: list[tuple[np.ndarray, str]] = []
    for name, prices in (("open", o), ("high", h), ("low", lo), ("close", c)):
        checks.append((~(np.isfinite(prices) & (prices > 0)), f"{name} must be a positive finite price"))
    checks.append((~(np.isfinite(v) & (v >= 0)), "volume must be a finite number >= 0"))
    checks.append((h < lo, "high must not be below low"))
    checks.append((h < np.maximum(o, c), "high must not be below open or close"))
    checks.append((lo > np.minimum(o, c), "low must not be above open or close"))
    firsts = [(int(np.argmax(mask)), rule) for mask, rule in checks if mask.any()]
    if not firsts:
        return None
    position, rule = min(firsts, key=lambda item: item[0])
    row = frame.iloc[position]
    shown = ", ".join(f"{col}={float(row[col])!r}" for col in COLUMNS)
    return ImpossibleBar(position, pd.Timestamp(frame.index[position]), f"{rule} (got {shown})")


def check_fetched_bars(frames: Mapping[str, pd.DataFrame]) -> None:
    """Broker bars for the worker: an impossible bar is data we cannot trust (the cycle is skipped)."""
    for ticker, frame in frames.items():
        bad = find_impossible_bar(frame)
        if bad is not None:
            raise StaleDataError(f"{ticker} bar at {bad.timestamp.isoformat()}: {bad.rule}")


def _numbers(frame: pd.DataFrame, path: Path) -> dict[str, np.ndarray]:
    """Each OHLCV column as float64; a cell that is not a number is refused with its line and column."""
    out: dict[str, np.ndarray] = {}
    for col in COLUMNS:
        parsed = pd.to_numeric(frame[col], errors="coerce")
        wrong = parsed.isna() & frame[col].notna()
        if wrong.any():
            position = int(np.argmax(wrong.to_numpy()))
            raise ConfigError(
                f"Bars file {path} line {position + 2} (bar {frame['timestamp'].iloc[position]}): {col} = "
                f"{frame[col].iloc[position]!r} is not a number. Fix or remove that row."
            )
        out[col] = parsed.to_numpy(dtype="float64")
    return out


def _open_times(frame: pd.DataFrame, path: Path) -> pd.DatetimeIndex:
    """The timestamp column as UTC times; one that is not a time is refused with its line."""
    raw = frame["timestamp"]
    try:
        times = pd.to_datetime(raw, utc=True, errors="coerce", format="ISO8601")
    except (ValueError, TypeError):  # a mix pandas cannot even coerce
        times = pd.Series(pd.NaT, index=raw.index)
    wrong = times.isna().to_numpy()
    if wrong.any():
        position = int(np.argmax(wrong))
        raise ConfigError(
            f"Bars file {path} line {position + 2}: timestamp {raw.iloc[position]!r} is not an ISO time; "
            "write e.g. 2024-01-01T00:00:00Z (the bar's open time in UTC), or remove that row."
        )
    return pd.DatetimeIndex(times, name="timestamp")


def read_bars_csv(path: Path) -> pd.DataFrame:
    """One symbol's bars, indexed by UTC open time, float64 columns; impossible bars, duplicates and disorder
    refused (line numbers count the header as line 1)."""
    path = Path(path)
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    except (OSError, ValueError) as exc:
        raise ConfigError(f"Cannot read bars file {path}: {exc}. Fix or remove the file.") from exc
    missing = [c for c in ("timestamp", *COLUMNS) if c not in frame.columns]
    if missing:
        raise ConfigError(
            f"Bars file {path} lacks columns {missing}; the header must be "
            "timestamp,open,high,low,close,volume (timestamp = bar open time in UTC)."
        )
    index = _open_times(frame, path)
    out = pd.DataFrame(_numbers(frame, path), index=index)
    if not out.index.is_monotonic_increasing or out.index.has_duplicates:
        raise ConfigError(f"Bars file {path} has unsorted or duplicate timestamps; sort and de-duplicate it.")
    bad = find_impossible_bar(out)
    if bad is not None:
        raise ConfigError(
            f"Bars file {path} line {bad.position + 2} (bar {bad.timestamp.isoformat()}): {bad.rule}; no "
            "exchange prints such a bar. Fix or remove that row."
        )
    return out
