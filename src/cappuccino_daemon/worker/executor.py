"""Planned orders → broker orders, exactly once.

Rules (each one is a lesson from freqtrade and nautilus_trader):
- The intent row (with its deterministic client_order_id) is committed BEFORE the POST, and the
  attempt counter right before it, so after any crash the journal knows an order *may* exist.
- A submit is never blindly retried. A timeout, 5xx or lost response is *ambiguous*: we look the order
  up by client_order_id; only when the broker has never heard of it do we POST again, with the SAME
  id, so the broker itself refuses a duplicate (422 → we look it up and adopt it).
- Sells first; buys only once every sell is final (bounded wait), sized against the virtual cash the
  sells actually produced.
- A stop request (SIGTERM) is honoured at the next safe point: no new order is sent and no fill is
  waited for any more; the cycle stays ``executing`` so the restarted worker finishes it (same bar) or
  reconciles it (later bar). A submit and its journal entry are never separated.
- Quantities are floored onto the asset's ``min_trade_increment``; below ``min_order_size`` (or
  Alpaca's $10 minimum notional for buys) the order is dropped and the drop journaled. Sells are
  sized from the broker's actual position (Alpaca takes its fee in the received coin). Long only.
  The numbers (sizing, fees, booking a fill) are :mod:`cappuccino_daemon.policy.ledger`'s; this
  module decides when to ask the broker and what to journal.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from cappuccino_daemon.broker.budget import backoff_s
from cappuccino_daemon.broker.ports import (
    AmbiguousSubmitError,
    Asset,
    Broker,
    BrokerRejectedError,
    DuplicateClientOrderIdError,
    OrderSnapshot,
    OrderStatus,
    Side,
    TransientBrokerError,
)
from cappuccino_daemon.clock import Clock
from cappuccino_daemon.journal.store import IntentRecord, Journal
from cappuccino_daemon.logsetup import get_logger
from cappuccino_daemon.model.spec import EnvProfile
from cappuccino_daemon.policy.ledger import book_fill, reserve_buy, size_live_buy, size_live_sell
from cappuccino_daemon.states import IntentStatus
from cappuccino_daemon.worker.account import as_tuple, load_account
from cappuccino_daemon.worker.asset_rules import AssetRules
from cappuccino_daemon.worker.books_check import LagPolicy
from cappuccino_daemon.worker.crashpoints import crash_point
from cappuccino_daemon.worker.ids import client_order_id

log = get_logger(__name__)


@dataclass(frozen=True)
class OrderLine:
    """One planned order in the state's ticker order (``index``), quantity in coins."""

    index: int
    side: Side
    qty: float
    kind: str  # sell | forced_sell | buy


_INTENT_STATUS: dict[OrderStatus, IntentStatus] = {
    OrderStatus.FILLED: IntentStatus.FILLED,
    OrderStatus.REJECTED: IntentStatus.REJECTED,
    OrderStatus.EXPIRED: IntentStatus.EXPIRED,
    OrderStatus.CANCELED: IntentStatus.CANCELED,
}


def intent_status(snap: OrderSnapshot) -> IntentStatus:
    """The journal's word for a broker order: final statuses map one to one, the rest is in flight."""
    return _INTENT_STATUS.get(snap.status, IntentStatus.SUBMITTED)


@dataclass
class ExecutionReport:
    submitted: int = 0
    filled: int = 0
    dropped: int = 0
    unresolved: int = 0
    stopped: bool = False  # a stop request cut the cycle short at a safe point
    last_submit_mono: float | None = None  # our monotonic clock when the last order was accepted
    last_submit_at: datetime | None = None  # the broker's ``submitted_at`` of that order


