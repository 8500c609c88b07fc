"""A read-only view of a worker journal, for ``status`` and ``report``.

It opens the SQLite file with ``file:...?mode=ro`` and reads everything inside one read transaction: in
WAL mode a reader never blocks the worker's writes and sees one consistent snapshot. It does not use
``journal.store.Journal`` on purpose: that class creates tables and switches the journal mode, which are
writes. Only the schema in ``journal/schema.py`` is shared.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cappuccino_daemon.errors import ConfigError
from cappuccino_daemon.journal.halts import halt_in


def _time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text).astimezone(UTC) if text else None


@dataclass(frozen=True)
class Snapshot:
    """One ``account_snapshots`` row: the virtual account after a change."""

    id: int
    bar_time: datetime | None
    reason: str
    cash: float
    holdings: tuple[float, ...]


@dataclass(frozen=True)
class CycleRow:
    bar_time: datetime
    model_id: str
    status: str
    action: tuple[float, ...] | None
    plan: dict[str, Any] | None
    lag_s: float | None
    message: str

    @property
    def prices(self) -> tuple[float, ...] | None:
        raw = (self.plan or {}).get("prices")
        return tuple(float(p) for p in raw) if raw else None


@dataclass(frozen=True)
class FillRow:
    client_order_id: str
    bar_time: datetime
    symbol: str
    side: str
    qty: float
    price: float


@dataclass
class JournalView:
    path: Path
    model_id: str | None = None
    tickers: tuple[str, ...] = ()
    p0: tuple[float, ...] | None = None
    p0_bar: datetime | None = None
    anv: tuple[float, ...] | None = None  # the action normaliser the worker computed at p0 and used
    cycles: list[CycleRow] = field(default_factory=list)
    intent_status: dict[str, int] = field(default_factory=dict)
    fills: list[FillRow] = field(default_factory=list)
    snapshots: list[Snapshot] = field(default_factory=list)
    cycle_counts: dict[str, int] = field(default_factory=dict)  # always complete, even in summary mode
    fill_sides: dict[str, int] = field(default_factory=dict)
    summary: bool = False  # True: cycles/snapshots hold only the rows status needs, fills is empty
    fees: dict[str, Any] | None = None  # fee audit totals (virtual vs broker-booked), None before any
    halt: dict[str, Any] | None = None  # the risk halt in force (worker/riskguard.py), None: trading

    @property
    def priced_cycles(self) -> list[CycleRow]:
        """Cycles that recorded a decision and its bar's close prices (not skipped ones)."""
        n = len(self.tickers)
        return [c for c in self.cycles if c.prices is not None and len(c.prices) == n]

    @property
    def initial_capital(self) -> float | None:
        """Cash of the first account snapshot: the worker starts the account at the profile's capital
        with no holdings, and no fill can precede the first cycle's snapshot."""
        if not self.snapshots:
            return None
        first = self.snapshots[0]
        if self.p0 is not None and len(first.holdings) == len(self.p0):
            return first.cash + sum(h * p for h, p in zip(first.holdings, self.p0, strict=True))
        return first.cash

    def accounts_after(self, cycles: list[CycleRow]) -> list[Snapshot | None]:
        """For each cycle (in bar order), the account once its fills were booked: the newest snapshot
        written before the NEXT cycle's ``cycle_start`` snapshot. Late fills and reconcile clamps land
        where they were written, so the series never looks into the future."""
        starts = {s.bar_time: s.id for s in self.snapshots if s.reason == "cycle_start" and s.bar_time}
        out: list[Snapshot | None] = []
        k, best = 0, None  # snapshots are in id order and the boundaries only grow: one pass
        for i in range(len(cycles)):
            last = i + 1 == len(cycles)
            boundary = -1 if last else starts.get(cycles[i + 1].bar_time, 0)  # 0: no start row, hold
            while k < len(self.snapshots) and (last or self.snapshots[k].id < boundary):
                best = self.snapshots[k]
                k += 1
            out.append(best)
        return out


def open_readonly(path: Path) -> sqlite3.Connection:
    uri = f"{Path(path).resolve().as_uri()}?mode=ro"
    db = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=5.0)
    db.row_factory = sqlite3.Row
    return db


