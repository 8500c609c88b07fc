"""Broker vs journal, at start and before every cycle. Every mismatch has one rule, is logged with both
sides, and is journaled as an event; none is ignored.

Rules:
1. Journal intent still open (pending / ambiguous / submitted): look it up by client_order_id.
   - found and final → book it (status, fill, virtual account);
   - found and open → if it belongs to an older bar than ``current_bar``, cancel it (a market order
     that did not fill within a bar is not what the model decided now) and book any partial fill;
   - absent → if it was never POSTed (attempts 0) or its bar is older than ``current_bar``, it is
     ``expired``/``lost``: the broker never had it, so nothing was traded; the current bar's intents
     stay for the executor (which resubmits with the same id, so no duplicate is possible).
2. Fills journaled but not booked into the virtual account (crash in between) → book them.
3. Open broker order with OUR prefix but unknown to the journal (journal lost or replaced) → cancel
   it: we never adopt an order whose decision we cannot see. Orders with other prefixes (a human's)
   are left alone and logged.
4. Positions: a virtual holding above the broker position is clamped to the broker's (Alpaca's fee is
   taken in the coin, and a broker reset must not leave us selling what we do not own); within
   ``fee_tolerance`` this is routine (info), beyond it a warning. A broker position above the virtual
   holding is someone else's coin: we never trade it (info). A symbol that still has an open intent
   (its lookup failed, or the order is still working) is not clamped this time: the broker position
   may already hold a fill the journal has not booked, and clamping first would book the sell's coins
   away without its cash (the later fill then finds no virtual holding to sell). It is journaled as
   ``position_check_deferred`` and checked again at the next reconciliation. A position that has not
   caught up with a filled buy yet (Alpaca's position lag) is waited for, bounded, or deferred once
   (``worker/books_check.py``).
5. An intent marked ``lost`` that the broker knows after all is re-adopted (``worker/readopt.py``).

Many models on one account (a tournament): rules 1-3 and 5 run per model on its own journal; an open
order with another model's prefix is that model's business. Rule 4 compares the broker position with
the SUM of the models' virtual holdings; a shortfall (the coin fee) is shared out over the models that
bought the symbol since the previous reconciliation, in proportion to what each bought (by holdings
when none did, e.g. at start) (``ledger.clamp_shares``), each share journaled in that model's journal;
what the broker holds beyond the sum is foreign and never traded. One model is the special case of one book.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from cappuccino_daemon.broker.ports import Broker, BrokerPosition, TransientBrokerError
from cappuccino_daemon.journal.store import Journal
from cappuccino_daemon.logsetup import get_logger
from cappuccino_daemon.policy.ledger import clamp_shares, clamp_to_broker, exceeds_broker
from cappuccino_daemon.states import IntentStatus
from cappuccino_daemon.worker.account import as_tuple, load_account
from cappuccino_daemon.worker.books_check import DUST_QTY, Held, settled_positions
from cappuccino_daemon.worker.executor import Executor
from cappuccino_daemon.worker.ids import our_prefix
from cappuccino_daemon.worker.readopt import readopt_lost

log = get_logger(__name__)


@dataclass
class ReconcileReport:
    resolved: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    canceled_foreign: list[str] = field(default_factory=list)
    clamped: dict[str, tuple[float, float]] = field(default_factory=dict)
    external: dict[str, tuple[float, float]] = field(default_factory=dict)
    deferred: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Book:
    """One model's side of the shared account: its journal, executor and virtual sub-account."""

    journal: Journal
    executor: Executor
    model_id: str
    tickers: tuple[str, ...]
    capital: float

    def held(self) -> Held:
        account = load_account(self.journal, self.capital, len(self.tickers))
        return Held(self.journal, {t: float(h) for t, h in zip(self.tickers, account.holdings, strict=True)})