class Executor:
    def __init__(
        self,
        broker: Broker,
        journal: Journal,
        *,
        model_id: str,
        tickers: Sequence[str],
        profile: EnvProfile,
        clock: Clock,
        fill_timeout_s: float = 30.0,
        poll_s: float = 0.25,
        max_submit_attempts: int = 3,
        stop: threading.Event | None = None,
    ) -> None:
        self.broker = broker
        self.journal = journal
        self.model_id = model_id
        self.tickers = tuple(tickers)
        self.profile = profile
        self.clock = clock
        self.fill_timeout_s = fill_timeout_s
        self.poll_s = poll_s
        self.max_submit_attempts = max_submit_attempts
        self.stop = stop or threading.Event()
        self.rules = AssetRules(broker, self.tickers, clock)  # reloaded daily and after a rule 422
        self.lag_policy = LagPolicy()  # how reconciliation waits for positions that lag their fills

    # -- broker facts -----------------------------------------------------------------------------
    def assets(self) -> dict[str, Asset]:
        return self.rules.all()

    def _asset(self, symbol: str) -> Asset:
        return self.rules.get(symbol)

    # -- settle one broker snapshot into the journal ----------------------------------------------
    def settle(self, intent: IntentRecord, snap: OrderSnapshot, event: str | None = None) -> IntentRecord:
        status = intent_status(snap)
        self.journal.update_intent(
            intent.client_order_id,
            status,
            broker_order_id=snap.id,
            filled_qty=snap.filled_qty,
            filled_avg_price=snap.filled_avg_price,
            event=event,
            detail={
                "status": snap.status.value,
                "broker_order_id": snap.id,
                "filled_qty": str(snap.filled_qty),
            },
        )
        if status != IntentStatus.SUBMITTED and snap.filled_qty > 0 and snap.filled_avg_price is not None:
            self._book(intent, snap.filled_qty, snap.filled_avg_price)
        updated = self.journal.get_intent(intent.client_order_id)
        assert updated is not None
        return updated

    def _book(self, intent: IntentRecord, qty: Decimal, price: float) -> None:
        index = self.tickers.index(intent.symbol)
        account = load_account(self.journal, self.profile.initial_capital, len(self.tickers))
        after = book_fill(account, index, intent.side, float(qty), float(price), self.profile)
        if self.journal.apply_fill(intent.client_order_id, qty, price, as_tuple(after)):
            log.info(
                "fill_booked",
                client_order_id=intent.client_order_id,
                side=intent.side,
                symbol=intent.symbol,
                qty=str(qty),
                price=price,
                virtual_cash=round(after.cash, 6),
            )
            if after.cash < 0:
                # The fill came in worse than the sizing buffer allowed. The books stay true (the model
                # sees a small negative cash, as the broker really spent it); say so loudly.
                log.warning("virtual_cash_overdrawn", client_order_id=intent.client_order_id, cash=after.cash)

    def book_pending_fills(self) -> None:
        """Fills that were journaled but not booked (crash between the two): book them now."""
        for intent in self.journal.unapplied_final_intents():
            if intent.filled_avg_price is not None:
                self._book(intent, intent.filled_qty, intent.filled_avg_price)

    # -- submit, exactly once ---------------------------------------------------------------------
    def lookup(self, coid: str) -> OrderSnapshot | None:
        return self.broker.get_order_by_client_id(coid)

    def submit(self, intent: IntentRecord, report: ExecutionReport | None = None) -> IntentRecord:
        """Send (or resolve) one intent; never produces a second order for the same id."""
        coid = intent.client_order_id
        for _ in range(self.max_submit_attempts):
            if intent.status not in (IntentStatus.PENDING, IntentStatus.AMBIGUOUS):
                return intent
            if intent.attempts > 0 or intent.status == IntentStatus.AMBIGUOUS:
                # A POST may have reached the broker before: ask before sending anything.
                known = self._look_up_before_resend(intent)
                if known is not None:
                    return known
            self.journal.mark_attempt(coid)
            crash_point("before_submit")
            intent, done = self._post(intent, report)
            if done:
                return intent
        log.warning("submit_unresolved", client_order_id=coid, status=intent.status)
        return intent

    def _look_up_before_resend(self, intent: IntentRecord) -> IntentRecord | None:
        """The intent as the broker knows it, or None when the broker never had it (safe to send)."""
        coid = intent.client_order_id
        try:
            snap = self.lookup(coid)
        except TransientBrokerError as exc:
            log.warning("order_lookup_failed", client_order_id=coid, error=str(exc))
            return intent  # unknown either way: leave it for the next look-up, send nothing
        if snap is not None:
            log.info("order_resolved_by_client_id", client_order_id=coid, status=snap.status)
            return self.settle(intent, snap, event="resolved_by_client_id")
        self.journal.record_event("lookup_absent", coid, {"attempts": intent.attempts})
        return None

    def _post(self, intent: IntentRecord, report: ExecutionReport | None) -> tuple[IntentRecord, bool]:
        """One POST and its journal entry; returns the intent and whether submitting is over."""
        coid = intent.client_order_id
        try:
            snap = self.broker.submit_market_order(intent.symbol, _side(intent.side), intent.qty, coid)
        except DuplicateClientOrderIdError as exc:
            log.warning("duplicate_client_order_id", client_order_id=coid, error=str(exc))
            self.journal.record_event("duplicate_client_order_id", coid, {"error": str(exc)})
            return self._refresh(coid), False  # the next round looks it up (attempts > 0)
        except (AmbiguousSubmitError, TransientBrokerError) as exc:
            log.warning("submit_ambiguous", client_order_id=coid, error=str(exc))
            self.journal.update_intent(
                coid, IntentStatus.AMBIGUOUS, event="submit_ambiguous", detail={"error": str(exc)}
            )
            intent = self._refresh(coid)
            self.clock.sleep(backoff_s(exc, self.poll_s))  # a 429 waits for its reset
            return intent, False
        except BrokerRejectedError as exc:
            log.error("submit_rejected", client_order_id=coid, status_code=exc.status_code, error=str(exc))
            if self.rules.note_rejection(exc):
                self.journal.record_event("asset_rules_reload", coid, {"error": str(exc)})
            self.journal.update_intent(
                coid,
                IntentStatus.REJECTED,
                event="submit_rejected",
                detail={"error": str(exc), "status": exc.status_code},
            )
            return self._refresh(coid), True
        return self._accepted(intent, snap, report), True

    def _accepted(
        self, intent: IntentRecord, snap: OrderSnapshot, report: ExecutionReport | None
    ) -> IntentRecord:
        """Journal an order the broker took (the crash points bracket the gap a crash may fall into)."""
        crash_point("after_submit")
        if report is not None:
            report.submitted += 1
            report.last_submit_mono = self.clock.monotonic()
            report.last_submit_at = snap.submitted_at
        log.info(
            "order_submitted",
            client_order_id=intent.client_order_id,
            side=intent.side,
            symbol=intent.symbol,
            qty=str(intent.qty),
            status=snap.status,
        )
        intent = self.settle(intent, snap, event="submitted")
        crash_point("after_journal")
        return intent

    def _refresh(self, coid: str) -> IntentRecord:
        intent = self.journal.get_intent(coid)
        assert intent is not None
        return intent

    def await_final(self, coids: Sequence[str], timeout_s: float | None = None) -> list[IntentRecord]:
        """Poll until every intent is final (or the bounded wait ends); returns those still open."""
        return await_many([(self, coids)], timeout_s=timeout_s)[0]

    def poll_once(self, coids: Sequence[str], snaps: dict[str, OrderSnapshot] | None) -> list[IntentRecord]:
        """One look at each intent: settled from ``snaps`` (one list read for many orders) when it is
        there, else looked up by its client id; returns those still open."""
        still_open: list[IntentRecord] = []
        for coid in coids:
            intent = self._refresh(coid)
            if intent.status == IntentStatus.AMBIGUOUS:
                intent = self.submit(intent)
            if intent.status != IntentStatus.SUBMITTED:
                if intent.is_open:
                    still_open.append(intent)
                continue
            snap = None if snaps is None else snaps.get(coid)
            if snap is None:
                try:
                    snap = self.lookup(coid)
                except TransientBrokerError as exc:
                    log.warning("order_poll_failed", client_order_id=coid, error=str(exc))
                    still_open.append(intent)
                    continue
            if snap is None:
                still_open.append(intent)
                continue
            intent = self.settle(intent, snap)
            if intent.is_open:
                still_open.append(intent)
        return still_open

    # -- sizing -----------------------------------------------------------------------------------
    def _drop(self, bar_time: datetime, symbol: str, side: str, reason: str, **detail: Any) -> None:
        log.info("order_dropped", bar=bar_time.isoformat(), symbol=symbol, side=side, reason=reason, **detail)
        self.journal.record_event(
            "order_dropped",
            None,
            {"bar": bar_time.isoformat(), "symbol": symbol, "side": side, "reason": reason, **detail},
        )

    def _intent_for(
        self, bar_time: datetime, line: OrderLine, price: float, sized: Decimal | None
    ) -> IntentRecord | None:
        symbol = self.tickers[line.index]
        coid = client_order_id(self.model_id, bar_time, symbol, line.side)
        if sized is None or sized <= 0:
            return None
        return self.journal.add_intent(coid, bar_time, symbol, line.side, sized, price)

    def size_sell(self, bar_time: datetime, line: OrderLine, position_qty: Decimal) -> Decimal | None:
        symbol = self.tickers[line.index]
        asset = self._asset(symbol)
        if not asset.tradable:
            self._drop(bar_time, symbol, "sell", "asset_not_tradable")
            return None
        sizing = size_live_sell(line.qty, position_qty, asset.min_trade_increment, asset.min_order_size)
        if sizing.reason is not None:
            self._drop(bar_time, symbol, "sell", sizing.reason, **sizing.detail)
            return None
        return sizing.qty

    def size_buy(
        self, bar_time: datetime, line: OrderLine, price: float, cash: float, broker_cash: float
    ) -> Decimal | None:
        symbol = self.tickers[line.index]
        asset = self._asset(symbol)
        if not asset.tradable:
            self._drop(bar_time, symbol, "buy", "asset_not_tradable")
            return None
        sizing = size_live_buy(
            line.qty, price, cash, broker_cash, asset.min_trade_increment, asset.min_order_size, self.profile
        )
        if sizing.reason is not None:
            self._drop(bar_time, symbol, "buy", sizing.reason, **sizing.detail)
            return None
        return sizing.qty

    # -- one cycle's orders (the phases and their order: worker/orderflow.py) ------------------------
    def stop_here(self, intent: IntentRecord | None, report: ExecutionReport) -> bool:
        """A stop request ends a phase at a safe point: nothing of this order has left the process."""
        if self.stop.is_set() and (intent is None or intent.attempts == 0):
            report.stopped = True
            return True
        return False

    def plan_sells(
        self,
        bar_time: datetime,
        sells: Sequence[OrderLine],
        prices: Sequence[float],
        report: ExecutionReport,
        sellable: dict[str, Decimal],
    ) -> list[IntentRecord]:
        """Size each sell from the coins the broker has that no sell of this bar has claimed yet
        (``sellable``, shared by every model and drawn down here) and journal it; nothing is sent."""
        intents: list[IntentRecord] = []
        for line in _merge(sells):
            symbol = self.tickers[line.index]
            intent = self.journal.get_intent(client_order_id(self.model_id, bar_time, symbol, "sell"))
            if self.stop_here(intent, report):
                break
            if intent is None:
                sized = self.size_sell(bar_time, line, sellable.get(symbol, Decimal(0)))
                intent = self._intent_for(bar_time, line, prices[line.index], sized)
                if intent is None:
                    report.dropped += 1
                    continue
            if intent.attempts == 0:  # a sent order is already held back in the broker's qty_available
                sellable[symbol] = max(Decimal(0), sellable.get(symbol, Decimal(0)) - intent.qty)
            intents.append(intent)
        return intents

    def plan_buys(
        self,
        bar_time: datetime,
        buys: Sequence[OrderLine],
        prices: Sequence[float],
        report: ExecutionReport,
        pool: BuyingPower,
    ) -> list[IntentRecord]:
        """Size each buy against the virtual cash the sells left and the account's cash no buy of this
        bar has claimed yet (``pool``, shared by every model and drawn down here) and journal it."""
        intents: list[IntentRecord] = []
        cash = load_account(self.journal, self.profile.initial_capital, len(self.tickers)).cash
        for line in sorted(buys, key=lambda line: line.index):
            symbol = self.tickers[line.index]
            intent = self.journal.get_intent(client_order_id(self.model_id, bar_time, symbol, "buy"))
            price = float(prices[line.index])
            if self.stop_here(intent, report):
                break
            if intent is None:
                sized = self.size_buy(bar_time, line, price, cash, pool.cash)
                intent = self._intent_for(bar_time, line, price, sized)
                if intent is None:
                    report.dropped += 1
                    continue
            if not intent.applied:
                # Reserve what this buy will cost so the next one is capped by what is left.
                cash, pool.cash = reserve_buy(cash, pool.cash, float(intent.qty), price, self.profile)
            intents.append(intent)
        return intents

    def send(self, intents: Sequence[IntentRecord], report: ExecutionReport) -> list[str]:
        """Send (or resolve) each planned intent in turn; returns the ids to wait for. A stop request
        ends it before the next order that never left."""
        sent: list[str] = []
        for intent in intents:
            if self.stop_here(self._refresh(intent.client_order_id), report):
                break
            self.submit(intent, report)
            sent.append(intent.client_order_id)
        return sent


