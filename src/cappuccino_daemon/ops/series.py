"""One run as time series, from a live journal or a ``replay`` JSONL, so ``report`` draws both the same way.

Journal: one point per decided bar at that bar's close prices; equity is the virtual account once the
bar's fills were booked. Replay: one point per decision at its fill bar's close (the training env's fill
rule), equity as replay wrote it. Buy-and-hold in both: ``capital * mean(p / p0)`` (equal weight, no fees).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cappuccino_daemon.errors import ConfigError
from cappuccino_daemon.ops.journal_view import JournalView
from cappuccino_daemon.ops.labels import demo_label


@dataclass(frozen=True)
class Trade:
    time: datetime
    ticker: str
    side: str  # buy | sell
    qty: float
    price: float
    kind: str = ""  # buy | sell | forced_sell (replay) or "" (journal fills)


@dataclass
class RunSeries:
    title: str
    tickers: tuple[str, ...]
    capital: float
    times: list[datetime] = field(default_factory=list)
    equity: list[float] = field(default_factory=list)
    buy_hold: list[float] = field(default_factory=list)
    prices: dict[str, list[float]] = field(default_factory=dict)
    trades: list[Trade] = field(default_factory=list)
    label: str | None = None  # "demo model, not a strategy" when the model is the demo

    @property
    def drawdown(self) -> list[float]:
        """Fraction below the running peak of equity (0 at a new high, negative below)."""
        out, peak = [], float("-inf")
        for value in self.equity:
            peak = max(peak, value)
            out.append(value / peak - 1.0 if peak > 0 else 0.0)
        return out


def ticker_of(symbol: str, tickers: tuple[str, ...]) -> str | None:
    """ "BTC/USD", "BTCUSD" or "BTC" -> "BTC" when it is one of ``tickers``."""
    base = symbol.upper().split("/")[0]
    if base in tickers:
        return base
    for quote in ("USDT", "USDC", "USD"):
        if base.endswith(quote) and base[: -len(quote)] in tickers:
            return base[: -len(quote)]
    return None


def _bh(capital: float, prices: list[float], p0: list[float]) -> float:
    return capital * sum(p / q for p, q in zip(prices, p0, strict=True)) / len(prices)


def from_journal(view: JournalView) -> RunSeries:
    priced = view.priced_cycles
    capital = view.initial_capital
    if not priced or capital is None or view.p0 is None:
        raise ConfigError(
            f"Journal {view.path} holds no decided bar yet ({sum(view.cycle_counts.values())} cycles, none "
            "with prices), so there is nothing to draw. Let the daemon trade a few bars (`cappuccino-paper "
            "status` shows the cycle count), or draw a model's replay with `cappuccino-paper report "
            "--replay FILE.jsonl`."
        )
    series = RunSeries(f"{view.model_id} (live journal)", view.tickers, capital)
    series.prices = {t: [] for t in view.tickers}
    p0 = list(view.p0)
    for cycle, snap in zip(priced, view.accounts_after(priced), strict=True):
        prices = list(cycle.prices or ())
        if snap is None or len(snap.holdings) != len(prices):
            continue
        series.times.append(cycle.bar_time)
        series.equity.append(snap.cash + sum(h * p for h, p in zip(snap.holdings, prices, strict=True)))
        series.buy_hold.append(_bh(capital, prices, p0))
        for t, p in zip(view.tickers, prices, strict=True):
            series.prices[t].append(p)
    for f in view.fills:
        ticker = ticker_of(f.symbol, view.tickers)
        if ticker is not None:
            series.trades.append(Trade(f.bar_time, ticker, f.side, f.qty, f.price))
    return series


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def read_replay(path: Path) -> RunSeries:
    """Parse ``replay`` output: decision lines, then one summary line (which holds p0 and the capital)."""
    path = Path(path)
    decisions: list[dict[str, Any]] = []
    summary: dict[str, Any] | None = None
    try:
        with path.open(encoding="utf-8") as fh:
            for number, line in enumerate(fh, 1):  # noqa: B007
                if not line.strip():
                    continue
                record = json.loads(line)
                if record.get("type") == "decision":
                    decisions.append(record)
                elif record.get("type") == "summary":
                    summary = record
    except OSError as exc:
        raise ConfigError(
            f"Cannot read replay output {path} ({exc}). Pass the .jsonl written by `replay --out`."
        ) from exc
    except ValueError as exc:
        raise ConfigError(
            f"{path} line {number} is not JSON ({exc}). Pass the .jsonl written by "
            "`cappuccino-paper replay --out`."
        ) from exc
    if summary is None or not decisions:
        raise ConfigError(
            f"{path} has {len(decisions)} decision lines and {'a' if summary else 'no'} summary line: it "
            "is not a complete replay output (interrupted run?). Re-run `cappuccino-paper replay ... "
            "--out FILE.jsonl`."
        )
    try:
        return _replay_series(path, decisions, summary)
    except (KeyError, TypeError, ValueError, ZeroDivisionError) as exc:
        raise ConfigError(
            f"{path} does not look like `cappuccino-paper replay` output ({type(exc).__name__}: {exc}). "
            "Re-run "
            "replay with this version and pass its --out file."
        ) from exc


def _replay_series(path: Path, decisions: list[dict[str, Any]], summary: dict[str, Any]) -> RunSeries:
    tickers = tuple(str(t) for t in summary["tickers"])
    capital = float(summary["profile"]["initial_capital"])
    p0 = [float(summary["p0"][t]) for t in tickers]
    series = RunSeries(f"{summary.get('model_id', path.stem)} (replay {path.name})", tickers, capital)
    series.label = demo_label(summary.get("model_dir"))
    series.prices = {t: [] for t in tickers}
    for d in decisions:
        when = _time(d["fill_time"])
        prices = [float(p) for p in d["fill_prices"]]
        series.times.append(when)
        series.equity.append(float(d["equity"]))
        series.buy_hold.append(_bh(capital, prices, p0))
        for t, p in zip(tickers, prices, strict=True):
            series.prices[t].append(p)
        for o in d.get("orders", []):
            ticker = ticker_of(str(o["symbol"]), tickers)
            if ticker is None:
                continue
            price = prices[tickers.index(ticker)]
            series.trades.append(
                Trade(when, ticker, str(o["side"]), float(o["qty"]), price, str(o.get("kind", "")))
            )
    return series
