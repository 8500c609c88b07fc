"""Live versus simulation, dollar by dollar: what the exchange did to each decision, from the journal alone.

The comparison (documented in the README, "The live-versus-simulation audit"): at every decided bar
both sides start from the live books ``B`` (the ``cycle_start`` snapshot). The training env takes its
step from them with the journaled action, filling at the next bar's close as training does (redone
here from the plan's ``cooldown_before``; at the decision close, the journaled ``env_after``, while the
next close is not known yet); the live side does what the broker did (the books before the next
decision). The bar's gap is the difference of the two, marked at the newest decided bar's closes
``M``; summed over the bars it is live equity minus the env's equity after the same decisions from the
same start (the env's trade of each bar applied to the first books). Per coin, one order's way from
the env's plan to the live books is a waterfall whose steps add up by construction:

- ``fill_price``: acting at the decision close instead of the next one (timing: the quantities the
  live plan sized there), and the broker's fill price against that close (slippage);
- ``risk_limits``: the plan → the plan after our risk limits (cuts, a flatten);
- ``dropped_or_resized``: → what was sent (broker minimums and steps, sized by cash or position);
- ``partial_or_unfilled``: → what filled;
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
from datetime import datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np

from cappuccino_daemon.journal.event_kinds import SKIPPED_ENV
from cappuccino_daemon.journal.halts import CUT
from cappuccino_daemon.model.spec import EnvProfile
from cappuccino_daemon.ops.journal_view import CycleRow, JournalView, Snapshot, open_readonly
from cappuccino_daemon.policy.ledger import AccountState
from cappuccino_daemon.policy.planner import plan_step

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


def _worth(cash: float, holdings: Sequence[float] | np.ndarray, mark: np.ndarray) -> float:
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


@dataclass(frozen=True)
class EnvStep:
    """The env's step at one bar from the live books: its quantities, where it fills them (the next
    bar's close, as in training; the decision close when that is not known) and the books it leaves."""

    q: np.ndarray
    price: np.ndarray
    cash: float
    holdings: np.ndarray
    at_next_close: bool


@dataclass(frozen=True)
class EnvRules:
    """What redoing the env's step at the next close needs; without it the journaled step is used."""

    profile: EnvProfile
    anv: np.ndarray
    next_close: dict[str, np.ndarray]  # bar (ISO) -> the closes of the bar after it


def env_step(
    bar: str,
    raw: Sequence[float] | None,
    books: tuple[float, Sequence[float], Sequence[float] | None],
    recorded: dict[str, Any],
    decision_close: np.ndarray,
    rules: EnvRules | None,
) -> EnvStep:
    cash, holdings, cooldown = books
    held = np.asarray(holdings, dtype=np.float64)
    nxt = None if rules is None else rules.next_close.get(bar)
    if rules is None or nxt is None or raw is None or cooldown is None:
        after = np.asarray(recorded["holdings"], dtype=np.float64)
        return EnvStep(after - held, decision_close, float(recorded["cash"]), after, False)
    account = AccountState(float(cash), np.asarray(holdings, np.float32), np.asarray(cooldown, np.float32))
    plan = plan_step(np.asarray(raw, dtype=np.float32), account, nxt, rules.anv, rules.profile)
    after = np.asarray(plan.after.holdings, dtype=np.float64)
    return EnvStep(after - held, nxt, float(plan.after.cash), after, True)


def audit_bar(
    cycle: CycleRow,
    after: Snapshot,
    clamps: np.ndarray | None,
    orders: Orders,
    mark: np.ndarray,
    fees: Fees,
    env: EnvStep,
    planned: np.ndarray,
) -> BarAudit:
    """One decided bar: its gap (live books minus the env's from the same start) and the waterfall.
    ``planned``: the live plan's quantities before our risk limits (the env's step at the decision close).
    Acting at the decision close instead of the env's next close counts as fill price (timing)."""
    gap = _worth(after.cash, after.holdings, mark) - _worth(env.cash, env.holdings, mark)
    x = env.price
    steps = [value(q, x, mark, fees) for q in (env.q, planned, orders.plan, orders.sent, orders.filled)]
    steps.append(value(orders.filled, orders.price, mark, fees))
    out = BarAudit(cycle.bar_time.isoformat(), gap)
    timing = float((steps[1] - steps[0]).sum())
    for name, (a, b) in zip(COMPONENTS[:4], pairwise(steps[1:]), strict=True):
        out.components[name] = float((b - a).sum())
    out.components["fill_price"] += timing
    out.components["fees_in_coin"] = 0.0 if clamps is None else float(np.dot(clamps, mark))
    out.components["other"] = gap - sum(out.components[k] for k in COMPONENTS[:-1])
    return out


def skipped_bars(
    db: sqlite3.Connection, mark: np.ndarray, rules: EnvRules | None
) -> tuple[list[BarAudit], int]:
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
        books = (d["cash"], d["holdings"], d.get("cooldown"))
        prices = np.asarray(d.get("prices", ()), dtype=np.float64)
        env = env_step(d["bar"], d.get("action"), books, d["env_after"], prices, rules)
        gap = _worth(d["cash"], d["holdings"], mark) - _worth(env.cash, env.holdings, mark)
        audit = BarAudit(d["bar"], gap)
        audit.components["skipped_bars"] = gap
        out[d["bar"]] = audit
    return list(out.values()), unvalued


