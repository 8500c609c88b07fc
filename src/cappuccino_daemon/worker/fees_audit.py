"""The fee the virtual books charged versus the fee the broker booked, per symbol and UTC day.

The virtual account charges the training env's ``buy_cost_pct`` / ``sell_cost_pct`` on every fill;
Alpaca charges maker or taker fees and posts them as one ``CFEE`` activity per asset and UTC day
after the day is over. Once per broker day the auditor reads the ledger (``Broker.list_activities``),
and for every fee day it has not audited yet it compares:

- ``virtual_usd``: our books' rate on our own fills of that day (the ``FILL`` activities of orders
  this journal sent, matched by broker order id);
- ``broker_usd``: the ``CFEE`` of that symbol and day, valued in USD (a coin fee at its price).

Each comparison is journaled as ``fee_audit`` (``status`` shows the totals). CFEE is account-wide:
with several models or a human on one account, ``broker_usd`` includes their fees too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from cappuccino_daemon.broker.ports import Activity, Broker, BrokerRejectedError, TransientBrokerError
from cappuccino_daemon.journal.store import Journal
from cappuccino_daemon.logsetup import get_logger
from cappuccino_daemon.model.spec import EnvProfile

log = get_logger(__name__)

EVENT = "fee_audit"
WARN_USD = 0.01  # a difference above a cent per symbol and day is worth a warning


@dataclass(frozen=True)
class FeeAudit:
    day: date
    symbol: str
    virtual_usd: float
    broker_usd: float

    @property
    def diff_usd(self) -> float:
        return self.broker_usd - self.virtual_usd


def compare(
    activities: Sequence[Activity], our_orders: set[str], profile: EnvProfile, tickers: Sequence[str]
) -> list[FeeAudit]:
    """One ``FeeAudit`` per CFEE (day, symbol) of the model's tickers."""
    virtual: dict[tuple[date, str], Decimal] = {}
    for fill in activities:
        if fill.kind != "FILL" or fill.order_id not in our_orders:
            continue
        rate = profile.buy_cost_pct if fill.side == "buy" else profile.sell_cost_pct
        key = (fill.when.astimezone(UTC).date(), fill.symbol)
        virtual[key] = virtual.get(key, Decimal(0)) + fill.qty * fill.price * Decimal(str(rate))
    broker: dict[tuple[date, str], Decimal] = {}
    for fee in activities:
        if fee.kind == "CFEE" and fee.symbol in tickers:
            day = fee.day or (fee.when.astimezone(UTC) - timedelta(microseconds=1)).date()
            broker[(day, fee.symbol)] = broker.get((day, fee.symbol), Decimal(0)) + fee.fee_usd
    return [
        FeeAudit(day, symbol, float(virtual.get((day, symbol), Decimal(0))), float(usd))
        for (day, symbol), usd in sorted(broker.items())
    ]


class FeeAuditor:
    """Runs the audit at most once per broker UTC day; a failed read only postpones it."""

    def __init__(self, broker: Broker, journal: Journal, profile: EnvProfile, tickers: Sequence[str]) -> None:
        self.broker = broker
        self.journal = journal
        self.profile = profile
        self.tickers = tuple(tickers)
        self._ran_on: date | None = None

    def maybe_run(self, broker_now: datetime) -> list[FeeAudit]:
        today = broker_now.astimezone(UTC).date()
        if self._ran_on == today:
            return []
        try:
            audits = self.run()
        except (TransientBrokerError, BrokerRejectedError) as exc:
            log.warning("fee_audit_postponed", error=str(exc))
            return []
        self._ran_on = today
        return audits

    def run(self) -> list[FeeAudit]:
        done = {(e["detail"]["day"], e["detail"]["symbol"]) for e in self.journal.events(EVENT)}
        last = max((d for d, _ in done), default=None)
        after = datetime.fromisoformat(last).replace(tzinfo=UTC) if last else None
        ours = {i.broker_order_id for i in self.journal.intents() if i.broker_order_id}
        audits = compare(self.broker.list_activities(after=after), ours, self.profile, self.tickers)
        fresh = [a for a in audits if (a.day.isoformat(), a.symbol) not in done and a.virtual_usd > 0]
        for audit in fresh:
            detail = {
                "day": audit.day.isoformat(),
                "symbol": audit.symbol,
                "virtual_usd": round(audit.virtual_usd, 6),
                "broker_usd": round(audit.broker_usd, 6),
                "diff_usd": round(audit.diff_usd, 6),
            }
            (log.warning if abs(audit.diff_usd) > WARN_USD else log.info)(EVENT, **detail)
            self.journal.record_event(EVENT, None, detail)
        return fresh
