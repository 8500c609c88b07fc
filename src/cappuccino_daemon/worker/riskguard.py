"""A model's risk limits, kept in its journal so a halt survives restarts and is cleared only on purpose.

A halt (``journal/halts.py``) is written with the figures that caused it and holds until
``cappuccino-paper resume-model NAME``; orders a limit cuts are ``order_cut`` events. The rules
themselves are :mod:`cappuccino_daemon.policy.risk`'s; this module keeps the marks and the journal.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt

from cappuccino_daemon.config import RiskLimits
from cappuccino_daemon.journal.halts import CUT, HALT, MARKS_KEY, current_halt
from cappuccino_daemon.journal.store import Journal
from cappuccino_daemon.logsetup import get_logger
from cappuccino_daemon.policy.ledger import AccountState
from cappuccino_daemon.policy.planner import PlannedOrder
from cappuccino_daemon.policy.risk import Breach, HaltMode, Marks, find_breach, limit_orders
from cappuccino_daemon.worker.alerting import Post, halt_alert

log = get_logger(__name__)


class RiskGuard:
    """One model's limits between its plan and its executor."""

    def __init__(self, journal: Journal, model_id: str, limits: RiskLimits, timeframe: timedelta) -> None:
        self.journal = journal
        self.model_id = model_id
        self.limits = limits
        self.timeframe = timeframe  # the UTC day of a decision is the day its bar closed
        self.on_alert: Post | None = None  # a person hears of a halt (worker/alerting.py)

    def screen(
        self,
        bar: datetime,
        orders: Sequence[PlannedOrder],
        prices: npt.NDArray[np.float64],
        account: AccountState,
    ) -> tuple[list[PlannedOrder], dict[str, Any]]:
        """The orders that may go out for this bar, and what the limits did (for the cycle's plan)."""
        equity = account.equity(prices)
        halt = current_halt(self.journal)
        if halt is None and (self.limits.max_drawdown or self.limits.daily_loss):
            marks = self._marks(equity, bar)
            breach = find_breach(self.limits, equity, marks)
            if breach is not None:
                halt = self.halt(bar, breach, equity, marks)
        mode: HaltMode | None = None if halt is None else halt.get("on_breach", "halt")
        kept, cuts = limit_orders(orders, prices, account.holdings, equity, self.limits, mode)
        for cut in cuts:
            detail = {"bar": bar.isoformat(), "index": cut.index, "side": cut.side, "qty": cut.qty}
            detail |= {"kept": cut.kept, "limit": cut.limit, "model": self.model_id}
            self.journal.record_event(CUT, None, detail)
            log.warning("order_cut", **detail)
        return kept, {"halted": mode, "cuts": [{"index": c.index, "limit": c.limit} for c in cuts]}

    def halt(
        self, bar: datetime, breach: Breach, equity: float, marks: Marks | None = None
    ) -> dict[str, Any]:
        """Journal a halt with the figures that caused it (a second halt while halted is not written)."""
        found = current_halt(self.journal)
        if found is not None:
            return found
        detail: dict[str, Any] = {
            "model": self.model_id,
            "bar": bar.isoformat(),
            "limit": breach.limit,
            "value": breach.value,
            "threshold": breach.threshold,
            "equity": equity,
            "on_breach": self.limits.on_breach,
            "message": breach.describe(),
        }
        if marks is not None:
            detail |= {"peak": marks.peak, "day": marks.day, "day_start": marks.day_start}
        self.journal.record_event(HALT, None, detail, durable=True)  # a halt stays, power cut or not
        log.error("model_halted", **detail, clear_with=f"cappuccino-paper resume-model {self.model_id}")
        if self.on_alert is not None:
            self.on_alert(halt_alert(detail))
        return {**detail, "at": bar.isoformat()}

    def _marks(self, equity: float, bar: datetime) -> Marks:
        day = (bar + self.timeframe).date().isoformat()
        saved = json.loads(self.journal.get_meta(MARKS_KEY) or "{}")
        old = Marks(saved["peak"], saved["day"], saved["day_start"]) if saved else Marks(equity, day, equity)
        new = old.after(equity, day)
        if new != old or not saved:
            self.journal.set_meta(MARKS_KEY, json.dumps(new.__dict__))
        return new