def reconcile(
    broker: Broker,
    journal: Journal,
    executor: Executor,
    *,
    model_id: str,
    tickers: tuple[str, ...],
    capital: float,
    current_bar: datetime | None,
    fee_tolerance: float = 0.01,
) -> ReconcileReport:
    """One model alone on the account."""
    book = Book(journal, executor, model_id, tickers, capital)
    return reconcile_books(broker, [book], current_bar, fee_tolerance)


def reconcile_books(
    broker: Broker,
    books: Sequence[Book],
    current_bar: datetime | None,
    fee_tolerance: float = 0.01,
    since: datetime | None = None,
) -> ReconcileReport:
    """``since``: the bar of the previous reconciliation; buys of that bar on are the ones whose coin
    fee a shortfall can hold (a tournament shares it by them; None: by holdings)."""
    report = ReconcileReport()
    for book in books:
        _resolve_intents(broker, book.journal, book.executor, current_bar, report)
        report.resolved.extend(readopt_lost(broker, book.journal, book.executor, current_bar))
        book.executor.book_pending_fills()
    _foreign_orders(broker, books, report)
    unsettled = {intent.symbol for book in books for intent in book.journal.open_intents()}
    lead = books[0].executor
    positions, lagging = settled_positions(broker, [b.held() for b in books], lead.clock, lead.lag_policy)
    _positions(positions, books, fee_tolerance, report, unsettled | lagging, since)
    log.info(
        "reconciled",
        resolved=len(report.resolved),
        lost=report.lost,
        canceled_unknown=report.canceled_foreign,
        clamped={k: list(v) for k, v in report.clamped.items()},
        deferred=report.deferred,
    )
    return report


def _resolve_intents(
    broker: Broker,
    journal: Journal,
    executor: Executor,
    current_bar: datetime | None,
    report: ReconcileReport,
) -> None:
    for intent in journal.open_intents():
        coid = intent.client_order_id
        stale = current_bar is None or intent.bar_time < current_bar
        try:
            snap = broker.get_order_by_client_id(coid)
        except TransientBrokerError as exc:
            log.warning("reconcile_lookup_failed", client_order_id=coid, error=str(exc))
            continue
        if snap is None:
            if intent.attempts == 0 and not stale:
                continue  # never sent, decision still current: the executor will send it
            if intent.attempts > 0 and not stale:
                continue  # the executor looks up again and resubmits with the same id
            status = IntentStatus.EXPIRED if intent.attempts == 0 else IntentStatus.LOST
            log.warning(
                "intent_without_broker_order",
                client_order_id=coid,
                journal_status=intent.status,
                attempts=intent.attempts,
                broker="absent",
                rule=f"mark {status}",
            )
            journal.update_intent(
                coid,
                status,
                event="reconcile_" + status,
                detail={"journal_status": intent.status, "attempts": intent.attempts},
            )
            report.lost.append(coid)
            continue
        if snap.is_open and stale:
            log.warning("stale_open_order", client_order_id=coid, status=snap.status, rule="cancel")
            journal.record_event("reconcile_cancel_stale", coid, {"status": snap.status})
            broker.cancel_order(snap.id)
            refreshed = broker.get_order_by_client_id(coid)
            snap = refreshed or snap
        if intent.status != IntentStatus.SUBMITTED or snap.is_final:
            log.info(
                "intent_resolved",
                client_order_id=coid,
                journal_status=intent.status,
                broker_status=snap.status,
            )
            executor.settle(intent, snap, event="reconcile_resolved")
            report.resolved.append(coid)


def _foreign_orders(broker: Broker, books: Sequence[Book], report: ReconcileReport) -> None:
    owners = {our_prefix(book.model_id): book for book in books}
    for order in broker.list_open_orders():
        coid = order.client_order_id
        book = next((b for prefix, b in owners.items() if coid.startswith(prefix)), None)
        if book is None:
            log.info("foreign_open_order_ignored", client_order_id=coid, symbol=order.symbol)
            continue
        if book.journal.get_intent(coid) is not None:
            continue
        log.warning(
            "unknown_open_order",
            client_order_id=coid,
            symbol=order.symbol,
            side=order.side,
            qty=str(order.qty),
            journal="absent",
            rule="cancel",
        )
        book.journal.record_event(
            "reconcile_cancel_unknown",
            coid,
            {"symbol": order.symbol, "side": order.side, "qty": str(order.qty)},
        )
        broker.cancel_order(order.id)
        report.canceled_foreign.append(coid)


