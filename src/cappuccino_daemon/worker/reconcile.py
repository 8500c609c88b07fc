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
   ``position_check_deferred`` and checked again at the next reconciliation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from cappuccino_daemon.broker.ports import Broker, TransientBrokerError
from cappuccino_daemon.journal.store import Journal
from cappuccino_daemon.logsetup import get_logger
from cappuccino_daemon.policy.ledger import clamp_to_broker, exceeds_broker
from cappuccino_daemon.worker.account import as_tuple, load_account
from cappuccino_daemon.worker.executor import Executor
from cappuccino_daemon.worker.ids import our_prefix

log = get_logger(__name__)

DUST_QTY = 1e-6  # coins; far below any Alpaca crypto min_order_size


@dataclass
class ReconcileReport:
    resolved: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    canceled_foreign: list[str] = field(default_factory=list)
    clamped: dict[str, tuple[float, float]] = field(default_factory=dict)
    external: dict[str, tuple[float, float]] = field(default_factory=dict)
    deferred: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.lost or self.canceled_foreign or self.clamped)


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
    report = ReconcileReport()
    _resolve_intents(broker, journal, executor, current_bar, report)
    executor.book_pending_fills()
    _foreign_orders(broker, journal, model_id, report)
    unsettled = {intent.symbol for intent in journal.open_intents()}
    _positions(broker, journal, tickers, capital, fee_tolerance, report, unsettled)
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
            status = "expired" if intent.attempts == 0 else "lost"
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
        if intent.status != "submitted" or snap.is_final:
            log.info(
                "intent_resolved",
                client_order_id=coid,
                journal_status=intent.status,
                broker_status=snap.status,
            )
            executor.settle(intent, snap, event="reconcile_resolved")
            report.resolved.append(coid)


def _foreign_orders(broker: Broker, journal: Journal, model_id: str, report: ReconcileReport) -> None:
    prefix = our_prefix(model_id)
    for order in broker.list_open_orders():
        if journal.get_intent(order.client_order_id) is not None:
            continue
        if order.client_order_id.startswith(prefix):
            log.warning(
                "unknown_open_order",
                client_order_id=order.client_order_id,
                symbol=order.symbol,
                side=order.side,
                qty=str(order.qty),
                journal="absent",
                rule="cancel",
            )
            journal.record_event(
                "reconcile_cancel_unknown",
                order.client_order_id,
                {"symbol": order.symbol, "side": order.side, "qty": str(order.qty)},
            )
            broker.cancel_order(order.id)
            report.canceled_foreign.append(order.client_order_id)
        else:
            log.info("foreign_open_order_ignored", client_order_id=order.client_order_id, symbol=order.symbol)


def _positions(
    broker: Broker,
    journal: Journal,
    tickers: tuple[str, ...],
    capital: float,
    fee_tolerance: float,
    report: ReconcileReport,
    unsettled: set[str],
) -> None:
    positions = broker.get_positions()
    account = load_account(journal, capital, len(tickers))
    changed = False
    for index, symbol in enumerate(tickers):
        virtual = float(account.holdings[index])
        pos = positions.get(symbol)
        broker_qty = float(pos.qty) if pos is not None else 0.0
        if exceeds_broker(virtual, broker_qty) and symbol in unsettled:
            log.warning(
                "position_check_deferred",
                symbol=symbol,
                virtual=virtual,
                broker=broker_qty,
                rule="an order of this symbol is not settled yet; clamp only after it is booked",
            )
            journal.record_event(
                "position_check_deferred", None, {"symbol": symbol, "virtual": virtual, "broker": broker_qty}
            )
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
                rule="clamp virtual to broker",
            )
            if drift > fee_tolerance:
                journal.record_event(
                    "position_drift", None, {"symbol": symbol, "virtual": virtual, "broker": broker_qty}
                )
            account = clamp_to_broker(account, index, broker_qty)
            changed = True
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
    if changed:
        cash, holdings, cooldown = as_tuple(account)
        journal.save_account(cash, holdings, cooldown, reason="reconcile_clamp")
