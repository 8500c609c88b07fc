"""Offline replay: the live decision path (features, state, actor, planner) over CSV bars.

Fill rules are the training env's: the action decided on row r (data up to that bar's close) is filled
at the close of row r+1; rows are adjacent across data gaps. Indicators are computed over every bar
available, and the episode (and p0, hence the action normaliser) starts at the first row at or after
``start``. Its first state therefore holds rows ``L-1 .. 0`` of the episode, exactly like
``CryptoEnvAlpaca.reset()``; unlike the env, replay also trades the last L rows (only the final row,
which has no next bar to fill at, is never decided on). Use ``max_steps`` to stop earlier.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from cappuccino_daemon.errors import ConfigError
from cappuccino_daemon.model.spec import EnvProfile, ModelSpec, Normalisation, Policy
from cappuccino_daemon.policy.features import WARMUP_BARS, FeatureMatrix
from cappuccino_daemon.policy.normaliser import action_norm_vector
from cappuccino_daemon.policy.planner import AccountState, PlannedOrder, StepPlan, plan_step
from cappuccino_daemon.policy.state import build_state


@dataclass(frozen=True)
class Decision:
    k: int
    time: pd.Timestamp  # open time of the newest completed bar in the state
    fill_time: pd.Timestamp  # open time of the bar at whose close the orders fill
    state: npt.NDArray[np.float32]
    plan: StepPlan
    row: int = -1  # the matrix row of ``time`` (``fill_time`` is row + 1)

    @property
    def account(self) -> AccountState:
        return self.plan.after

    @property
    def equity(self) -> float:
        return self.plan.after.equity(self.plan.prices)


@dataclass
class Episode:
    """Where an episode sits in the matrix and what it was initialised with."""

    first_row: int
    last_row: int
    p0: npt.NDArray[np.float64]
    anv: npt.NDArray[np.float64]
    warnings: list[str] = field(default_factory=list)


def _iso(ts: pd.Timestamp | datetime) -> str:
    return pd.Timestamp(ts).tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ")


def plan_episode(
    matrix: FeatureMatrix,
    lookback: int,
    norms: Normalisation,
    start: datetime | None = None,
    end: datetime | None = None,
) -> Episode:
    """Locate the episode rows; p0 = close of its first row; refuse windows too short to decide once."""
    times = matrix.times
    lo = 0 if start is None else int(times.searchsorted(pd.Timestamp(start), side="left"))
    hi = len(times) - 1 if end is None else int(times.searchsorted(pd.Timestamp(end), side="right")) - 1
    n_rows = hi - lo + 1
    if n_rows < lookback + 1:
        span = f"{_iso(times[0])} .. {_iso(times[-1])}" if len(times) else "nothing"
        raise ConfigError(
            f"Replay window start={start} end={end} holds {max(n_rows, 0)} aligned feature rows but lookback "
            f"{lookback} needs at least {lookback + 1} (one decision plus its fill bar). The bars cover "
            f"{span} after indicator warm-up; move --start earlier or --end later."
        )
    p0 = matrix.price_array[lo]
    episode = Episode(lo, hi, p0, action_norm_vector(p0, norms.action))
    if lo < WARMUP_BARS:
        episode.warnings.append(
            f"only {lo} aligned rows of indicator history before the episode start (want >= {WARMUP_BARS}): "
            "MACD/RSI/DX have not converged to what a long history gives"
        )
    return episode


def run_replay(
    matrix: FeatureMatrix,
    policy: Policy,
    lookback: int,
    norms: Normalisation,
    profile: EnvProfile,
    episode: Episode,
    max_steps: int | None = None,
) -> Iterator[Decision]:
    """Yield one Decision per traded row, the account carried from each fill to the next decision."""
    account = AccountState.initial(profile.initial_capital, len(matrix.tickers))
    first_decision = episode.first_row + lookback - 1
    times = list(matrix.times[first_decision : episode.last_row + 1])  # boxed once, not twice per step
    for k, r in enumerate(range(first_decision, episode.last_row)):
        if max_steps is not None and k >= max_steps:
            return
        state = build_state(
            account.cash, account.holdings, matrix.tech_array[r - lookback + 1 : r + 1][::-1], norms
        )
        raw = np.asarray(policy.act(state), dtype=np.float32)
        plan = plan_step(raw, account, matrix.price_array[r + 1], episode.anv, profile)
        account = plan.after
        yield Decision(k, times[k], times[k + 1], state, plan, r)


def _floats(arr: npt.NDArray[Any]) -> list[float]:
    return [float(x) for x in np.asarray(arr).tolist()]


def decision_record(
    d: Decision, tickers: tuple[str, ...], orders: list[PlannedOrder] | None = None
) -> dict[str, Any]:
    """One JSONL line. float32 values are written as their exact float64 value (lossless round trip).

    ``orders``: ``d.plan.orders`` when the caller already built them (a property that builds a list).
    """
    return {
        "type": "decision",
        "k": d.k,
        "time": _iso(d.time),
        "fill_time": _iso(d.fill_time),
        "state": _floats(d.state),
        **_record_tail(d, tickers, d.plan.orders if orders is None else orders),
    }


def _record_tail(d: Decision, tickers: tuple[str, ...], orders: list[PlannedOrder]) -> dict[str, Any]:
    """Everything of a decision record after its state, in the record's key order."""
    acc = d.plan.after
    return {
        "action": _floats(d.plan.raw_action),
        "scaled_action": _floats(d.plan.scaled_action),
        "fill_prices": _floats(d.plan.prices),
        "orders": [
            {"symbol": f"{tickers[o.index]}/USD", "side": o.side, "qty": o.qty, "kind": o.kind}
            for o in orders
        ],
        "cash": acc.cash,
        "holdings": {t: float(h) for t, h in zip(tickers, acc.holdings.tolist(), strict=True)},
        "equity": d.equity,
    }