def _positions(
    positions: dict[str, BrokerPosition],
    books: Sequence[Book],
    fee_tolerance: float,
    report: ReconcileReport,
    unsettled: set[str],
    since: datetime | None,
) -> None:
    accounts = [load_account(b.journal, b.capital, len(b.tickers)) for b in books]
    bought = [_bought_since(b.journal, since) for b in books] if len(books) > 1 else [{}]
    changed: set[int] = set()
    symbols = list(dict.fromkeys(t for b in books for t in b.tickers))  # first seen first
    for symbol in symbols:
        holders = [(i, b.tickers.index(symbol)) for i, b in enumerate(books) if symbol in b.tickers]
        held = [float(accounts[i].holdings[j]) for i, j in holders]
        virtual = float(sum(held))
        pos = positions.get(symbol)
        broker_qty = float(pos.qty) if pos is not None else 0.0
        if exceeds_broker(virtual, broker_qty) and symbol in unsettled:
            _defer([books[i].journal for i, _ in holders], symbol, virtual, broker_qty)
            report.deferred.append(symbol)
        elif exceeds_broker(virtual, broker_qty):  # beyond float32/decimal rounding
            drift = (virtual - broker_qty) / virtual
            level = log.info if drift <= fee_tolerance else log.warning
            level(
                "position_drift",
                symbol=symbol,
                virtual=virtual,
                broker=broker_qty,
                drift=round(drift, 6),
                rule="clamp virtual to broker" if len(holders) == 1 else "share the shortfall by fresh buys",
            )
            fresh = [bought[i].get(symbol, 0.0) for i, _ in holders]
            shares = clamp_shares(held, broker_qty, fresh)
            for (i, j), before, after in zip(holders, held, shares, strict=True):
                if before > after and drift > fee_tolerance:
                    books[i].journal.record_event(
                        "position_drift",
                        None,
                        {"symbol": symbol, "virtual": before, "broker": after, "account_total": virtual},
                    )
                if before > after:
                    accounts[i] = clamp_to_broker(accounts[i], j, after)
                    changed.add(i)
            report.clamped[symbol] = (virtual, broker_qty)
        elif broker_qty > virtual * (1 + fee_tolerance) + float(Decimal("1e-9")):
            report.external[symbol] = (virtual, broker_qty)
            # Fee dust (a few 1e-8 coins) would repeat this line every bar; only real excess is news.
            (log.info if broker_qty - virtual >= DUST_QTY else log.debug)(
                "broker_holds_more",
                symbol=symbol,
                virtual=virtual,
                broker=broker_qty,
                rule="not ours: never traded",
            )
    for i in sorted(changed):
        cash, holdings, cooldown = as_tuple(accounts[i])
        books[i].journal.save_account(cash, holdings, cooldown, reason="reconcile_clamp")


def _bought_since(journal: Journal, since: datetime | None) -> dict[str, float]:
    """Coins this model bought from bar ``since`` on, per symbol (nothing when ``since`` is unknown)."""
    out: dict[str, float] = {}
    if since is None:
        return out
    for intent in journal.intents_since(since):
        if intent.side == "buy" and intent.filled_qty > 0:
            out[intent.symbol] = out.get(intent.symbol, 0.0) + float(intent.filled_qty)
    return out


def _defer(journals: Sequence[Journal], symbol: str, virtual: float, broker_qty: float) -> None:
    log.warning(
        "position_check_deferred",
        symbol=symbol,
        virtual=virtual,
        broker=broker_qty,
        rule="an order of this symbol is not settled yet; clamp only after it is booked",
    )
    detail = {"symbol": symbol, "virtual": virtual, "broker": broker_qty}
    for journal in journals:
        journal.record_event("position_check_deferred", None, detail)
