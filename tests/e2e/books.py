"""Journal, virtual books and broker, read side by side from a running daemon, and the rules they obey.

The journal is read in one read-only SQLite transaction; the broker through a real alpaca-py client
against the embedded emulator. A snapshot counts only when the journal is quiet around the broker read
(no cycle executing, no open intent, and the same journal before and after): intents are committed
before every POST, so an unchanged journal means no order reached the broker in between.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

# README "Orders and books": Alpaca (and the emulator, taker fee 0.25 %) takes the buy fee in the coin,
# so after a cycle a virtual holding may sit above the broker position by at most that fee until the
# next reconciliation clamps it down; a broker position above ours would be someone else's coin.
# The virtual account holds float32 quantities (the model's state), so a sell of the whole broker
# position can leave float32 dust of the traded quantity; that too is clamped at the next bar.
COIN_FEE = 0.0025
FLOAT32_EPS = 2.0**-23
ROUNDING = 1e-9
# Sells are floored to the asset's quantity step, so a few steps of dust may stay at the broker after the
# books sold all (the emulator's lenient step is 1e-9).
STEP_DUST = 1e-8
OPEN_INTENTS = ("pending", "submitted", "ambiguous")


@dataclass(frozen=True)
class JournalView:
    cycles: tuple[tuple[str, str], ...]  # (bar_time, status)
    # (client_order_id, symbol, side, status, attempts, applied, filled_qty, bar_time)
    intents: tuple[tuple[Any, ...], ...]
    fills: dict[str, Decimal]  # client_order_id -> booked qty
    tickers: tuple[str, ...]
    holdings: tuple[float, ...]

    @property
    def quiet(self) -> bool:
        return (
            bool(self.cycles)
            and all(status != "executing" for _, status in self.cycles)
            and not any(intent[3] in OPEN_INTENTS for intent in self.intents)
        )


def read_journal(path: Path) -> JournalView:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10, isolation_level=None)
    try:
        db.execute("BEGIN")
        cycles = tuple(db.execute("SELECT bar_time, status FROM cycles ORDER BY bar_time"))
        intents = tuple(
            db.execute(
                "SELECT client_order_id, symbol, side, status, attempts, applied, filled_qty, bar_time "
                "FROM intents "
                "ORDER BY client_order_id"
            )
        )
        fills = {coid: Decimal(qty) for coid, qty in db.execute("SELECT client_order_id, qty FROM fills")}
        tickers_row = db.execute("SELECT tickers FROM normaliser").fetchone()
        account = db.execute("SELECT holdings FROM account_snapshots ORDER BY id DESC LIMIT 1").fetchone()
        db.execute("COMMIT")
    finally:
        db.close()
    return JournalView(
        cycles=cycles,
        intents=intents,
        fills=fills,
        tickers=tuple(json.loads(tickers_row[0])) if tickers_row else (),
        holdings=tuple(json.loads(account[0])) if account else (),
    )


@dataclass(frozen=True)
class BrokerView:
    orders: list[dict[str, Any]]
    positions: dict[str, float]  # base symbol -> qty


def read_broker(base_url: str) -> BrokerView:
    from alpaca.trading.client import TradingClient
    from alpaca.trading.enums import QueryOrderStatus
    from alpaca.trading.requests import GetOrdersRequest

    client = TradingClient(
        "PKE2EREADER", "e2e-reader-secret", paper=True, raw_data=True, url_override=base_url
    )
    orders = list(client.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL, limit=500)))
    positions = {_base(p["symbol"]): float(p["qty"]) for p in client.get_all_positions()}  # type: ignore[index]
    return BrokerView(orders=orders, positions=positions)  # type: ignore[arg-type]


def _base(symbol: str) -> str:
    return symbol.removesuffix("/USD").removesuffix("USD")


def wait_until_quiet(
    read: Callable[[], T | None], deadline: float, running: Callable[[], bool], log: Path
) -> T:
    """Poll ``read`` (a quiet snapshot or None) until it gives one; fail with the daemon's log tail."""
    snapshot = None
    while snapshot is None and time.monotonic() < deadline and running():
        snapshot = read()
        time.sleep(0.1)
    assert snapshot is not None, f"the worker was never quiet:\n{log.read_text()[-4000:]}"
    return snapshot


def quiet_snapshot(journal_path: Path, base_url: str) -> tuple[JournalView, BrokerView] | None:
    """Both sides at one quiet instant, or None when the worker was busy (try again later)."""
    before = read_journal(journal_path)
    if not before.quiet:
        return None
    broker = read_broker(base_url)
    return (before, broker) if read_journal(journal_path) == before else None


