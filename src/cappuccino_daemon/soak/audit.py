"""The soak's verdict: the broker's orders and positions against every model's journal.

Pure over its inputs (broker rows fetched by the runner, journals read read-only), so the rules are
unit-tested on books built by hand. The rules are the ones a trader cares about after a bad night:

- **duplicate**: two broker orders for one model, bar, symbol and side, or one client id twice;
- **lost**: an order the journal says reached the broker (submitted, filled, canceled, rejected) that
  the broker does not know, or one the journal gave up as ``lost``/``expired`` that the broker has;
- **unbooked**: a broker fill whose quantity is not booked in the journal (fills table);
- **unjournaled**: a broker order with our ``cp-`` prefix that no journal wrote an intent for;
- **book drift**: a symbol whose broker position differs from the sum of the models' virtual holdings
  by more than the clamp rule allows (fees charged in coin on the buys of the newest traded bar);
- **unexplained bar**: a bar between the first and the last journaled one with no outcome, one still
  ``executing``, or one skipped/interrupted without a reason.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from cappuccino_daemon.states import DECIDED_CYCLE_STATUSES, CycleStatus, IntentStatus

# The journal's statuses that mean "the broker accepted this order at some point".
REACHED_BROKER = frozenset(
    {IntentStatus.SUBMITTED, IntentStatus.FILLED, IntentStatus.CANCELED, IntentStatus.REJECTED}
)
# Statuses by which the journal says "the broker never had it".
NEVER_AT_BROKER = frozenset({IntentStatus.LOST, IntentStatus.EXPIRED, IntentStatus.PENDING})
FEE_IN_COIN = Decimal("0.0026")  # Alpaca's 0.25 % taker fee, with a little room for rounding
DUST = Decimal("1e-8")


@dataclass(frozen=True)
class BrokerOrder:
    client_order_id: str
    symbol: str  # base, e.g. "BTC"
    side: str
    status: str
    filled_qty: Decimal

    @classmethod
    def from_json(cls, row: Mapping[str, Any]) -> BrokerOrder:
        return cls(
            client_order_id=str(row.get("client_order_id") or ""),
            symbol=str(row.get("symbol", "")).split("/")[0].removesuffix("USD") or "",
            side=str(row.get("side", "")),
            status=str(row.get("status", "")),
            filled_qty=Decimal(str(row.get("filled_qty") or "0")),
        )


@dataclass(frozen=True)
class JournalBooks:
    """What one model's journal says, read once."""

    path: Path
    intents: dict[str, dict[str, Any]]
    booked: dict[str, Decimal]  # client id -> booked fill qty
    holdings: dict[str, Decimal]  # symbol -> newest virtual holding
    last_buys: dict[str, Decimal]  # symbol -> buy qty filled on the newest bar that filled anything
    cycles: dict[datetime, tuple[str, str]]  # bar open -> (status, message)


