"""``report``: one PNG of a run: equity vs buy-and-hold, drawdown, and each ticker's price with its trades.

Matplotlib runs on the Agg backend (``ops/png.py``: no display needed, safe under systemd and in CI).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from cappuccino_daemon.ops.png import pyplot, save_png
from cappuccino_daemon.ops.series import RunSeries, Trade

MAX_TICKER_PANELS = 12
MARKERS: tuple[tuple[str, Callable[[Trade], bool], str, str], ...] = (
    ("buy", lambda t: t.side == "buy", "^", "tab:green"),
    ("sell", lambda t: t.side == "sell" and t.kind != "forced_sell", "v", "tab:red"),
    ("forced sell", lambda t: t.kind == "forced_sell", "x", "tab:orange"),
)


def render_report(series: RunSeries, out: Path, dpi: int = 100) -> Path:
    """Draw ``series`` into ``out`` (PNG, written atomically) and return the path."""
    import matplotlib.dates as mdates

    plt = pyplot()
    tickers = series.tickers[:MAX_TICKER_PANELS]
    n_rows = 2 + len(tickers)
    heights = [3.0, 1.4] + [1.3] * len(tickers)
    fig, axes = plt.subplots(
        n_rows, 1, figsize=(11, sum(heights) + 1.0), sharex=True, gridspec_kw={"height_ratios": heights}
    )
    try:
        _draw_equity(axes[0], series)
        _draw_drawdown(axes[1], series)
        for ax, ticker in zip(axes[2:], tickers, strict=True):
            _draw_ticker(ax, series, ticker)
        axes[-1].xaxis.set_major_formatter(mdates.ConciseDateFormatter(axes[-1].xaxis.get_major_locator()))
    except BaseException:
        plt.close(fig)
        raise
    return save_png(fig, out, dpi, "report")


def _draw_equity(eq_ax: Any, series: RunSeries) -> None:
    """Model equity against equal-weight buy-and-hold, both with their return on the capital."""
    final = series.equity[-1]
    bh_final = series.buy_hold[-1]
    eq_ax.plot(
        series.times,
        series.equity,
        color="tab:blue",
        lw=1.4,
        label=f"model equity {final:,.2f} ({final / series.capital - 1:+.2%})",
    )
    eq_ax.plot(
        series.times,
        series.buy_hold,
        color="tab:gray",
        lw=1.1,
        ls="--",
        label=f"equal-weight buy-and-hold {bh_final:,.2f} ({bh_final / series.capital - 1:+.2%})",
    )
    eq_ax.axhline(series.capital, color="black", lw=0.6, alpha=0.4)
    eq_ax.set_ylabel("USD")
    eq_ax.legend(loc="upper left", fontsize=8)
    title = f"{series.title}: {len(series.times)} bars, {len(series.trades)} trades"
    if series.label:
        title += f"\n{series.label.upper()}"
    eq_ax.set_title(title, fontsize=10)


def _draw_drawdown(dd_ax: Any, series: RunSeries) -> None:
    dd = [100.0 * x for x in series.drawdown]
    dd_ax.fill_between(series.times, dd, 0.0, color="tab:red", alpha=0.35, step="post")
    dd_ax.set_ylabel("drawdown %")
    dd_ax.text(0.01, 0.08, f"max {min(dd):.2f}%", transform=dd_ax.transAxes, fontsize=8)


def _draw_ticker(ax: Any, series: RunSeries, ticker: str) -> None:
    """One ticker's close with its buys, sells and forced sells marked (forced only when any)."""
    ax.plot(series.times, series.prices[ticker], color="black", lw=0.8)
    mine = [t for t in series.trades if t.ticker == ticker]
    for label, keep, marker, color in MARKERS:
        chosen = [t for t in mine if keep(t)]
        if chosen or label != "forced sell":
            xs, ys = [t.time for t in chosen], [t.price for t in chosen]
            tag = f"{label} {len(chosen)}"
            ax.scatter(xs, ys, marker=marker, color=color, s=22, zorder=3, label=tag)
    ax.set_ylabel(ticker, rotation=0, ha="right", va="center")
    ax.legend(loc="upper left", fontsize=7, ncol=3)