def _closes(db: sqlite3.Connection, decided: list[CycleRow]) -> dict[str, np.ndarray]:
    """Every bar's closes the journal knows: decided bars' plans and skipped bars' env records."""
    out = {c.bar_time.isoformat(): np.asarray(c.prices, dtype=np.float64) for c in decided}
    for row in db.execute("SELECT detail FROM events WHERE kind = ?", (SKIPPED_ENV,)):
        d = json.loads(row["detail"])
        if "prices" in d:
            out.setdefault(d["bar"], np.asarray(d["prices"], dtype=np.float64))
    return out


def _rules(
    db: sqlite3.Connection, view: JournalView, decided: list[CycleRow], profile: Any, step: timedelta
) -> EnvRules | None:
    if profile is None or view.anv is None:
        return None
    closes = _closes(db, decided)
    nxt = {}
    for bar in closes:
        later = (datetime.fromisoformat(bar) + step).isoformat()
        if later in closes:
            nxt[bar] = closes[later]
    return EnvRules(profile, np.asarray(view.anv, dtype=np.float64), nxt)


def _decided_bars(
    db: sqlite3.Connection, view: JournalView, decided: list[CycleRow], fees: Fees, rules: EnvRules | None
) -> tuple[list[BarAudit], int]:
    mark = np.asarray(decided[-1].prices, dtype=np.float64)
    starts = {s.bar_time: s for s in view.snapshots if s.reason == "cycle_start"}
    bars, at_next = [], 0
    for cycle, after in zip(decided, view.accounts_after(decided), strict=True):
        start = starts.get(cycle.bar_time)
        if start is None or after is None:
            continue
        plan = cycle.plan or {}
        recorded = plan["env_after"]
        books = (start.cash, start.holdings, plan.get("cooldown_before"))
        prices = np.asarray(cycle.prices, dtype=np.float64)
        env = env_step(cycle.bar_time.isoformat(), cycle.action, books, recorded, prices, rules)
        at_next += env.at_next_close
        planned = np.asarray(recorded["holdings"], dtype=np.float64) - np.asarray(start.holdings, np.float64)
        clamps = _clamps(view.snapshots, start.id, after.id)
        orders = _orders(db, cycle, view.tickers)
        bars.append(audit_bar(cycle, after, clamps, orders, mark, fees, env, planned))
    return bars, at_next


def audit_journal(
    path: Path,
    view: JournalView,
    fees: Fees,
    profile: Any = None,
    timeframe: timedelta = timedelta(hours=1),
) -> dict[str, Any]:
    """The audit of one model's journal (``view`` read in full): totals, components and the bars.
    With the model's ``profile`` the env's step is redone at the next bar's close, as training fills;
    without it the journaled step at the decision close is used."""
    decided = [c for c in view.priced_cycles if (c.plan or {}).get("env_after") is not None]
    skipped = sum(n for status, n in view.cycle_counts.items() if status == "skipped")
    result: dict[str, Any] = {"journal": str(path), "model_id": view.model_id, "bars_decided": len(decided)}
    result |= {"bars_skipped": skipped, "bars_without_env_record": len(view.priced_cycles) - len(decided)}
    if not decided:
        return result | {"problem": "no decided bar with an env record yet (journals before this version)"}
    mark = np.asarray(decided[-1].prices, dtype=np.float64)
    with open_readonly(path) as db:
        rules = _rules(db, view, decided, profile, timeframe)
        bars, at_next = _decided_bars(db, view, decided, fees, rules)
        cut_events = db.execute("SELECT COUNT(*) FROM events WHERE kind = ?", (CUT,)).fetchone()[0]
        shadow, unvalued = skipped_bars(db, mark, rules)
    bars = sorted(bars + shadow, key=lambda b: b.bar)
    first = next(s for s in view.snapshots if s.reason == "cycle_start" and s.bar_time == decided[0].bar_time)
    live = _worth(view.snapshots[-1].cash, view.snapshots[-1].holdings, mark)
    gap = sum(b.gap for b in bars)
    return result | {
        "mark_bar": decided[-1].bar_time.isoformat(),
        "start_equity": _worth(first.cash, first.holdings, mark),
        "live_equity": live,
        "env_equity": live - gap,
        "gap_usd": gap,
        "components": {k: sum(b.components[k] for b in bars) for k in COMPONENTS},
        "bars_env_at_next_close": at_next,
        "orders_cut": int(cut_events),
        "bars_skipped_valued": len(shadow),
        "bars_skipped_unvalued": unvalued,
        "bars": [{"bar": b.bar, "gap": b.gap, **b.components} for b in bars],
        "problem": None,
    }


def dumps(rows: list[dict[str, Any]]) -> str:
    return json.dumps(rows, indent=2)
