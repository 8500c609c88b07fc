"""Features reproduce the golden TA-Lib arrays; gaps, NaNs and the newest-bar rule behave as documented."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cappuccino_daemon.bars import discover_bars, read_bars_csv
from cappuccino_daemon.errors import StaleDataError
from cappuccino_daemon.model.spec import FEATURES_11
from cappuccino_daemon.policy.features import (
    BarGap,
    align_latest,
    compute_features,
    feature_matrix,
    floor_time,
)

HOUR = timedelta(hours=1)


@pytest.fixture(scope="module")
def golden(fixtures_dir: Path) -> dict[str, np.ndarray]:
    with np.load(fixtures_dir / "features" / "tech_features_1h.npz") as npz:
        return {k: npz[k] for k in npz.files}


@pytest.fixture(scope="module")
def frames(ohlcv_dir: Path) -> dict[str, pd.DataFrame]:
    return {t: read_bars_csv(p) for t, p in discover_bars(ohlcv_dir, "1h").items()}


def test_feature_matrix_reproduces_golden_file(
    golden: dict[str, np.ndarray], frames: dict[str, pd.DataFrame]
) -> None:
    tickers = [str(t) for t in golden["tickers"]]
    assert [str(f) for f in golden["feature_names"]] == list(FEATURES_11)
    m = feature_matrix(frames, tickers)
    assert list(m.times.strftime("%Y-%m-%dT%H:%M:%SZ")) == [str(t) for t in golden["timestamps"]]
    assert m.times[0] == pd.Timestamp("2020-12-02T09:00:00Z")  # CSV row 33: MACD signal warm-up
    assert m.tech_array.dtype == np.float64
    assert np.array_equal(m.price_array, golden["price_array"])
    assert np.array_equal(m.tech_array, golden["tech_array"])  # same library and inputs: bit for bit
    assert m.dropped == {}


def test_later_start_converges_after_warmup(
    golden: dict[str, np.ndarray], frames: dict[str, pd.DataFrame]
) -> None:
    """Indicators from a later first row: OHLCV exact, CCI ~1e-11, recursive ones < 1e-7 after 300 bars."""
    first_csv_row = 1000
    tickers = [str(t) for t in golden["tickers"]]
    late = feature_matrix({t: frames[t].iloc[first_csv_row:] for t in tickers}, tickers)
    offset = int(np.flatnonzero(golden["csv_row"] == first_csv_row + 33)[0])
    ref = golden["tech_array"][offset:]
    assert late.tech_array.shape == ref.shape
    col = {name: [11 * j + FEATURES_11.index(name) for j in range(len(tickers))] for name in FEATURES_11}
    ohlcv = [i for c in ("open", "high", "low", "close", "volume") for i in col[c]]
    assert np.array_equal(late.tech_array[:, ohlcv], ref[:, ohlcv])
    assert np.allclose(late.tech_array[:, col["cci"]], ref[:, col["cci"]], rtol=1e-9, atol=1e-9)
    warm = 300 - 33  # rows after the first valid one = 300 bars of history
    for name in ("macd", "macd_signal", "macd_hist", "rsi", "dx"):
        got, want = late.tech_array[warm:, col[name]], ref[warm:, col[name]]
        diff = (np.abs(got - want) / np.maximum(1.0, np.abs(want))).max()
        assert diff < 1e-7, (name, diff)  # relative to the value (DX is 0-100, MACD in price units)
    early = np.abs(late.tech_array[:50, col["rsi"]] - ref[:50, col["rsi"]]).max()
    assert early > 1e-6  # the warm-up really matters (guards against comparing a thing with itself)


def test_compute_features_columns_and_warmup(frames: dict[str, pd.DataFrame]) -> None:
    f = compute_features(frames["BTC"].iloc[:100])
    assert list(f.columns) == list(FEATURES_11)
    assert f["macd_signal"].isna().sum() == 33
    assert f.iloc[33:].notna().all().all()
    with pytest.raises(ValueError, match="lacks columns"):
        compute_features(frames["BTC"].drop(columns=["volume"]))


def _synthetic(n: int, start: str = "2021-01-01T00:00Z", seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    idx = pd.date_range(start, periods=n, freq="1h", tz="UTC")
    return pd.DataFrame(
        {
            "open": close * 0.999,
            "high": close * 1.01,
            "low": close * 0.99,
            "close": close,
            "volume": 1 + rng.random(n),
        },
        index=idx,
    )


def test_gap_in_one_ticker_drops_that_row_for_all_and_is_reported() -> None:
    a, b = _synthetic(400, seed=1), _synthetic(400, seed=2)
    gap_time = a.index[200]
    b_gapped = b.drop(index=gap_time)
    m = feature_matrix({"A": a, "B": b_gapped}, ["A", "B"])
    assert gap_time not in m.times
    assert m.dropped == {"B": (gap_time,)}
    # No filling: B's indicators are its own rows taken as adjacent, exactly as computed on the gapped series.
    own = compute_features(b_gapped)
    after = a.index[201]
    r = int(m.times.searchsorted(after))
    assert np.array_equal(m.tech_array[r, 11:], own.loc[after].to_numpy())
    assert m.times[r - 1] == a.index[199]  # rows stay adjacent across the gap


def test_nan_after_warmup_is_stale_data() -> None:
    a = _synthetic(200)
    a.loc[a.index[150], "close"] = np.nan
    with pytest.raises(StaleDataError, match="non-finite"):
        feature_matrix({"A": a}, ["A"])


def test_align_latest_uses_the_newest_completed_bar() -> None:
    a, b = _synthetic(400, seed=1), _synthetic(401, seed=2)  # b already has the in-progress bar
    newest_complete = a.index[-1]
    now = (newest_complete + 2 * HOUR + timedelta(seconds=20)).to_pydatetime()  # 20 s into the next-next bar
    aligned = align_latest({"A": a, "B": b.iloc[:400]}, ["A", "B"], now - HOUR, HOUR, lookback=3)
    assert aligned.newest == newest_complete.to_pydatetime()
    assert aligned.warmup_ok
    assert np.array_equal(aligned.prices, [a["close"].iloc[-1], b["close"].iloc[399]])
    rows = aligned.state_rows(3)
    assert np.array_equal(rows[0], aligned.matrix.tech_array[-1]) and np.array_equal(
        rows[2], aligned.matrix.tech_array[-3]
    )
    # The forming bar of B (opened at the bar boundary before "now") is never used.
    aligned2 = align_latest({"A": a, "B": b}, ["A", "B"], now - HOUR, HOUR, lookback=3)
    assert aligned2.matrix.times[-1] == newest_complete


def test_align_latest_missing_bar_waits_then_gives_up() -> None:
    a, b = _synthetic(400, seed=1), _synthetic(400, seed=2)
    b_late = b.iloc[:-1]
    close = (a.index[-1] + HOUR).to_pydatetime()
    with pytest.raises(BarGap) as wait:
        align_latest({"A": a, "B": b_late}, ["A", "B"], close + timedelta(seconds=30), HOUR, lookback=3)
    assert wait.value.missing == ("B",)
    assert wait.value.retry_until == close + timedelta(minutes=5)
    with pytest.raises(BarGap) as final:
        align_latest({"A": a, "B": b_late}, ["A", "B"], close + timedelta(minutes=6), HOUR, lookback=3)
    assert final.value.retry_until is None
    assert isinstance(final.value, StaleDataError)  # the worker skips the cycle, never trades on it
    # Next bar: both have it; the missing row just drops out (adjacent rows, nothing invented).
    a2, b2 = _synthetic(401, seed=1), _synthetic(401, seed=2).drop(index=a.index[-1])
    nxt = align_latest({"A": a2, "B": b2}, ["A", "B"], close + HOUR + timedelta(seconds=5), HOUR, lookback=3)
    assert nxt.newest == (a.index[-1] + HOUR).to_pydatetime()
    assert a.index[-1] not in nxt.matrix.times


def test_align_latest_stale_feed_and_short_history() -> None:
    a = _synthetic(400)
    hours_later = (a.index[-1] + 10 * HOUR).to_pydatetime()
    with pytest.raises(BarGap):
        align_latest({"A": a}, ["A"], hours_later, HOUR, lookback=3)
    short = _synthetic(35)
    now = (short.index[-1] + HOUR + timedelta(seconds=1)).to_pydatetime()
    with pytest.raises(StaleDataError, match="need 3"):
        align_latest({"A": short}, ["A"], now, HOUR, lookback=3)
    ok = align_latest(
        {"A": _synthetic(100)}, ["A"], (_synthetic(100).index[-1] + HOUR).to_pydatetime(), HOUR, lookback=3
    )
    assert not ok.warmup_ok
    with pytest.raises(ValueError, match="aware"):
        align_latest({"A": a}, ["A"], datetime(2021, 1, 1), HOUR, lookback=3)


def test_floor_time_is_on_bar_boundaries() -> None:
    t = datetime(2021, 3, 6, 2, 59, 59, tzinfo=UTC)
    assert floor_time(t, HOUR) == datetime(2021, 3, 6, 2, tzinfo=UTC)
    assert floor_time(t, timedelta(minutes=5)) == datetime(2021, 3, 6, 2, 55, tzinfo=UTC)