@dataclass
class SoakFindings:
    orders: int = 0
    fills: int = 0
    bars_decided: int = 0
    bars_skipped: int = 0
    duplicates: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    unbooked: list[str] = field(default_factory=list)
    unjournaled: list[str] = field(default_factory=list)
    book_drift: list[str] = field(default_factory=list)
    unexplained_bars: list[str] = field(default_factory=list)

    @property
    def problems(self) -> int:
        return sum(
            len(x)
            for x in (
                self.duplicates,
                self.lost,
                self.unbooked,
                self.unjournaled,
                self.book_drift,
                self.unexplained_bars,
            )
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "orders": self.orders,
            "fills": self.fills,
            "bars_decided": self.bars_decided,
            "bars_skipped": self.bars_skipped,
            "duplicates": self.duplicates,
            "lost": self.lost,
            "unbooked": self.unbooked,
            "unjournaled": self.unjournaled,
            "book_drift": self.book_drift,
            "unexplained_bars": self.unexplained_bars,
            "problems": self.problems,
        }


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def read_books(path: Path) -> JournalBooks:
    """One journal, read-only (the worker must be stopped or between cycles)."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    try:
        intents = {r["client_order_id"]: dict(r) for r in db.execute("SELECT * FROM intents")}
        fills = list(db.execute("SELECT * FROM fills"))
        booked = {r["client_order_id"]: Decimal(r["qty"]) for r in fills}
        tickers_row = db.execute("SELECT tickers FROM normaliser LIMIT 1").fetchone()
        account = db.execute("SELECT holdings FROM account_snapshots ORDER BY id DESC LIMIT 1").fetchone()
        cycles = {
            _time(r["bar_time"]): (str(r["status"]), str(r["message"] or ""))
            for r in db.execute("SELECT bar_time, status, message FROM cycles")
        }
    finally:
        db.close()
    tickers = json.loads(tickers_row["tickers"]) if tickers_row else []
    values = json.loads(account["holdings"]) if account else [0.0] * len(tickers)
    holdings = {t: Decimal(repr(float(v))) for t, v in zip(tickers, values, strict=True)}
    return JournalBooks(path, intents, booked, holdings, _last_buys(intents, fills), cycles)


def _last_buys(intents: Mapping[str, Mapping[str, Any]], fills: Sequence[sqlite3.Row]) -> dict[str, Decimal]:
    bar_of = {coid: row["bar_time"] for coid, row in intents.items()}
    filled_bars = sorted({bar_of[f["client_order_id"]] for f in fills if f["client_order_id"] in bar_of})
    if not filled_bars:
        return {}
    last = filled_bars[-1]
    out: dict[str, Decimal] = defaultdict(Decimal)
    for f in fills:
        if bar_of.get(f["client_order_id"]) == last and f["side"] == "buy":
            out[f["symbol"]] += Decimal(f["qty"])
    return dict(out)


def audit(
    orders: Iterable[BrokerOrder],
    positions: Mapping[str, Decimal],
    journals: Sequence[JournalBooks],
    bar: timedelta,
    prefix: str = "cp-",
) -> SoakFindings:
    found = SoakFindings()
    ours = [o for o in orders if o.client_order_id.startswith(prefix)]
    found.orders = len(ours)
    _check_duplicates(ours, found)
    by_id = {o.client_order_id: o for o in ours}
    intents = {coid: (j, row) for j in journals for coid, row in j.intents.items()}
    _check_orders(by_id, intents, found)
    _check_intents(by_id, intents, found)
    _check_books(positions, journals, found)
    for journal in journals:
        _check_bars(journal, bar, found)
    return found


def _check_duplicates(ours: Sequence[BrokerOrder], found: SoakFindings) -> None:
    # A client id encodes model, bar, symbol and side (worker/ids.py), so one id twice is the duplicate.
    for coid, n in Counter(o.client_order_id for o in ours).items():
        if n > 1:
            found.duplicates.append(f"{coid}: {n} broker orders")


def _check_orders(
    by_id: Mapping[str, BrokerOrder],
    intents: Mapping[str, tuple[JournalBooks, Mapping[str, Any]]],
    found: SoakFindings,
) -> None:
    for coid, order in by_id.items():
        if coid not in intents:
            found.unjournaled.append(f"{coid}: at the broker ({order.status}), in no journal")
            continue
        journal, intent = intents[coid]
        if intent["status"] in NEVER_AT_BROKER:
            found.lost.append(f"{coid}: journal says {intent['status']}, the broker has it ({order.status})")
        if order.filled_qty > 0:
            found.fills += 1
            booked = journal.booked.get(coid, Decimal(0))
            if abs(booked - order.filled_qty) > DUST:
                found.unbooked.append(f"{coid}: broker filled {order.filled_qty}, journal booked {booked}")


def _check_intents(
    by_id: Mapping[str, BrokerOrder],
    intents: Mapping[str, tuple[JournalBooks, Mapping[str, Any]]],
    found: SoakFindings,
) -> None:
    for coid, (_, intent) in intents.items():
        if intent["status"] in REACHED_BROKER and coid not in by_id:
            found.lost.append(f"{coid}: journal says {intent['status']}, unknown to the broker")


def _check_books(
    positions: Mapping[str, Decimal], journals: Sequence[JournalBooks], found: SoakFindings
) -> None:
    virtual: dict[str, Decimal] = defaultdict(Decimal)
    slack: dict[str, Decimal] = defaultdict(Decimal)
    for journal in journals:
        for symbol, qty in journal.holdings.items():
            virtual[symbol] += qty
        for symbol, qty in journal.last_buys.items():
            slack[symbol] += qty * FEE_IN_COIN
    for symbol in sorted(set(virtual) | set(positions)):
        broker = positions.get(symbol, Decimal(0))
        diff = broker - virtual[symbol]
        # Virtual may exceed the broker by the coin fees of the newest buys until the next clamp; the
        # broker may exceed the books only by rounding (a larger position would be someone else's).
        if diff > DUST * 100 or -diff > slack[symbol] + DUST * 100:
            found.book_drift.append(
                f"{symbol}: broker {broker}, books {virtual[symbol]} (allowed below by {slack[symbol]})"
            )


def _check_bars(journal: JournalBooks, bar: timedelta, found: SoakFindings) -> None:
    if not journal.cycles:
        return
    first, last = min(journal.cycles), max(journal.cycles)
    moment = first
    while moment <= last:
        status, message = journal.cycles.get(moment, ("", ""))
        if status in DECIDED_CYCLE_STATUSES:
            found.bars_decided += 1
        elif status and status != CycleStatus.EXECUTING and message:
            found.bars_skipped += 1  # skipped or interrupted: each journaled with its reason
        else:
            what = "no journaled outcome" if not status else f"{status} without a reason"
            found.unexplained_bars.append(f"{journal.path.name} {moment.isoformat()}: {what}")
        moment += bar
