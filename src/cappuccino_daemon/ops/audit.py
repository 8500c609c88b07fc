"""Live versus simulation, dollar by dollar: what the exchange did to each decision, from the journal alone.

The comparison (documented in the README, "The live-versus-simulation audit"): at every decided bar
both sides start from the live books ``B`` (the ``cycle_start`` snapshot); the training env steps from
them (``env_after`` in the journaled plan: fills at the decision closes, fees in cash, its minimums)
and the live side does what the broker did (the books before the next decision). The bar's gap is the
difference of the two, marked at the newest decided bar's closes ``M``; summed over the bars it is live
equity minus the env's equity after the same decisions from the same start (the env's trade of each
bar applied to the first books). Per coin, one order's way from the env's plan to the live books is a
waterfall whose steps add up by construction:

- ``risk_limits``: the env's quantity → the plan after our risk limits (cuts, a flatten);
- ``dropped_or_resized``: → what was sent (broker minimums and steps, sized by cash or position);
- ``partial_or_unfilled``: → what filled;
- ``fill_price``: the fill at the broker's price instead of the decision close (slippage, timing);
- ``fees_in_coin``: coins the broker kept as fees (reconcile clamps), which the env pays in cash;
- ``skipped_bars``: a bar the worker skipped (down, restarting, data late) where the env stepped: its
  whole step, taken by the replay path once the bars were in (``skipped_bar_env`` events,
  worker/shadow.py); a bar whose data never arrived is counted as unvalued;
- ``other``: what is left (float32 holdings, late fills booked in a later bar); a number near zero
  is the proof that the steps above explain the gap.

Each quantity ``q`` (signed: + buy, - sell) at price ``x`` is worth ``q * M - q * x * (1 + fee)`` in
the env's arithmetic (``fee`` = +buy cost for buys, -sell cost for sells), which is how the live books
also book a fill (``ledger.book_fill``).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np

from cappuccino_daemon.journal.event_kinds import SKIPPED_ENV
from cappuccino_daemon.journal.halts import CUT
from cappuccino_daemon.ops.journal_view import CycleRow, JournalView, Snapshot, open_readonly

COMPONENTS = (
    "risk_limits",
    "dropped_or_resized",
    "partial_or_unfilled",
    "fill_price",
    "fees_in_coin",
    "skipped_bars",
    "other",
)


@dataclass(frozen=True)
class Fees:
    buy: float
    sell: float


@dataclass
class BarAudit:
    bar: str
    gap: float
    components: dict[str, float] = field(default_factory=lambda: dict.fromkeys(COMPONENTS, 0.0))


@dataclass
class Orders:
    """One bar's signed quantity per coin at each step of the waterfall, and the fills' prices."""

    plan: np.ndarray
    sent: np.ndarray
    filled: np.ndarray
    price: np.ndarray


def value(q: np.ndarray, x: np.ndarray, mark: np.ndarray, fees: Fees) -> np.ndarray:
    """Per coin: a trade of ``q`` at ``x``, in the env's arithmetic, marked at ``mark``."""
    rate = np.where(q > 0, 1.0 + fees.buy, 1.0 - fees.sell)
    return np.asarray(q * mark - q * x * rate, dtype=np.float64)


def _worth(cash: float, holdings: Sequence[float], mark: np.ndarray) -> float:
    return float(cash + float(np.dot(np.asarray(holdings, dtype=np.float64), mark)))


def _orders(db: sqlite3.Connection, cycle: CycleRow, tickers: tuple[str, ...]) -> Orders:
    n, bar = len(tickers), cycle.bar_time.isoformat()
    plan, sent, filled, paid = (np.zeros(n) for _ in range(4))
    for o in (cycle.plan or {}).get("orders", []):
        plan[int(o["index"])] += float(o["qty"]) * (1 if o["side"] == "buy" else -1)
    rows = db.execute("SELECT * FROM intents WHERE bar_time = ?", (bar,)).fetchall()
    for r in rows:
        i, sign = tickers.index(str(r["symbol"]).split("/")[0]), 1 if r["side"] == "buy" else -1
        qty, done = float(r["qty"]), float(r["filled_qty"] or 0)
        sent[i] += sign * qty
        filled[i] += sign * done
        paid[i] += done * float(r["filled_avg_price"] or 0.0)
    prices = np.asarray(cycle.prices or (), dtype=np.float64)
    done_abs = np.abs(filled)
    price = np.where(done_abs > 0, paid / np.where(done_abs > 0, done_abs, 1.0), prices)
    return Orders(plan, sent, filled, price)


def _clamps(snapshots: list[Snapshot], start_id: int, end_id: int) -> np.ndarray | None:
    """Holdings the reconcile clamps took (broker fees kept in coin) between two snapshot ids."""
    out: np.ndarray | None = None
    previous = None
    for s in snapshots:
        if s.id > end_id:
            break
        if previous is not None and s.id > start_id and s.reason == "reconcile_clamp":
            delta = np.asarray(s.holdings, dtype=np.float64) - np.asarray(previous.holdings, dtype=np.float64)
            out = delta if out is None else out + delta
        previous = s
    return out


