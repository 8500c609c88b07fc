"""The worker's alerts (alerts/): a model halted by a risk limit, a parity alarm, and one summary per
model when a new UTC day's first bar closes. The risk guard and the parity check call ``post``; the
loop calls ``DailySummary``. Sending never blocks trading (alerts/sender.py)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import Any

from cappuccino_daemon.alerts.events import Alert

Post = Callable[[Alert], None]


def halt_alert(detail: dict[str, Any]) -> Alert:
    model = str(detail.get("model"))
    return Alert(
        "model_halted",
        f"cappuccino-paper: {model} halted ({detail.get('limit')})",
        f"{detail.get('message')} at bar {detail.get('bar')}; equity {float(detail.get('equity', 0.0)):,.2f} "
        f"USD. No new buys ({detail.get('on_breach')}) until `cappuccino-paper resume-model {model}`.",
        key=model,
    )


def parity_alert(detail: dict[str, Any]) -> Alert:
    model = str(detail.get("model"))
    return Alert(
        "parity_alarm",
        f"cappuccino-paper: parity alarm for {model}",
        f"At bar {detail.get('bar')} the live action differs from the replay path's by "
        f"{detail.get('max_abs_diff')} (tolerance 1e-6): the served state is not the training state. "
        "The journal's parity_alarm event holds both actions.",
        key=model,
    )


class DailySummary:
    """One message per model at the first bar of each new UTC day (not at start: nothing to sum yet)."""

    def __init__(self) -> None:
        self.day: date | None = None

    def due(self, closed_at: datetime) -> bool:
        day, previous = closed_at.date(), self.day
        self.day = day
        return previous is not None and day != previous

    @staticmethod
    def alerts(rows: Sequence[tuple[str, float | None, float, bool]], day: date) -> list[Alert]:
        """``rows``: (model, equity, initial capital, halted) per model."""
        out = []
        for model, equity, capital, halted in rows:
            if equity is None:
                continue
            state = "HALTED" if halted else "trading"
            out.append(
                Alert(
                    "daily_summary",
                    f"cappuccino-paper: {model} on {day.isoformat()}",
                    f"equity {equity:,.2f} USD, {equity / capital - 1:+.2%} since its start ({state})",
                    key=f"{model}:{day.isoformat()}",
                )
            )
        return out
