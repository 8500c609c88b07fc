"""The fee the virtual books charged versus the fee the broker booked, per symbol and UTC day.

The virtual account charges the training env's ``buy_cost_pct`` / ``sell_cost_pct`` on every fill;
Alpaca charges maker or taker fees and posts them as one ``CFEE`` activity per asset and UTC day
after the day is over. Once per broker day the auditor reads the ledger (``Broker.list_activities``),
and for every fee day it has not audited yet it compares:

- ``virtual_usd``: our books' rate on our own fills of that day (the ``FILL`` activities of orders
  this journal sent, matched by broker order id);
- ``broker_usd``: the ``CFEE`` of that symbol and day, valued in USD (a coin fee at its price).

Each comparison is journaled as ``fee_audit`` (``status`` shows the totals). CFEE is account-wide:
with several models on one account (a tournament) each model is audited against its share of the
day's CFEE, shared in proportion to the fees its own books charged on that symbol that day (fees are a
rate on the traded notional, so the split follows each model's fills); a human's trades on the account
are still inside ``broker_usd``.
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
# An order's fills land within seconds of its bar (the fill deadline), a resumed cycle's within the next
# bars: the fills after the last audited day belong to orders of the two days before it at the earliest.
FILLS_LAG = timedelta(days=2)
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


@dataclass(frozen=True)
class FeeBook:
    """One model's side of the audit: its journal, its env profile (the rates) and its tickers."""

    journal: Journal
    profile: EnvProfile
    tickers: tuple[str, ...]


def _virtual(
    activities: Sequence[Activity], ours: set[str], profile: EnvProfile
) -> dict[tuple[date, str], Decimal]:
    """The fees our books charged per (UTC day, symbol) on this model's own fills."""
    out: dict[tuple[date, str], Decimal] = {}
    for fill in activities:
        if fill.kind != "FILL" or fill.order_id not in ours:
            continue
        rate = profile.buy_cost_pct if fill.side == "buy" else profile.sell_cost_pct
        key = (fill.when.astimezone(UTC).date(), fill.symbol)
        out[key] = out.get(key, Decimal(0)) + fill.qty * fill.price * Decimal(str(rate))
    return out


def _booked(activities: Sequence[Activity], symbols: set[str]) -> dict[tuple[date, str], Decimal]:
    """The broker's CFEE per (UTC day, symbol), in USD."""
    out: dict[tuple[date, str], Decimal] = {}
    for fee in activities:
        if fee.kind == "CFEE" and fee.symbol in symbols:
            day = fee.day or (fee.when.astimezone(UTC) - timedelta(microseconds=1)).date()
            out[(day, fee.symbol)] = out.get((day, fee.symbol), Decimal(0)) + fee.fee_usd
    return out


def compare_books(
    activities: Sequence[Activity], orders: Sequence[set[str]], books: Sequence[FeeBook]
) -> list[list[FeeAudit]]:
    """Per model: one ``FeeAudit`` per CFEE (day, symbol) it traded, against its share of the CFEE."""
    virtual = [_virtual(activities, ours, book.profile) for ours, book in zip(orders, books, strict=True)]
    booked = _booked(activities, {t for book in books for t in book.tickers})
    out: list[list[FeeAudit]] = [[] for _ in books]
    for (day, symbol), usd in sorted(booked.items()):
        total = sum((v.get((day, symbol), Decimal(0)) for v in virtual), Decimal(0))
        for i, (v, book) in enumerate(zip(virtual, books, strict=True)):
            own = v.get((day, symbol), Decimal(0))
            if symbol not in book.tickers or (total > 0 and own == 0):
                continue
            share = usd if len(books) == 1 or total == 0 else usd * own / total
            out[i].append(FeeAudit(day, symbol, float(own), float(share)))
    return out


class FeeAuditor:
    """Runs the audit at most once per broker UTC day; a failed read only postpones it."""

    def __init__(
        self,
        broker: Broker,
        journal: Journal,
        profile: EnvProfile,
        tickers: Sequence[str],
        others: Sequence[FeeBook] = (),
    ) -> None:
        self.broker = broker
        self.books = [FeeBook(journal, profile, tuple(tickers)), *others]
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
        """The fresh audits of every model (the first model's first), each journaled in its journal."""
        done = [
            {(e["detail"]["day"], e["detail"]["symbol"]) for e in b.journal.events(EVENT)} for b in self.books
        ]
        lasts = [max((d for d, _ in seen), default=None) for seen in done]
        last = None if None in lasts else min(d for d in lasts if d is not None)
        after = datetime.fromisoformat(last).replace(tzinfo=UTC) if last else None
        since = None if after is None else after - FILLS_LAG  # not every order of the year: a year is slow
        orders = [b.journal.broker_order_ids(since) for b in self.books]
        per_book = compare_books(self.broker.list_activities(after=after), orders, self.books)
        fresh_all: list[FeeAudit] = []
        for book, audits, seen in zip(self.books, per_book, done, strict=True):
            fresh = [a for a in audits if (a.day.isoformat(), a.symbol) not in seen and a.virtual_usd > 0]
            for audit in fresh:
                _record(book.journal, audit)
            fresh_all += fresh
        return fresh_all


def _record(journal: Journal, audit: FeeAudit) -> None:
    detail = {
        "day": audit.day.isoformat(),
        "symbol": audit.symbol,
        "virtual_usd": round(audit.virtual_usd, 6),
        "broker_usd": round(audit.broker_usd, 6),
        "diff_usd": round(audit.diff_usd, 6),
    }
    (log.warning if abs(audit.diff_usd) > WARN_USD else log.info)(EVENT, **detail)
    journal.record_event(EVENT, None, detail)
