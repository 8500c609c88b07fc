"""The audit as a picture: per model, the cumulative gap and each component of it, bar by bar."""

from __future__ import annotations

from datetime import datetime
from itertools import accumulate
from pathlib import Path
from typing import Any

from cappuccino_daemon.ops.audit import COMPONENTS
from cappuccino_daemon.ops.png import pyplot, save_png


def render_audit(rows: list[dict[str, Any]], out: Path, dpi: int = 100) -> Path:
    plt = pyplot()
    shown = [r for r in rows if r.get("bars")]
    fig, axes = plt.subplots(max(1, len(shown)), 1, figsize=(11, 3.6 * max(1, len(shown))), squeeze=False)
    try:
        for ax, row in zip(axes[:, 0], shown, strict=False):
            times = [datetime.fromisoformat(b["bar"]) for b in row["bars"]]
            ax.plot(times, list(accumulate(b["gap"] for b in row["bars"])), color="black", label="gap", lw=2)
            for name in COMPONENTS:
                ax.plot(times, list(accumulate(b[name] for b in row["bars"])), label=name.replace("_", " "))
            ax.axhline(0.0, color="grey", linewidth=0.6)
            ax.set_title(f"{row['name']}: live - env after the same decisions, {row['gap_usd']:+,.2f} USD")
            ax.set_ylabel("USD, cumulative")
            ax.legend(loc="best", fontsize="small")
        if not shown:
            axes[0, 0].set_title("audit: no model has a decided bar with an env record yet")
    except BaseException:
        plt.close(fig)
        raise
    return save_png(fig, out, dpi, "audit")
