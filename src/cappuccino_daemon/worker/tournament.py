"""Many models, one worker, one account: what the loop shares between the models' cycles.

Each model keeps its own cycle (state, actor, plan, executor, journal, ``client_order_id`` prefix, p0
and profile); the loop decides them one after the other on the same bar. Shared: the broker
connection, the clock, one bar download per poll for the union of the models' tickers (started while
the account is reconciled) and each ticker's features computed once from it (``SharedBars``), the
reconciliation of positions against the sum of their books (``reconcile.reconcile_books``), the bar's
order flow (``orderflow.OrderFlow``: one positions read, one cash read, one order list per poll), one
heartbeat. A model whose actor raises is skipped for that bar in
its own journal (``Cycle._act``); the others trade on.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta

import pandas as pd

from cappuccino_daemon.broker.ports import Broker
from cappuccino_daemon.policy.features import Aligned, compute_features
from cappuccino_daemon.worker.cycle import Cycle, CycleOutcome, Kind, check_and_align
from cappuccino_daemon.worker.executor import ExecutionReport

# The poll's outcome is the least settled of its models' (a refused or waiting model is retried).
_RANK: dict[Kind, int] = {"refused": 0, "waiting": 1, "traded": 2, "skipped": 3, "idle": 4}


class SharedBars:
    """``Broker.get_bars`` for one model, served from one download of every model's tickers per poll."""

    def __init__(self, broker: Broker, symbols: Sequence[str]) -> None:
        self.broker = broker
        self.symbols = list(dict.fromkeys(symbols))
        self._key: tuple[timedelta, datetime, datetime] | None = None
        self._frames: dict[str, pd.DataFrame] = {}
        self._features: dict[tuple[str, int, pd.Timestamp], pd.DataFrame] = {}
        self._aligned: dict[tuple[tuple[str, ...], datetime, timedelta, int, timedelta], Aligned] = {}
        self._pool: ThreadPoolExecutor | None = None
        self._pending: tuple[tuple[timedelta, datetime, datetime], Future[dict[str, pd.DataFrame]]] | None = (
            None
        )
        self.downloads = 0
        self.prefetched = 0  # downloads that were started while the account was reconciled
        self.computed = 0  # tickers' features computed (once per ticker and download)
        self.aligned_built = 0  # feature matrices built (once per ticker list, bar and lookback)

    def prefetch(self, timeframe: timedelta, start: datetime, end: datetime) -> None:
        """Start this poll's download in the background: it arrives while the account is reconciled,
        and the first model to read the bars takes it (or its error, raised as ``get_bars`` would)."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="bars")
        key = (timeframe, start, end)
        self._pending = (key, self._pool.submit(self.broker.get_bars, self.symbols, timeframe, start, end))

    def __call__(
        self, symbols: list[str], timeframe: timedelta, start: datetime, end: datetime
    ) -> dict[str, pd.DataFrame]:
        key = (timeframe, start, end)
        if key != self._key or any(s not in self._frames for s in symbols):
            wanted = list(dict.fromkeys([*self.symbols, *symbols]))
            pending, self._pending = self._pending, None
            if pending is not None and pending[0] == key and all(s in self.symbols for s in symbols):
                self._frames, self._key = pending[1].result(), key
                self.prefetched += 1
            else:
                self._frames, self._key = self.broker.get_bars(wanted, timeframe, start, end), key
            self._features.clear()
            self._aligned.clear()
            self.downloads += 1
        return {s: self._frames[s] for s in symbols}

    def features(self, ticker: str, bars: pd.DataFrame) -> pd.DataFrame:
        """``compute_features`` once per ticker of this download: the models that trade a ticker read the
        same bars trimmed to the same bar, so one computation serves them all."""
        key = (ticker, len(bars), bars.index[-1]) if len(bars) else None
        if key is None:
            return compute_features(bars)
        found = self._features.get(key)
        if found is None:
            found = self._features[key] = compute_features(bars)
            self.computed += 1
        return found

    def aligned(
        self,
        frames: dict[str, pd.DataFrame],
        tickers: Sequence[str],
        now: datetime,
        timeframe: timedelta,
        *,
        lookback: int,
        max_wait: timedelta,
    ) -> Aligned:
        """``check_and_align`` once per ticker list of this download: models that trade the same coins
        in the same order with the same lookback read one matrix (a tournament of one study mostly
        does). Refusals are not kept: each model raises its own and journals its own skip."""
        key = (tuple(tickers), now, timeframe, lookback, max_wait)
        found = self._aligned.get(key)
        if found is None:
            found = check_and_align(
                frames, tickers, now, timeframe, lookback=lookback, max_wait=max_wait, features=self.features
            )
            self._aligned[key] = found
            self.aligned_built += 1
        return found


def combine(cycles: Sequence[Cycle], outcomes: Sequence[CycleOutcome]) -> CycleOutcome:
    """One outcome for the loop: the least settled kind, the last order's lag, the summed equity and
    every model's orders in one report."""
    if len(outcomes) == 1:
        return outcomes[0]
    kind = min((o.kind for o in outcomes), key=_RANK.__getitem__)
    bar = next((o.bar for o in outcomes if o.bar is not None), None)
    lags = [o.lag for o in outcomes if o.lag is not None]
    equities = [o.equity for o in outcomes]
    positions: dict[str, float] = {}
    for o in outcomes:
        for symbol, qty in o.positions.items():
            positions[symbol] = positions.get(symbol, 0.0) + qty
    message = "; ".join(
        f"{c.spec.model_id}: {o.message}" for c, o in zip(cycles, outcomes, strict=True) if o.message
    )
    return CycleOutcome(
        kind,
        bar,
        lag=max(lags, key=lambda lag: lag.broker_s) if lags else None,
        message=message,
        report=merge_reports([o.report for o in outcomes if o.report is not None]),
        equity=None if any(e is None for e in equities) else float(sum(e for e in equities if e is not None)),
        positions=positions,
    )


def merge_reports(reports: Sequence[ExecutionReport]) -> ExecutionReport | None:
    """The models' orders as one: counts summed, the last order sent (its time) over all of them."""
    if not reports:
        return None
    sent = [r for r in reports if r.last_submit_mono is not None]
    last = max(sent, key=lambda r: r.last_submit_mono or 0.0) if sent else None
    return ExecutionReport(
        submitted=sum(r.submitted for r in reports),
        filled=sum(r.filled for r in reports),
        dropped=sum(r.dropped for r in reports),
        unresolved=sum(r.unresolved for r in reports),
        stopped=any(r.stopped for r in reports),
        last_submit_mono=None if last is None else last.last_submit_mono,
        last_submit_at=None if last is None else last.last_submit_at,
    )
