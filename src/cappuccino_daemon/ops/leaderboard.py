"""``leaderboard``: every model of a tournament side by side, from its own journal (reads files only).

Per model: equity and return of its virtual sub-account at its newest decided bar, maximum drawdown,
Sharpe on per-bar returns (``mean / std * sqrt(bars per year)``, sample std; None with fewer than two
returns or none that vary), filled orders, the fees its books charged (the profile's rates on every
booked fill, as the ledger books them), return against equal-weight buy-and-hold of its own tickers from
its first bar (no fees), and its Optuna objective value (the pinned manifest's ``source.value``).

Live versus simulation: the journal holds every decision the model made (its raw action, the bar's
close prices) and the normaliser p0. ``sim_equity`` is where the training environment's books would be
after the same decisions, each planned at the decision bar's prices with the env's fees in cash and its
minimums (``policy.planner.plan_step`` from the same capital); ``gap_usd`` = live equity minus that.
The gap is what the real exchange added to the plan: fill prices, fees in coin, orders dropped below
the broker's minimums, partial or late fills, bars skipped live. (A replay that also re-decides from the
simulated books needs the bars and is ``replay``'s job.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cappuccino_daemon.config import DaemonSettings, ModelEntry
from cappuccino_daemon.errors import ConfigError
from cappuccino_daemon.ops.journal_view import JournalView, read_journal
from cappuccino_daemon.ops.series import RunSeries, from_journal
from cappuccino_daemon.ops.status import find_journal

SORT_KEYS = ("return", "equity", "sharpe", "max_drawdown", "gap_usd", "vs_buy_and_hold", "name")
HOURS_PER_YEAR = 24 * 365


@dataclass(frozen=True)
class ModelFacts:
    """What the leaderboard needs of a model folder: its profile's fee rates and norms, its objective."""

    buy_cost_pct: float
    sell_cost_pct: float
    norm_action: float
    bars_per_year: float
    objective: float | None
    profile: Any  # EnvProfile (the planner's input)


def model_facts(entry: ModelEntry) -> ModelFacts:
    """The model's spec as the worker built it (same tickers, profile and capital overrides)."""
    from cappuccino_daemon.bars import timeframe_delta
    from cappuccino_daemon.model.loader import load_model_spec
    from cappuccino_daemon.model.manifest import read_manifest

    spec = load_model_spec(Path(entry.dir), entry.tickers, profile=entry.profile, capital=entry.capital)
    manifest = read_manifest(Path(entry.dir), verify_sha=False)
    seconds = timeframe_delta(spec.timeframe).total_seconds()
    return ModelFacts(
        buy_cost_pct=spec.profile.buy_cost_pct,
        sell_cost_pct=spec.profile.sell_cost_pct,
        norm_action=spec.norms.action,
        bars_per_year=HOURS_PER_YEAR * 3600 / seconds,
        objective=manifest.source.value if manifest is not None else None,
        profile=spec.profile,
    )


def leaderboard(settings: DaemonSettings, sort: str = "return") -> list[dict[str, Any]]:
    """One row per configured model, best first by ``sort`` (rows without the figure last)."""
    if sort not in SORT_KEYS:
        raise ConfigError(f"--sort {sort!r} is not one of {', '.join(SORT_KEYS)}.")
    rows = [model_row(settings.paths.state, entry) for entry in settings.models_list]
    if sort == "name":
        return sorted(rows, key=lambda r: str(r["name"]).lower())
    ascending = sort == "max_drawdown"  # drawdowns are negative: the smallest loss is the largest value
    present = [r for r in rows if r[sort] is not None]
    present.sort(key=lambda r: float(r[sort]), reverse=not ascending)
    return present + [r for r in rows if r[sort] is None]


def model_row(state_dir: Path, entry: ModelEntry, facts: ModelFacts | None = None) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(
        ("model_id", "journal", "equity", "return", "max_drawdown", "sharpe", "fees_usd",
         "buy_and_hold_return", "vs_buy_and_hold", "objective", "sim_equity", "gap_usd", "first_bar",
         "last_bar", "problem", "halted"),
    )  # fmt: skip
    row.update(name=entry.name, dir=str(entry.dir), capital=entry.capital, trades=0, bars=0)
    path, note = find_journal(state_dir, Path(entry.dir))
    if path is None or note != "journal of the configured model":
        row["problem"] = "no journal of this model yet (the worker creates it on its first bar)"
        return row
    if facts is None:
        try:
            facts = model_facts(entry)
        except ConfigError as exc:  # the folder changed since it traded: show the books, say why not more
            row["problem"] = f"model folder unreadable, fees and simulation left out: {exc}"
    view = read_journal(path)
    row.update(model_id=view.model_id, journal=str(path), trades=len(view.fills))
    row["halted"] = view.halt and {k: view.halt.get(k) for k in ("limit", "bar", "message", "on_breach")}
    if not view.priced_cycles:
        row["problem"] = row["problem"] or "no decided bar yet"
        return row
    series = from_journal(view)
    row.update(_performance(series, facts.bars_per_year if facts else HOURS_PER_YEAR))
    if facts is not None:
        sim = simulated_equity(view, facts)
        row.update(objective=facts.objective, fees_usd=_fees(view, facts), sim_equity=sim)
        row["gap_usd"] = None if sim is None else row["equity"] - sim
    return row


def _performance(series: RunSeries, bars_per_year: float) -> dict[str, Any]:
    equity, capital = series.equity[-1], series.capital
    returns = [b / a - 1.0 for a, b in zip(series.equity, series.equity[1:], strict=False) if a > 0]
    sharpe = None
    if len(returns) >= 2:
        std = float(np.std(returns, ddof=1))
        sharpe = float(np.mean(returns)) / std * math.sqrt(bars_per_year) if std > 0 else None
    bh = series.buy_hold[-1]
    return {
        "equity": equity,
        "return": equity / capital - 1.0,
        "max_drawdown": min(series.drawdown),
        "sharpe": sharpe,
        "buy_and_hold_return": bh / capital - 1.0,
        "vs_buy_and_hold": equity - bh,
        "first_bar": series.times[0].isoformat(),
        "last_bar": series.times[-1].isoformat(),
        "bars": len(series.times),
    }


def _fees(view: JournalView, facts: ModelFacts) -> float:
    """The ledger's fees on every booked fill: ``p * q * rate`` (cash, as the virtual books charge)."""
    return float(
        sum(
            f.price * f.qty * (facts.buy_cost_pct if f.side == "buy" else facts.sell_cost_pct)
            for f in view.fills
        )
    )


def simulated_equity(view: JournalView, facts: ModelFacts) -> float | None:
    """The env's books after the journal's decisions (see the module doc), at the newest decided prices."""
    from cappuccino_daemon.policy.normaliser import action_norm_vector
    from cappuccino_daemon.policy.planner import AccountState, plan_step

    priced = [c for c in view.priced_cycles if c.action is not None]
    capital = view.initial_capital
    if not priced or capital is None or view.p0 is None:
        return None
    stored = view.anv  # what the worker used; recomputed from p0 only for a journal without it
    anv = np.asarray(stored, dtype=np.float64) if stored else action_norm_vector(view.p0, facts.norm_action)
    account = AccountState.initial(capital, len(view.tickers))
    for cycle in priced:
        prices = np.asarray(cycle.prices, dtype=np.float64)
        raw = np.asarray(cycle.action, dtype=np.float32)
        account = plan_step(raw, account, prices, anv, facts.profile).after
    return float(account.equity(np.asarray(priced[-1].prices, dtype=np.float64)))
