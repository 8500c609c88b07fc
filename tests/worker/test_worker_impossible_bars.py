"""The worker's data check uses the shared impossible-bar rule: such a bar skips the cycle, no order."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
from test_worker_guards import loop_with
from worker_support import Model, all_orders, broker_for

from cappuccino_daemon.broker.alpaca import AlpacaBroker
from cappuccino_daemon.emulator.testing import EmulatorThread


@dataclass
class NegativeLow:
    """Wraps the real adapter and flips the sign of one low price in ``symbol``'s history."""

    inner: AlpacaBroker
    symbol: str

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def get_bars(
        self, symbols: list[str], timeframe: timedelta, start: datetime, end: datetime
    ) -> dict[str, pd.DataFrame]:
        frames = self.inner.get_bars(symbols, timeframe, start, end)
        frame = frames[self.symbol].copy()
        frame.iloc[-5, frame.columns.get_loc("low")] = -19151.0  # mid-history, not the newest bar
        return {**frames, self.symbol: frame}


def test_impossible_bar_from_the_broker_skips_the_cycle(
    tmp_path: Path, tiny_model: Model, emulator: EmulatorThread
) -> None:
    emulator.advance(10)
    loop = loop_with(tmp_path, tiny_model, NegativeLow(broker_for(emulator), "ETH"))
    outcome = loop.step()
    assert outcome.kind == "skipped", outcome
    assert (
        "bad data" in outcome.message
        and "ETH" in outcome.message
        and "low must be a positive" in outcome.message
    )
    assert all_orders(emulator) == []
    assert loop.cycle.journal.latest_account() is None
