"""Every bar timeframe Alpaca serves, from the finest data the emulator has.

The synthetic market splits each hourly bar into 60 minute bars; aggregating them back must give
the hourly series exactly, so a 5m model and a 1h model see one consistent market.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests
from alpaca.data.historical.crypto import CryptoHistoricalDataClient
from alpaca.data.requests import CryptoBarsRequest
from alpaca.data.timeframe import TimeFrame, TimeFrameUnit

from cappuccino_daemon.emulator.market import NS, Market, to_ns
from cappuccino_daemon.emulator.synthetic import generate_synthetic_bars
from cappuccino_daemon.emulator.testing import EmulatorThread

START = datetime(2024, 1, 1, tzinfo=UTC)


def _bars(
    emu: EmulatorThread, timeframe: str, start: datetime, symbol: str = "ETH/USD"
) -> list[dict[str, float]]:
    reply = requests.get(
        emu.base_url + "/v1beta3/crypto/us/bars",
        params={"symbols": symbol, "timeframe": timeframe, "start": start.isoformat(), "limit": 10000},
        timeout=30,
    )
    assert reply.status_code == 200, reply.text
    return reply.json()["bars"].get(symbol, [])


def test_minutes_aggregate_to_the_hourly_series() -> None:
    market = Market.synthetic(5, origin=START - timedelta(days=2))
    now = START + timedelta(hours=6)
    lo, hi = to_ns(START - timedelta(hours=30)), to_ns(now)
    hourly = market.bars("BTC", now, 3600 * NS, lo, hi)
    minutes = market.bars("BTC", now, market.step_ns, lo, hi - 1)
    assert len(minutes) == len(hourly) * 60
    grouped = minutes.data.reshape(5, len(hourly), 60)
    np.testing.assert_array_equal(grouped[0, :, 0], hourly.data[0])  # open
    np.testing.assert_array_equal(grouped[1].max(axis=1), hourly.data[1])  # high
    np.testing.assert_array_equal(grouped[2].min(axis=1), hourly.data[2])  # low
    np.testing.assert_array_equal(grouped[3, :, -1], hourly.data[3])  # close
    np.testing.assert_allclose(grouped[4].sum(axis=1), hourly.data[4], rtol=1e-12)  # volume
    again = Market.synthetic(5, origin=START - timedelta(days=2)).bars("BTC", now, market.step_ns, lo, hi - 1)
    np.testing.assert_array_equal(again.data, minutes.data)  # deterministic per seed


@pytest.mark.parametrize(
    ("timeframe", "minutes"),
    [("1Min", 1), ("5Min", 5), ("15Min", 15), ("30Min", 30), ("1Hour", 60), ("2Hour", 120), ("4Hour", 240)],
)
def test_every_intraday_timeframe_is_served_aligned(timeframe: str, minutes: int) -> None:
    with EmulatorThread(synthetic_seed=7, start=START) as emu:
        bars = _bars(emu, timeframe, START - timedelta(hours=8))
        assert len(bars) == 8 * 60 // minutes
        times = [datetime.fromisoformat(b["t"].replace("Z", "+00:00")) for b in bars]
        assert all((t - START) % timedelta(minutes=minutes) == timedelta(0) for t in times)
        hourly = _bars(emu, "1Hour", START - timedelta(hours=8))
        assert bars[-1]["c"] == hourly[-1]["c"] and max(b["h"] for b in bars) == max(b["h"] for b in hourly)


def test_five_minute_model_data_through_the_sdk() -> None:
    with EmulatorThread(synthetic_seed=7, start=START) as emu:
        client = CryptoHistoricalDataClient(url_override=emu.base_url)
        request = CryptoBarsRequest(
            symbol_or_symbols=["BTC/USD", "ETH/USD"],
            timeframe=TimeFrame(5, TimeFrameUnit.Minute),
            start=START - timedelta(days=1),
        )
        got = client.get_crypto_bars(request).data
        assert len(got["BTC/USD"]) == len(got["ETH/USD"]) == 288
        emu.advance(7 * 60)  # the 00:05 bar is still open: never served half-built
        assert client.get_crypto_bars(request).data["BTC/USD"][-1].timestamp == START
        emu.advance(53 * 60)
        daily = client.get_crypto_bars(
            CryptoBarsRequest(
                symbol_or_symbols="BTC/USD", timeframe=TimeFrame.Day, start=START - timedelta(days=3)
            )
        ).data["BTC/USD"]
        assert [b.timestamp for b in daily][-1] == START  # today's bar, in progress (as Alpaca serves it)


def _write(folder: Path, name: str, frame: pd.DataFrame) -> None:
    frame.index.name = "timestamp"
    frame.to_csv(folder / name)


def test_bars_folder_uses_its_finest_file(tmp_path: Path) -> None:
    origin = START - timedelta(days=3)
    hourly = generate_synthetic_bars(2, ("BTC",), start=origin, n_bars=24 * 3)["BTC"]
    fives = hourly.resample("5min").ffill()  # a 5m series (flat within each hour is enough here)
    _write(tmp_path, "BTC-USD_1h.csv", hourly)
    _write(tmp_path, "BTC-USD_5m.csv", fives)
    with EmulatorThread(bars_dir=tmp_path, start=START) as emu:
        assert emu.exchange.market.step_ns == 300 * NS
        fifteen = _bars(emu, "15Min", START - timedelta(hours=2), "BTC/USD")
        assert [b["t"][11:16] for b in fifteen] == [
            "22:00",
            "22:15",
            "22:30",
            "22:45",
            "23:00",
        ]  # data ends 23:00
        finer = requests.get(
            emu.base_url + "/v1beta3/crypto/us/bars",
            params={"symbols": "BTC/USD", "timeframe": "1Min"},
            timeout=10,
        )
        assert finer.status_code == 400 and "5Min" in finer.json()["message"]
