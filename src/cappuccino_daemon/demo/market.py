"""The demo's data: the emulator's synthetic market, turned into training-style feature arrays.

Rows (after indicator warm-up) are split in time: the first part trains, the later part is cut into
equal evaluation windows the policy never saw (like Cappuccino's out-of-sample splits, but simpler).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt

from cappuccino_daemon.policy.features import FeatureMatrix

# A fixed start keeps the market (and so the demo) reproducible; the emulator serves the same process.
MARKET_START = datetime(2024, 1, 1, tzinfo=UTC)
TIMEFRAME = "1h"


@dataclass(frozen=True)
class DemoMarket:
    """Aligned arrays plus the row ranges ``[lo, hi)`` used for training and for evaluation."""

    matrix: FeatureMatrix
    train: tuple[int, int]
    eval_windows: tuple[tuple[int, int], ...]
    market_seed: int

    @property
    def tickers(self) -> tuple[str, ...]:
        return self.matrix.tickers

    def window(self, lo: int, hi: int) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Price and tech rows ``[lo, hi)`` as fresh contiguous arrays (an env may keep references)."""
        return (
            np.ascontiguousarray(self.matrix.price_array[lo:hi]),
            np.ascontiguousarray(self.matrix.tech_array[lo:hi]),
        )

    def time_range(self, lo: int, hi: int) -> tuple[str, str]:
        return self.matrix.times[lo].isoformat(), self.matrix.times[hi - 1].isoformat()


def build_market(
    tickers: Sequence[str],
    n_bars: int,
    market_seed: int,
    train_fraction: float = 0.7,
    n_eval_windows: int = 3,
    start: datetime = MARKET_START,
) -> DemoMarket:
    """Generate ``n_bars`` synthetic 1h bars, compute the 11 features, split train / evaluation rows."""
    from cappuccino_daemon.emulator.synthetic import generate_synthetic_bars
    from cappuccino_daemon.policy.features import feature_matrix

    frames = generate_synthetic_bars(
        market_seed, list(tickers), start=start, n_bars=n_bars, timeframe=TIMEFRAME
    )
    matrix = feature_matrix(frames, list(tickers))
    rows = len(matrix)
    cut = int(rows * train_fraction)
    eval_len = (rows - cut) // n_eval_windows
    if cut < 64 or eval_len < 16:
        raise ValueError(
            f"{n_bars} bars leave {rows} feature rows: too few for a train window and "
            f"{n_eval_windows} evaluation windows; use more bars"
        )
    windows = tuple((cut + k * eval_len, cut + (k + 1) * eval_len) for k in range(n_eval_windows))
    return DemoMarket(matrix=matrix, train=(0, cut), eval_windows=windows, market_seed=market_seed)
