"""The synthetic market: deterministic, extendable, plausible, correlated."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd

from cappuccino_daemon.emulator.synthetic import DEFAULT_BASES, SyntheticMarket, generate_synthetic_bars

START = datetime(2024, 1, 1, tzinfo=UTC)


def test_frames_have_read_bars_csv_format() -> None:
    frames = generate_synthetic_bars(3, start=START, n_bars=50)
    assert sorted(frames) == sorted(DEFAULT_BASES)
    btc = frames["BTC"]
    assert list(btc.columns) == ["open", "high", "low", "close", "volume"]
    assert isinstance(btc.index, pd.DatetimeIndex) and str(btc.index.tz) == "UTC"
    assert btc.index[0] == pd.Timestamp(START) and len(btc) == 50
    assert (btc.index[1:] - btc.index[:-1] == pd.Timedelta(hours=1)).all()
    assert all(str(t) == "float64" for t in btc.dtypes)


def test_same_seed_same_bars_other_seed_other_bars() -> None:
    a = generate_synthetic_bars(11, start=START, n_bars=200)
    b = generate_synthetic_bars(11, start=START, n_bars=200)
    c = generate_synthetic_bars(12, start=START, n_bars=200)
    pd.testing.assert_frame_equal(a["ETH"], b["ETH"])
    assert not np.allclose(a["ETH"]["close"].to_numpy(), c["ETH"]["close"].to_numpy())


def test_longer_request_extends_shorter_and_subset_of_coins_is_identical() -> None:
    short = generate_synthetic_bars(5, start=START, n_bars=300)
    long = generate_synthetic_bars(5, start=START, n_bars=3000)
    only_link = generate_synthetic_bars(5, ["LINK"], start=START, n_bars=300)
    pd.testing.assert_frame_equal(short["BTC"], long["BTC"].iloc[:300])
    pd.testing.assert_frame_equal(only_link["LINK"], short["LINK"])
    market = SyntheticMarket(5, start=START)
    market.ensure(10)
    first = market.arrays("UNI").copy()
    market.ensure_until(datetime(2025, 1, 1, tzinfo=UTC))
    assert len(market) >= 366 * 24
    np.testing.assert_array_equal(market.arrays("UNI")[:, : first.shape[1]], first)


def test_bars_are_consistent_and_plausible() -> None:
    frames = generate_synthetic_bars(1, start=START, n_bars=24 * 365)
    levels = {"BTC": (5_000, 200_000), "ETH": (300, 15_000), "LTC": (20, 1_500), "UNI": (2, 200)}
    for base, frame in frames.items():
        o, h, low, c, v = (frame[k].to_numpy() for k in ("open", "high", "low", "close", "volume"))
        assert (h >= np.maximum(o, c)).all() and (low <= np.minimum(o, c)).all() and (low > 0).all()
        assert (v > 0).all()
        np.testing.assert_allclose(o[1:], c[:-1])  # continuous prices
        yearly_vol = np.diff(np.log(c)).std() * np.sqrt(24 * 365)
        assert 0.3 < yearly_vol < 2.5, (base, yearly_vol)
        if base in levels:
            lo, hi = levels[base]
            assert lo < c.min() and c.max() < hi, (base, c.min(), c.max())
    returns = pd.DataFrame({b: np.log(f["close"]).diff() for b, f in frames.items()}).dropna()
    corr = returns.corr().to_numpy()
    off_diagonal = corr[~np.eye(len(corr), dtype=bool)]
    assert off_diagonal.min() > 0.4 and off_diagonal.max() < 0.95
    abs_r = returns["BTC"].abs()
    assert abs_r.autocorr(lag=1) > 0.05  # volatility clusters (GARCH)
    assert frames["BTC"]["volume"].mean() * frames["BTC"]["close"].mean() > 1e6  # USD volume, base units


def test_unknown_base_gets_a_stable_profile() -> None:
    a = generate_synthetic_bars(2, ["DOGE"], start=START, n_bars=24)
    b = generate_synthetic_bars(2, ["DOGE"], start=START, n_bars=24)
    pd.testing.assert_frame_equal(a["DOGE"], b["DOGE"])
    assert 0.5 < a["DOGE"]["close"].iloc[0] < 2000