def audit_bar(
    cycle: CycleRow,
    start: Snapshot,
    after: Snapshot,
    clamps: np.ndarray | None,
    orders: Orders,
    mark: np.ndarray,
    fees: Fees,
) -> BarAudit:
    """One decided bar: its gap (live books minus the env's from the same start) and the waterfall."""
    env = (cycle.plan or {})["env_after"]
    gap = _worth(after.cash, after.holdings, mark) - _worth(env["cash"], env["holdings"], mark)
    prices = np.asarray(cycle.prices, dtype=np.float64)
    env_q = np.asarray(env["holdings"], dtype=np.float64) - np.asarray(start.holdings, dtype=np.float64)
    steps = [
        value(env_q, prices, mark, fees),
        value(orders.plan, prices, mark, fees),
        value(orders.sent, prices, mark, fees),
        value(orders.filled, prices, mark, fees),
        value(orders.filled, orders.price, mark, fees),
    ]
    out = BarAudit(cycle.bar_time.isoformat(), gap)
    for name, (a, b) in zip(COMPONENTS[:4], pairwise(steps), strict=True):
        out.components[name] = float((b - a).sum())
    out.components["fees_in_coin"] = 0.0 if clamps is None else float(np.dot(clamps, mark))
    out.components["other"] = gap - sum(out.components[k] for k in COMPONENTS[:-1])
    return out


def skipped_bars(db: sqlite3.Connection, mark: np.ndarray) -> tuple[list[BarAudit], int]:
    """The env's steps at skipped bars (worker/shadow.py) as bars of the audit, and how many bars could
    not be valued (their data never arrived). Live did nothing there: the whole step is the gap."""
    out: dict[str, BarAudit] = {}
    unvalued = 0
    for row in db.execute("SELECT detail FROM events WHERE kind = ? ORDER BY id", (SKIPPED_ENV,)):
        d = json.loads(row["detail"])
        if d["bar"] in out:
            continue
        if "env_after" not in d:
            unvalued += 1
            continue
        env = d["env_after"]
        gap = _worth(d["cash"], d["holdings"], mark) - _worth(env["cash"], env["holdings"], mark)
        audit = BarAudit(d["bar"], gap)
        audit.components["skipped_bars"] = gap
        out[d["bar"]] = audit
    return list(out.values()), unvalued


def audit_journal(path: Path, view: JournalView, fees: Fees) -> dict[str, Any]:
    """The audit of one model's journal (``view`` read in full): totals, components and the bars."""
    decided = [c for c in view.priced_cycles if (c.plan or {}).get("env_after") is not None]
    skipped = sum(n for status, n in view.cycle_counts.items() if status == "skipped")
    result: dict[str, Any] = {"journal": str(path), "model_id": view.model_id, "bars_decided": len(decided)}
    result |= {"bars_skipped": skipped, "bars_without_env_record": len(view.priced_cycles) - len(decided)}
    if not decided:
        return result | {"problem": "no decided bar with an env record yet (journals before this version)"}
    mark = np.asarray(decided[-1].prices, dtype=np.float64)
    starts = {s.bar_time: s for s in view.snapshots if s.reason == "cycle_start"}
    afters = view.accounts_after(decided)
    bars: list[BarAudit] = []
    with open_readonly(path) as db:
        for cycle, after in zip(decided, afters, strict=True):
            start = starts.get(cycle.bar_time)
            if start is None or after is None:
                continue
            clamps = _clamps(view.snapshots, start.id, after.id)
            bars.append(audit_bar(cycle, start, after, clamps, _orders(db, cycle, view.tickers), mark, fees))
        cut_events = db.execute("SELECT COUNT(*) FROM events WHERE kind = ?", (CUT,)).fetchone()[0]
        shadow, unvalued = skipped_bars(db, mark)
    bars = sorted(bars + shadow, key=lambda b: b.bar)
    first = starts[decided[0].bar_time]
    live = _worth(view.snapshots[-1].cash, view.snapshots[-1].holdings, mark)
    gap = sum(b.gap for b in bars)
    totals = {k: sum(b.components[k] for b in bars) for k in COMPONENTS}
    return result | {
        "mark_bar": decided[-1].bar_time.isoformat(),
        "start_equity": _worth(first.cash, first.holdings, mark),
        "live_equity": live,
        "env_equity": live - gap,
        "gap_usd": gap,
        "components": totals,
        "orders_cut": int(cut_events),
        "bars_skipped_valued": len(shadow),
        "bars_skipped_unvalued": unvalued,
        "bars": [{"bar": b.bar, "gap": b.gap, **b.components} for b in bars],
        "problem": None,
    }


def dumps(rows: list[dict[str, Any]]) -> str:
    return json.dumps(rows, indent=2)