class DecisionLines:
    """``json.dumps(decision_record(d), separators=(",", ":")) + "\n"``, the same bytes, made faster.

    Formatting floats is most of a replay's cost after the actor. A state holds the last L tech rows,
    so each row would be formatted L times: here each row's text is made once (keyed by its exact
    float32 bytes, so only an identical row reuses it), and bar times once per matrix row.
    """

    def __init__(self, matrix: FeatureMatrix, keep_rows: int = 64) -> None:
        self.tickers = matrix.tickers
        self._times = [str(t) for t in matrix.times.tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ")]
        self._head = 1 + len(matrix.tickers)  # cash and holdings: new every step
        self._width = int(matrix.tech_array.shape[1])  # one tech row
        self._rows: dict[bytes, str] = {}
        self._keep = keep_rows

    def line(self, d: Decision, orders: list[PlannedOrder]) -> str:
        if d.row < 0 or not np.isfinite(d.state).all():  # not from run_replay: the plain path
            return json.dumps(decision_record(d, self.tickers, orders), separators=(",", ":")) + "\n"
        state = d.state
        parts = [_join(state[: self._head].tolist())]
        for lo in range(self._head, state.shape[0], self._width):
            parts.append(self._row_text(state[lo : lo + self._width]))
        tail = json.dumps(_record_tail(d, self.tickers, orders), separators=(",", ":"))
        return (
            f'{{"type":"decision","k":{d.k},"time":"{self._times[d.row]}",'
            f'"fill_time":"{self._times[d.row + 1]}","state":[{",".join(parts)}],{tail[1:]}\n'
        )

    def _row_text(self, block: npt.NDArray[np.float32]) -> str:
        key = block.tobytes()
        text = self._rows.get(key)
        if text is None:
            if len(self._rows) >= self._keep:
                del self._rows[next(iter(self._rows))]  # oldest first: rows leave the window in order
            text = self._rows[key] = _join(block.tolist())
        return text


def _join(values: list[float]) -> str:
    """Finite Python floats as ``json.dumps`` writes them (``float.__repr__``)."""
    return ",".join(map(float.__repr__, values))


@dataclass
class SummaryBuilder:
    """Accumulates the totals for the final ``{"type": "summary"}`` line."""

    spec: ModelSpec
    profile: EnvProfile
    norms: Normalisation
    episode: Episode
    matrix: FeatureMatrix
    decisions: int = 0
    buys: int = 0
    sells: int = 0
    forced_sells: int = 0
    first: Decision | None = None
    last: Decision | None = None

    def add(self, d: Decision, orders: list[PlannedOrder] | None = None) -> None:
        self.decisions += 1
        self.first = self.first or d
        for o in d.plan.orders if orders is None else orders:
            if o.kind == "buy":
                self.buys += 1
            elif o.kind == "sell":
                self.sells += 1
            else:
                self.forced_sells += 1
        self.last = d

    def record(self) -> dict[str, Any]:
        tickers = self.matrix.tickers
        first_price = self.matrix.price_array[self.episode.first_row]
        capital = self.profile.initial_capital
        out: dict[str, Any] = {
            "type": "summary",
            "model_id": self.spec.model_id,
            "model_dir": str(self.spec.model_dir),
            "tickers": list(tickers),
            "lookback": self.spec.lookback,
            "timeframe": self.spec.timeframe,
            "profile": asdict(self.profile),
            "norms": asdict(self.norms),
            "episode_start": _iso(self.matrix.times[self.episode.first_row]),
            "p0": dict(zip(tickers, _floats(self.episode.p0), strict=True)),
            "action_norm_vector": dict(zip(tickers, _floats(self.episode.anv), strict=True)),
            "decisions": self.decisions,
            "orders": {"buy": self.buys, "sell": self.sells, "forced_sell": self.forced_sells},
            "warnings": list(self.episode.warnings) + list(self.spec.warnings),
        }
        if self.first is not None and self.last is not None:
            fill_prices = self.last.plan.prices
            benchmark = float(np.sum((capital / len(tickers)) / first_price * fill_prices))
            out.update(
                first_decision_time=_iso(self.first.time),
                last_fill_time=_iso(self.last.fill_time),
                final_cash=self.last.account.cash,
                final_holdings=dict(zip(tickers, _floats(self.last.account.holdings), strict=True)),
                final_equity=self.last.equity,
                total_return=self.last.equity / capital - 1.0,
                equal_weight_return=benchmark / capital - 1.0,
            )
        return out