@dataclass
class BuyingPower:
    """The account's cash read once before a bar's buys, drawn down by each buy as it is sized."""

    cash: float


def await_many(
    groups: Sequence[tuple[Executor, Sequence[str]]],
    timeout_s: float | None = None,
    orders_after: datetime | None = None,
) -> list[list[IntentRecord]]:
    """Poll every group's orders until all are final or the bounded wait ends; per group, those open.

    With ``orders_after`` (no order waited for was sent before it) and more than one order to look
    at, each poll is one list read of the orders since then instead of one read per order: a
    tournament's hundred fills cost one request, not a hundred. An order the list lacks (a page cut
    short) is looked up by its client id, as is every order when the list read fails.
    """
    first = groups[0][0]
    clock = first.clock
    deadline = clock.monotonic() + (first.fill_timeout_s if timeout_s is None else timeout_s)
    pending: list[Sequence[str]] = [coids for _, coids in groups]
    while True:
        snaps = _listed(first, orders_after, sum(len(c) for c in pending))
        still = [ex.poll_once(coids, snaps) for (ex, _), coids in zip(groups, pending, strict=True)]
        pending = [[i.client_order_id for i in group] for group in still]
        if not any(still) or clock.monotonic() >= deadline or first.stop.is_set():
            return still
        clock.sleep(first.poll_s)


def _listed(executor: Executor, after: datetime | None, waiting: int) -> dict[str, OrderSnapshot] | None:
    if after is None or waiting < 2:
        return None
    try:
        return {snap.client_order_id: snap for snap in executor.broker.list_orders_since(after)}
    except TransientBrokerError as exc:
        log.warning("order_list_failed", error=str(exc), fallback="one look-up per order")
        return None


def _side(text: str) -> Side:
    return "buy" if text == "buy" else "sell"


def _merge(lines: Sequence[OrderLine]) -> list[OrderLine]:
    """One order per symbol and side (an explicit and a forced sell never coincide, but be safe)."""
    merged: dict[tuple[int, str], OrderLine] = {}
    for line in lines:
        key = (line.index, line.side)
        if key in merged:
            prev = merged[key]
            merged[key] = OrderLine(line.index, line.side, prev.qty + line.qty, prev.kind)
        else:
            merged[key] = line
    return sorted(merged.values(), key=lambda line: line.index)