def read_journal(path: Path, *, summary: bool = False) -> JournalView:
    """What ``report`` (everything) or ``status`` (``summary``: counts plus the newest rows, fast on a
    years-long journal) needs, read in one snapshot; a damaged file is a ConfigError."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"Journal {path} does not exist. The worker creates it on its first bar: start the daemon with "
            "`cappuccino-paper run`, or pass --journal with the path of an existing journal."
        )
    try:
        db = open_readonly(path)
        try:
            db.execute("BEGIN")
            view = _read(db, path, summary)
            db.execute("ROLLBACK")
        finally:
            db.close()
    except (sqlite3.DatabaseError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"Journal {path} cannot be read ({exc}). Check that it is a cappuccino-paper journal "
            "(state/journal/<model>.sqlite); if the worker reports it corrupt, move it aside as its "
            "message says."
        ) from exc
    return view


_NEWEST_CYCLES = (
    "SELECT * FROM cycles WHERE bar_time IN ((SELECT MAX(bar_time) FROM cycles), "
    "(SELECT MAX(bar_time) FROM cycles WHERE action IS NOT NULL), "
    "(SELECT MAX(bar_time) FROM cycles WHERE plan IS NOT NULL)) ORDER BY bar_time"
)
_END_SNAPSHOTS = (
    "SELECT id, bar_time, reason, cash, holdings FROM account_snapshots WHERE id IN "
    "((SELECT MIN(id) FROM account_snapshots), (SELECT MAX(id) FROM account_snapshots)) ORDER BY id"
)


def _counts(db: sqlite3.Connection, sql: str) -> dict[str, int]:
    return {str(r[0]): int(r[1]) for r in db.execute(sql)}


def _fees(db: sqlite3.Connection) -> dict[str, Any] | None:
    """Totals of the worker's ``fee_audit`` events (worker/fees_audit.py)."""
    rows = [
        json.loads(r[0]) for r in db.execute("SELECT detail FROM events WHERE kind='fee_audit' ORDER BY id")
    ]
    if not rows:
        return None
    virtual = sum(float(r.get("virtual_usd", 0.0)) for r in rows)
    broker = sum(float(r.get("broker_usd", 0.0)) for r in rows)
    return {
        "audited": len(rows),
        "last_day": max(str(r.get("day", "")) for r in rows),
        "virtual_usd": round(virtual, 6),
        "broker_usd": round(broker, 6),
        "diff_usd": round(broker - virtual, 6),
    }


def _read(db: sqlite3.Connection, path: Path, summary: bool) -> JournalView:
    view = JournalView(path=path, summary=summary)
    view.cycle_counts = _counts(db, "SELECT status, COUNT(*) FROM cycles GROUP BY status ORDER BY status")
    view.fill_sides = _counts(db, "SELECT side, COUNT(*) FROM fills GROUP BY side ORDER BY side")
    cycles = db.execute(_NEWEST_CYCLES if summary else "SELECT * FROM cycles ORDER BY bar_time").fetchall()
    for r in cycles:
        view.cycles.append(
            CycleRow(
                bar_time=datetime.fromisoformat(r["bar_time"]).astimezone(UTC),
                model_id=str(r["model_id"]),
                status=str(r["status"]),
                action=tuple(float(a) for a in json.loads(r["action"])) if r["action"] else None,
                plan=json.loads(r["plan"]) if r["plan"] else None,
                lag_s=None if r["lag_s"] is None else float(r["lag_s"]),
                message=str(r["message"] or ""),
            )
        )
    latest_model = view.cycles[-1].model_id if view.cycles else None
    norms = db.execute("SELECT * FROM normaliser ORDER BY created_at").fetchall()
    chosen = next((n for n in norms if n["model_id"] == latest_model), norms[-1] if norms else None)
    if chosen is not None:
        view.model_id = str(chosen["model_id"])
        view.tickers = tuple(str(t) for t in json.loads(chosen["tickers"]))
        view.p0 = tuple(float(p) for p in json.loads(chosen["p0"]))
        view.p0_bar = _time(chosen["p0_bar"])
        view.anv = tuple(float(a) for a in json.loads(chosen["anv"]))
    else:
        view.model_id = latest_model
    view.fees = _fees(db)
    view.halt = halt_in(db)
    view.intent_status = _counts(db, "SELECT status, COUNT(*) FROM intents GROUP BY status ORDER BY status")
    snapshots = "SELECT id, bar_time, reason, cash, holdings FROM account_snapshots ORDER BY id"
    view.snapshots = [
        Snapshot(
            id=int(r["id"]),
            bar_time=_time(r["bar_time"]),
            reason=str(r["reason"]),
            cash=float(r["cash"]),
            holdings=tuple(float(h) for h in json.loads(r["holdings"])),
        )
        for r in db.execute(_END_SNAPSHOTS if summary else snapshots)
    ]
    if summary:
        return view
    fills = db.execute(
        "SELECT f.client_order_id, i.bar_time, f.symbol, f.side, f.qty, f.price FROM fills f "
        "JOIN intents i ON i.client_order_id = f.client_order_id ORDER BY i.bar_time, f.at, f.client_order_id"
    ).fetchall()
    view.fills = [
        FillRow(
            client_order_id=str(r["client_order_id"]),
            bar_time=datetime.fromisoformat(r["bar_time"]).astimezone(UTC),
            symbol=str(r["symbol"]),
            side=str(r["side"]),
            qty=float(r["qty"]),
            price=float(r["price"]),
        )
        for r in fills
    ]
    return view
