"""Broker positions that have not caught up with their filled orders yet (Alpaca's position lag).

Alpaca shows a fill on the order seconds before ``/v2/positions`` does. Clamping the virtual holding
to such a position would book the just-bought coins away (and the next sell would find nothing to
sell). So before the clamp rule runs, a symbol whose broker position is short of the virtual holding
by more than the fee explains (over ``fee_tolerance`` of the holding, or at least half of its latest
filled buy) is treated as lagging:

1. wait (bounded: ``wait_s`` in steps of ``step_s``) and read the positions again; a position that
   catches up is journaled as ``position_lag`` with ``decision: waited``;
2. still short, and the latest filled order of that symbol is a buy not deferred before: the clamp is
   deferred to the next reconciliation (``position_lag`` with ``decision: deferred``). Each buy
   defers at most once, so a real shortfall is clamped one reconciliation later, never ignored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cappuccino_daemon.broker.ports import Broker, BrokerPosition
from cappuccino_daemon.clock import Clock
from cappuccino_daemon.journal.store import IntentRecord, Journal
from cappuccino_daemon.logsetup import get_logger
from cappuccino_daemon.worker.account import load_account

log = get_logger(__name__)

LAG_EVENT = "position_lag"


@dataclass(frozen=True)
class LagPolicy:
    wait_s: float = 10.0
    step_s: float = 1.0
    fee_tolerance: float = 0.01


def latest_buy(journal: Journal, symbol: str) -> IntentRecord | None:
    """The symbol's latest filled order, if it is a buy (only a buy can make a position lag short)."""
    filled = [i for i in journal.intents() if i.symbol == symbol and i.filled_qty > 0]
    return filled[-1] if filled and filled[-1].side == "buy" else None


def _short(
    journal: Journal, holdings: dict[str, float], positions: dict[str, BrokerPosition], tolerance: float
) -> dict[str, float]:
    out: dict[str, float] = {}
    for symbol, virtual in holdings.items():
        pos = positions.get(symbol)
        shortfall = virtual - (float(pos.qty) if pos is not None else 0.0)
        if shortfall <= max(1e-9, virtual * 1e-6):
            continue
        buy = latest_buy(journal, symbol)
        if shortfall > virtual * tolerance or (buy is not None and shortfall >= 0.5 * float(buy.filled_qty)):
            out[symbol] = shortfall
    return out


def settled_positions(
    broker: Broker,
    journal: Journal,
    clock: Clock,
    tickers: Sequence[str],
    capital: float,
    policy: LagPolicy,
) -> tuple[dict[str, BrokerPosition], set[str]]:
    """The broker positions after a bounded wait for lagging ones, and the symbols to defer."""
    account = load_account(journal, capital, len(tickers))
    holdings = {t: float(h) for t, h in zip(tickers, account.holdings, strict=True)}
    positions = broker.get_positions()
    short = _short(journal, holdings, positions, policy.fee_tolerance)
    waited = 0.0
    first = set(short)
    while short and waited < policy.wait_s:
        clock.sleep(policy.step_s)
        waited += policy.step_s
        positions = broker.get_positions()
        short = _short(journal, holdings, positions, policy.fee_tolerance)
    for symbol in sorted(first - set(short)):
        log.info(LAG_EVENT, symbol=symbol, decision="waited", waited_s=waited)
        journal.record_event(LAG_EVENT, None, {"symbol": symbol, "decision": "waited", "waited_s": waited})
    deferred: set[str] = set()
    deferred_before = {e["client_order_id"] for e in journal.events(LAG_EVENT)}
    for symbol, shortfall in sorted(short.items()):
        buy = latest_buy(journal, symbol)
        if buy is None or buy.client_order_id in deferred_before:
            continue  # nothing recent to wait for, or already given its one deferral: the clamp rule runs
        deferred.add(symbol)
        detail = {"symbol": symbol, "decision": "deferred", "shortfall": shortfall, "waited_s": waited}
        log.warning(LAG_EVENT, client_order_id=buy.client_order_id, **detail)
        journal.record_event(LAG_EVENT, buy.client_order_id, detail)
    return positions, deferred
