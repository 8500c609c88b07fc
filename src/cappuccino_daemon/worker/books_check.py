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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cappuccino_daemon.broker.ports import Broker, BrokerPosition
from cappuccino_daemon.clock import Clock
from cappuccino_daemon.journal.store import IntentRecord, Journal
from cappuccino_daemon.logsetup import get_logger

log = get_logger(__name__)

LAG_EVENT = "position_lag"
# Coins; far below any Alpaca crypto min_order_size, so a shortfall this small is float32 or fee dust,
# never a buy the position has not shown yet (several models' dust adds up past 1e-9: no waiting on it).
DUST_QTY = 1e-6


@dataclass(frozen=True)
class LagPolicy:
    wait_s: float = 10.0
    step_s: float = 1.0
    fee_tolerance: float = 0.01


def latest_buy(journal: Journal, symbol: str) -> IntentRecord | None:
    """The symbol's latest filled order, if it is a buy (only a buy can make a position lag short)."""
    latest = journal.latest_filled(symbol)
    return latest if latest is not None and latest.side == "buy" else None


def _newest_buy(held: Sequence[Held], symbol: str) -> tuple[Journal, IntentRecord] | None:
    """Across the models sharing the account: the newest of their latest buys of ``symbol``."""
    found = [(h.journal, b) for h in held if (b := latest_buy(h.journal, symbol)) is not None]
    return max(found, key=lambda jb: jb[1].bar_time) if found else None


@dataclass(frozen=True)
class Held:
    """One model's virtual holdings and the journal they come from (a tournament has several)."""

    journal: Journal
    holdings: Mapping[str, float]


def summed(held: Sequence[Held]) -> dict[str, float]:
    """The account's virtual holding per symbol: the sum over the models that trade it."""
    out: dict[str, float] = {}
    for h in held:
        for symbol, qty in h.holdings.items():
            out[symbol] = out.get(symbol, 0.0) + qty
    return out


def _short(held: Sequence[Held], positions: dict[str, BrokerPosition], tolerance: float) -> dict[str, float]:
    out: dict[str, float] = {}
    for symbol, virtual in summed(held).items():
        pos = positions.get(symbol)
        shortfall = virtual - (float(pos.qty) if pos is not None else 0.0)
        if shortfall <= max(DUST_QTY, virtual * 1e-6):
            continue
        newest = _newest_buy(held, symbol)
        half_buy = newest is not None and shortfall >= 0.5 * float(newest[1].filled_qty)
        if shortfall > virtual * tolerance or half_buy:
            out[symbol] = shortfall
    return out


def settled_positions(
    broker: Broker, held: Sequence[Held], clock: Clock, policy: LagPolicy
) -> tuple[dict[str, BrokerPosition], set[str]]:
    """The broker positions after a bounded wait for lagging ones, and the symbols to defer."""
    positions = broker.get_positions()
    short = _short(held, positions, policy.fee_tolerance)
    waited = 0.0
    first = set(short)
    while short and waited < policy.wait_s:
        clock.sleep(policy.step_s)
        waited += policy.step_s
        positions = broker.get_positions()
        short = _short(held, positions, policy.fee_tolerance)
    for symbol in sorted(first - set(short)):
        log.info(LAG_EVENT, symbol=symbol, decision="waited", waited_s=waited)
        newest = _newest_buy(held, symbol)
        journal = newest[0] if newest else held[0].journal
        journal.record_event(LAG_EVENT, None, {"symbol": symbol, "decision": "waited", "waited_s": waited})
    deferred: set[str] = set()
    for symbol, shortfall in sorted(short.items()):
        newest = _newest_buy(held, symbol)
        if newest is None:
            continue  # nothing recent to wait for: the clamp rule runs
        journal, buy = newest
        if buy.client_order_id in {e["client_order_id"] for e in journal.events(LAG_EVENT)}:
            continue  # already given its one deferral: the clamp rule runs
        deferred.add(symbol)
        detail = {"symbol": symbol, "decision": "deferred", "shortfall": shortfall, "waited_s": waited}
        log.warning(LAG_EVENT, client_order_id=buy.client_order_id, **detail)
        journal.record_event(LAG_EVENT, buy.client_order_id, detail)
    return positions, deferred