def assert_books_agree(journal: JournalView, broker: BrokerView) -> None:
    """The three agreements of issue 10, each naming the order or symbol that breaks it."""
    assert len(broker.orders) < 500, "more orders than one page: the check would miss some"
    intents = {row[0]: row for row in journal.intents}
    at_broker = {o["client_order_id"]: o for o in broker.orders}
    # Every journaled sent intent is known to the broker (and the broker has nothing we did not send).
    sent = {coid for coid, row in intents.items() if row[4] > 0}
    assert sent - set(at_broker) == set(), "journaled as sent but unknown to the broker"
    assert set(at_broker) - sent == set(), "at the broker but not journaled as sent"
    # Every filled order at the broker has a journaled fill with the same quantity.
    for coid, order in at_broker.items():
        if Decimal(order["filled_qty"]) > 0:
            assert coid in journal.fills, f"{coid} filled at the broker, no journaled fill"
            assert journal.fills[coid] == Decimal(order["filled_qty"]), coid
            assert intents[coid][5] == 1, f"{coid}: fill journaled but not booked into the virtual account"
    assert set(journal.fills) <= {c for c, o in at_broker.items() if Decimal(o["filled_qty"]) > 0}
    # Every symbol: broker position == virtual holding, up to what the next clamp removes.
    assert journal.tickers and len(journal.holdings) == len(journal.tickers)
    bought, traded = _last_bar_trades(journal)
    for symbol, virtual in zip(journal.tickers, journal.holdings, strict=True):
        held = broker.positions.get(symbol, 0.0)
        assert held <= virtual * (1 + 1e-6) + STEP_DUST, (symbol, virtual, held, "broker above virtual")
        allowed = COIN_FEE * bought.get(symbol, 0.0) + FLOAT32_EPS * (virtual + traded.get(symbol, 0.0))
        assert virtual - held <= allowed + ROUNDING, (symbol, virtual, held, "more than fee and rounding")
    assert set(broker.positions) <= set(journal.tickers), "a position in a symbol the model never trades"


def _last_bar_trades(journal: JournalView) -> tuple[dict[str, float], dict[str, float]]:
    """Per symbol, coins bought and coins traded in the newest bar with fills: the trades the next
    reconciliation has not clamped yet (every earlier bar was followed by one)."""
    filled = [row for row in journal.intents if row[0] in journal.fills]
    if not filled:
        return {}, {}
    last = max(row[7] for row in filled)
    bought: dict[str, float] = {}
    traded: dict[str, float] = {}
    for row in filled:
        if row[7] == last:
            qty = float(journal.fills[row[0]])
            traded[row[1]] = traded.get(row[1], 0.0) + qty
            if row[2] == "buy":
                bought[row[1]] = bought.get(row[1], 0.0) + qty
    return bought, traded


def quiet_tournament_snapshot(
    journal_paths: list[Path], base_url: str
) -> tuple[dict[str, JournalView], BrokerView] | None:
    """Every model's journal and the broker at one instant when all of them are quiet (keyed by model id,
    the journal's file name)."""
    before = {p.stem: read_journal(p) for p in journal_paths}
    if not all(view.quiet for view in before.values()):
        return None
    broker = read_broker(base_url)
    after = {p.stem: read_journal(p) for p in journal_paths}
    return (before, broker) if after == before else None


def assert_tournament_books_agree(views: dict[str, JournalView], broker: BrokerView) -> None:
    """Many models, one account: each order is one model's (by prefix and journal), fills match per
    model, and per symbol the broker holds the sum of the models' books up to fees and rounding."""
    from cappuccino_daemon.worker.ids import our_prefix

    assert len(broker.orders) < 500, "more orders than one page: the check would miss some"
    for order in broker.orders:
        coid = order["client_order_id"]
        owners = [m for m in views if coid.startswith(our_prefix(m))]
        assert len(owners) == 1, f"{coid}: its prefix belongs to {owners}, not to exactly one model"
        assert any(row[0] == coid for row in views[owners[0]].intents), f"{coid} not in {owners[0]}'s journal"
        if Decimal(order["filled_qty"]) > 0:
            assert views[owners[0]].fills.get(coid) == Decimal(order["filled_qty"]), coid
    summed: dict[str, float] = {}
    allowed: dict[str, float] = {}
    for view in views.values():
        bought, traded = _last_bar_trades(view)
        for symbol, virtual in zip(view.tickers, view.holdings, strict=True):
            summed[symbol] = summed.get(symbol, 0.0) + virtual
            slack = COIN_FEE * bought.get(symbol, 0.0) + FLOAT32_EPS * (virtual + traded.get(symbol, 0.0))
            allowed[symbol] = allowed.get(symbol, 0.0) + slack
    for symbol, virtual in summed.items():
        held = broker.positions.get(symbol, 0.0)
        assert held <= virtual * (1 + 1e-6) + STEP_DUST * len(views), (symbol, virtual, held, "broker above")
        assert virtual - held <= allowed[symbol] + ROUNDING, (
            symbol,
            virtual,
            held,
            "beyond fee and rounding",
        )
    assert set(broker.positions) <= set(summed), "a position in a symbol no model trades"
