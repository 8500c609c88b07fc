"""OHLCV bar files: ``BASE-QUOTE_TIMEFRAME.csv`` with ``timestamp,open,high,low,close,volume``.

The timestamp is the bar's OPEN time in UTC. USDT files stand for USD pairs (BTC-USDT → BTC/USD).
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pandas as pd

from cappuccino_daemon.errors import ConfigError

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


def read_bars_csv(path: Path) -> pd.DataFrame:
    """One symbol's bars, indexed by UTC open time, float64 columns; duplicates and disorder refused."""
    path = Path(path)
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"Cannot read bars file {path}: {exc}. Fix or remove the file.") from exc
    missing = [c for c in ("timestamp", *COLUMNS) if c not in frame.columns]
    if missing:
        raise ConfigError(
            f"Bars file {path} lacks columns {missing}; the header must be "
            "timestamp,open,high,low,close,volume (timestamp = bar open time in UTC)."
        )
    index = pd.DatetimeIndex(pd.to_datetime(frame["timestamp"], utc=True), name="timestamp")
    out = pd.DataFrame({c: frame[c].to_numpy(dtype="float64") for c in COLUMNS}, index=index)
    if not out.index.is_monotonic_increasing or out.index.has_duplicates:
        raise ConfigError(f"Bars file {path} has unsorted or duplicate timestamps; sort and de-duplicate it.")
    return out
