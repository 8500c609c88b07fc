"""The leaderboard as a picture: every model's equity on one chart, and its live-vs-simulation gap."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cappuccino_daemon.ops.journal_view import read_journal
from cappuccino_daemon.ops.png import pyplot, save_png
from cappuccino_daemon.ops.series import from_journal


def render_leaderboard(rows: list[dict[str, Any]], out: Path, dpi: int = 100) -> Path:
    """Equity curves (models with a journal) and one gap bar per model, written atomically to ``out``."""
    plt = pyplot()
    traded = [r for r in rows if r["journal"] and r["bars"]]
    fig, (eq_ax, gap_ax) = plt.subplots(2, 1, figsize=(11, 8), gridspec_kw={"height_ratios": [3, 1.4]})
    try:
        for row in traded:
            series = from_journal(read_journal(Path(row["journal"])))
            eq_ax.plot(series.times, series.equity, label=f"{row['name']} ({row['return']:+.2%})")
        eq_ax.set_title(f"Leaderboard: {len(rows)} models, equity of each virtual sub-account")
        eq_ax.set_ylabel("USD")
        if traded:
            eq_ax.legend(loc="best", fontsize="small")
        names = [r["name"] for r in rows]
        gaps = [r["gap_usd"] or 0.0 for r in rows]
        gap_ax.bar(names, gaps, color=["tab:green" if g >= 0 else "tab:red" for g in gaps])
        gap_ax.axhline(0.0, color="black", linewidth=0.8)
        gap_ax.set_ylabel("live - sim, USD")
        gap_ax.tick_params(axis="x", labelrotation=45, labelsize="small")
    except BaseException:
        plt.close(fig)
        raise
    return save_png(fig, out, dpi, "leaderboard")
