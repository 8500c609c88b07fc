"""One decision, composed from the other layers: bars → features → state → act → plan → execute → journal.

No rule lives here that is not named in the layer that owns it; this module only decides the order
and what to do when a step refuses: a missing bar (``BarGap``) is waited for until its deadline and
then the bar is skipped (journaled), bad data (NaN, stale) skips the bar, a clock skew refuses to act.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

import numpy as np
import pandas as pd

from cappuccino_daemon.bars import check_fetched_bars
from cappuccino_daemon.broker.ports import Broker
from cappuccino_daemon.clock import Clock
from cappuccino_daemon.errors import InvariantViolation, StaleDataError
from cappuccino_daemon.journal.event_kinds import SKIPPED_ENV
from cappuccino_daemon.journal.store import Journal
from cappuccino_daemon.logsetup import get_logger
from cappuccino_daemon.model.spec import ModelSpec, Policy
from cappuccino_daemon.policy.features import (
    Aligned,
    BarGap,
    FeatureFn,
    align_latest,
    floor_time,
    ticker_features,
)
from cappuccino_daemon.policy.ledger import AccountState, with_cooldown
from cappuccino_daemon.policy.normaliser import action_norm_vector
from cappuccino_daemon.policy.planner import plan_step
from cappuccino_daemon.policy.state import build_state
from cappuccino_daemon.states import CycleStatus
from cappuccino_daemon.worker.account import as_tuple, load_account
from cappuccino_daemon.worker.crashpoints import crash_point
from cappuccino_daemon.worker.executor import ExecutionReport, Executor, OrderLine
from cappuccino_daemon.worker.orderflow import Job, execute_all
from cappuccino_daemon.worker.pace import BrokerClockRate
from cappuccino_daemon.worker.parity import ParityCheck, ParityResult
from cappuccino_daemon.worker.riskguard import RiskGuard
from cappuccino_daemon.worker.shadow import record_skipped

log = get_logger(__name__)

Kind = Literal["traded", "idle", "waiting", "skipped", "refused"]
# A tournament's fill wait lists the orders sent since the bar closed; a second's slack for clocks.
ORDERS_AFTER_MARGIN = timedelta(seconds=1)
BarSource = Callable[[list[str], timedelta, datetime, datetime], dict[str, pd.DataFrame]]


def check_and_align(
    frames: dict[str, pd.DataFrame],
    tickers: Sequence[str],
    now: datetime,
    timeframe: timedelta,
    *,
    lookback: int,
    max_wait: timedelta,
    features: FeatureFn = ticker_features,
) -> Aligned:
    """The impossible-bar rule (the same as replay's and the emulator's CSVs), then ``align_latest``."""
    check_fetched_bars(frames)
    return align_latest(
        frames, tickers, now, timeframe, lookback=lookback, max_wait=max_wait, features=features
    )


class Aligner(Protocol):
    def __call__(
        self,
        frames: dict[str, pd.DataFrame],
        tickers: Sequence[str],
        now: datetime,
        timeframe: timedelta,
        *,
        lookback: int,
        max_wait: timedelta,
    ) -> Aligned: ...


class ClockSkewError(StaleDataError):
    """Local and broker clocks disagree by more than allowed: bar-close logic cannot be trusted."""


@dataclass(frozen=True)
class CycleConfig:
    """Built by ``worker/build.py`` from the settings; no defaults here (they live in config.py)."""

    timeframe: timedelta
    history_bars: int
    grace_s: float
    max_clock_skew_s: float | None  # None: do not compare (a simulated emulator clock)
    gap_wait: timedelta


@dataclass(frozen=True)
class OrderLag:
    """Bar close → last order sent, on both clocks, which never mix (the emulator's runs 600x ours).

    ``wall_s``: our seconds (the sleep, wake-up, grace and the cycle's own work); None while the broker
    clock's rate is not yet measured (the first poll after a start), since broker seconds cannot be
    turned into ours without it. ``broker_s``: the broker's clock, from the bar close to the broker's
    ``submitted_at`` of the last order (estimated from the rate when the broker gives none).
    """

    wall_s: float | None
    broker_s: float


@dataclass
class CycleOutcome:
    kind: Kind
    bar: datetime | None = None
    lag: OrderLag | None = None  # None unless this cycle sent at least one order
    message: str = ""
    report: ExecutionReport | None = None
    equity: float | None = None
    positions: dict[str, float] = field(default_factory=dict)
    parity: ParityResult | None = None  # this bar's parity check (None: not checked)


@dataclass(frozen=True)
class Review:
    """What a decision read, kept for the checks that run once its orders are out."""

    frames: dict[str, pd.DataFrame]
    account: AccountState
    raw: np.ndarray[Any, Any]
    anv: np.ndarray[Any, Any]
    skipped: list[datetime]  # bars skipped since the last decision, for the env's step there


@dataclass(frozen=True)
class Decided:
    """A bar whose plan is journaled and whose orders are still to send (or to finish: ``review`` is
    None for an interrupted cycle taken up again)."""

    bar: datetime
    now: datetime
    lines: list[OrderLine]
    prices: list[float]
    review: Review | None = None


@dataclass
class Cycle:
    spec: ModelSpec
    policy: Policy
    broker: Broker
    journal: Journal
    executor: Executor
    clock: Clock
    config: CycleConfig
    pace: BrokerClockRate = field(default_factory=BrokerClockRate)  # the loop feeds it every broker read
    bar_source: BarSource | None = None  # a tournament's shared download (worker/tournament.py)
    risk: RiskGuard | None = None  # the model's limits between its plan and its orders
    parity: ParityCheck | None = None  # the replay path's action for the same bars and books
    aligner: Aligner = check_and_align  # a tournament's: one matrix per ticker list (worker/tournament.py)
    _t0: float = field(default=0.0, init=False)

    @property
    def tickers(self) -> tuple[str, ...]:
        return self.spec.tickers

    def expected_bar(self, broker_now: datetime) -> datetime:
        """Open time of the newest bar closed at least ``grace`` ago."""
        tf = self.config.timeframe
        return floor_time(broker_now - timedelta(seconds=self.config.grace_s), tf) - tf

    def history_start(self, bar: datetime) -> datetime:
        """The first bar a decision at ``bar`` downloads (the indicators' history)."""
        return bar - self.config.timeframe * self.config.history_bars

    def broker_now(self) -> datetime:
        broker_now = self.broker.now()
        limit = self.config.max_clock_skew_s
        if limit is not None:
            skew = (self.clock.now() - broker_now).total_seconds()
            if abs(skew) > limit:
                raise ClockSkewError(
                    f"local clock is {skew:+.1f}s off the broker's (limit {limit}s); refusing to trade. "
                    "Sync the system clock (timedatectl / chrony) and the worker resumes by itself."
                )
        return broker_now

    def run(self, broker_now: datetime | None = None, read_at: float | None = None) -> CycleOutcome:
        """One model alone: decide, send its orders, conclude (a tournament's loop runs the three
        steps itself, so every model's orders go out together: worker/orderflow.py)."""
        decided = self.decide(broker_now, read_at)
        if not isinstance(decided, Decided):
            return decided
        job = self.job(decided)
        execute_all([job])
        return self.conclude(decided, job.report)

    def decide(
        self, broker_now: datetime | None = None, read_at: float | None = None
    ) -> Decided | CycleOutcome:
        """This bar's plan, journaled (or the interrupted one's, to finish); an outcome when there is
        nothing to send (decided before, waiting, skipped). ``read_at``: our monotonic time just
        before ``broker_now`` was read (the lag's anchor)."""
        self._t0 = self.clock.monotonic() if read_at is None or broker_now is None else read_at
        now = broker_now or self.broker_now()
        bar = self.expected_bar(now)
        existing = self.journal.get_cycle(bar)
        if existing is not None and existing.status != CycleStatus.EXECUTING:
            return CycleOutcome("idle", bar)
        if existing is not None:
            return self._resume(bar, existing.plan or {}, now)
        return self._decide(bar, now)

    def job(self, decided: Decided) -> Job:
        after = decided.bar + self.config.timeframe - ORDERS_AFTER_MARGIN
        return Job(self.executor, decided.bar, decided.lines, decided.prices, orders_after=after)

    def conclude(self, decided: Decided, report: ExecutionReport) -> CycleOutcome:
        """The cycle's end in the journal, then the checks that need not delay any order: the parity
        alarm and the env's step at the bars skipped since the last decision."""
        outcome = self._finish(decided.bar, report, decided.prices, decided.now)
        review = decided.review
        if review is not None:
            if self.parity is not None:
                outcome.parity = self.parity.check(decided.bar, review.frames, review.account, review.raw)
            if review.skipped:
                features = self.parity.features if self.parity is not None else ticker_features
                record_skipped(
                    self.journal,
                    self.spec,
                    self.policy,
                    review.frames,
                    review.account,
                    review.anv,
                    review.skipped,
                    features,
                )
        return outcome

    # -- a new decision ---------------------------------------------------------------------------
    def _decide(self, bar: datetime, now: datetime) -> Decided | CycleOutcome:
        """Bars → state → action → plan, journaled before any order is sent; a refusal skips the bar."""
        fetched = self._aligned(bar, now)
        if isinstance(fetched, CycleOutcome):
            return fetched
        aligned, frames = fetched
        prices = np.asarray(aligned.prices, dtype=np.float64)
        anv = self._normaliser(prices, bar)
        account = load_account(self.journal, self.spec.profile.initial_capital, len(self.tickers))
        try:
            state = build_state(
                account.cash, account.holdings, aligned.state_rows(self.spec.lookback), self.spec.norms
            )
            raw = self._act(state)
        except InvariantViolation as exc:
            return self._skip(bar, f"refused: {exc}")
        review = Review(frames, account, raw, anv, self.journal.skipped_since_decision(SKIPPED_ENV))
        plan = plan_step(raw, account, prices, anv, self.spec.profile)
        orders, limits = plan.orders, None
        if self.risk is not None:
            orders, limits = self.risk.screen(bar, orders, prices, account)
        lines = [OrderLine(o.index, o.side, o.qty, o.kind) for o in orders]
        plan_json: dict[str, Any] = {
            "prices": prices.tolist(),
            "scaled_action": [float(x) for x in plan.scaled_action],
            "orders": [{"index": o.index, "side": o.side, "qty": o.qty, "kind": o.kind} for o in lines],
            "dropped_gaps": {t: [x.isoformat() for x in v][-5:] for t, v in aligned.matrix.dropped.items()},
            # The env's step from the same books at these closes (before risk cuts), and the cooldown
            # it started from, so the audit can redo the step at the next close, where training fills.
            "env_after": {"cash": plan.after.cash, "holdings": [float(h) for h in plan.after.holdings]},
            "cooldown_before": [float(c) for c in account.cooldown],
        }
        if limits is not None and (limits["halted"] or limits["cuts"]):
            plan_json["risk"] = limits
        self.journal.begin_cycle(
            bar,
            self.spec.model_id,
            hashlib.sha256(state.tobytes()).hexdigest(),
            [float(x) for x in raw],
            plan_json,
            as_tuple(with_cooldown(account, plan.after.cooldown)),
        )
        log.info(
            "decision",
            bar=bar.isoformat(),
            action=[round(float(x), 4) for x in raw],
            orders=plan_json["orders"],
        )
        crash_point("cycle_journaled")
        return Decided(bar, now, lines, prices.tolist(), review)

    def _aligned(
        self, bar: datetime, now: datetime
    ) -> tuple[Aligned, dict[str, pd.DataFrame]] | CycleOutcome:
        """The bars this decision reads, or why not yet (a late bar: ``waiting``) or not at all (skipped)."""
        cfg = self.config
        start = self.history_start(bar)
        frames = (self.bar_source or self.broker.get_bars)(list(self.tickers), cfg.timeframe, start, now)
        try:
            aligned = self.aligner(
                frames,
                self.tickers,
                now - timedelta(seconds=cfg.grace_s),
                cfg.timeframe,
                lookback=self.spec.lookback,
                max_wait=cfg.gap_wait,
            )
        except BarGap as gap:
            if gap.retry_until is None:
                return self._skip(bar, f"gap: {gap}")
            log.info(
                "bar_gap_waiting",
                bar=bar.isoformat(),
                missing=list(gap.missing),
                until=gap.retry_until.isoformat(),
            )
            return CycleOutcome("waiting", bar, message=str(gap))
        except StaleDataError as exc:
            return self._skip(bar, f"bad data: {exc}")
        if not aligned.warmup_ok:
            log.warning(
                "short_indicator_history",
                bar=bar.isoformat(),
                need=300,
                note="indicators may not have converged to training values",
            )
        return aligned, frames

    def _act(self, state: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        """The actor's raw action; a wrong shape, a non-finite value or an actor that raises is refused
        (``InvariantViolation``: the bar is skipped in this model's journal, other models trade on)."""
        try:
            raw = np.asarray(self.policy.act(state), dtype=np.float32)
        except Exception as exc:  # whatever the actor raised, this model skips this bar
            log.error("actor_raised", model=self.spec.model_id, error=f"{type(exc).__name__}: {exc}")
            raise InvariantViolation(f"actor raised {type(exc).__name__}: {exc}") from exc
        if raw.shape != (len(self.tickers),) or not np.isfinite(raw).all():
            raise InvariantViolation(f"actor returned {raw.tolist()} (shape {raw.shape})")
        return raw

    def _resume(self, bar: datetime, plan: dict[str, Any], now: datetime) -> Decided:
        log.warning("cycle_resumed", bar=bar.isoformat(), note="finishing an interrupted cycle")
        lines = [
            OrderLine(int(o["index"]), o["side"], float(o["qty"]), str(o["kind"]))
            for o in plan.get("orders", [])
        ]
        return Decided(bar, now, lines, [float(p) for p in plan.get("prices", [])])

    def _finish(
        self, bar: datetime, report: ExecutionReport, prices: list[float], now: datetime
    ) -> CycleOutcome:
        if report.stopped:
            message = "stopped at a safe point mid-cycle; the restarted worker finishes or reconciles it"
            return CycleOutcome("refused", bar, message=message, report=report)
        lag = self._lag(bar, now, report)
        message = "" if not report.unresolved else f"{report.unresolved} order(s) unresolved"
        status = CycleStatus.PARTIAL if report.unresolved else CycleStatus.DONE
        self.journal.finish_cycle(bar, status, None if lag is None else lag.wall_s, message)
        account = load_account(self.journal, self.spec.profile.initial_capital, len(self.tickers))
        equity = account.equity(np.asarray(prices, dtype=np.float64)) if prices else None
        timing = {} if lag is None else {"lag_s": _round(lag.wall_s), "lag_broker_s": _round(lag.broker_s)}
        log.info(
            "cycle_done",
            bar=bar.isoformat(),
            **timing,
            submitted=report.submitted,
            dropped=report.dropped,
            unresolved=report.unresolved,
            equity=equity,
        )
        return CycleOutcome("traded", bar, lag, message, report, equity, self._positions(account.holdings))

    def _lag(self, bar: datetime, now: datetime, report: ExecutionReport) -> OrderLag | None:
        """Bar close → last order sent; None when this cycle sent nothing (no lag to speak of).

        ``now`` is the broker time read at ``_t0`` (our monotonic clock): the broker seconds since the
        close are turned into ours by the measured rate, then our seconds from ``_t0`` to the send added.
        """
        if report.last_submit_mono is None:
            return None
        before = (now - (bar + self.config.timeframe)).total_seconds()  # broker seconds at _t0
        ours = report.last_submit_mono - self._t0
        wall = self.pace.wall_seconds(before) + ours if self.pace.measured else None
        sent_at = report.last_submit_at
        broker = (sent_at - bar - self.config.timeframe).total_seconds() if sent_at else None
        return OrderLag(wall, broker if broker is not None else before + ours * self.pace.rate)

    def _positions(self, holdings: Any) -> dict[str, float]:
        return {t: float(h) for t, h in zip(self.tickers, holdings, strict=True)}

    def _skip(self, bar: datetime, message: str) -> CycleOutcome:
        log.warning("cycle_skipped", bar=bar.isoformat(), reason=message)
        self.journal.skip_cycle(bar, self.spec.model_id, message)
        return CycleOutcome("skipped", bar, message=message)

    def _normaliser(self, prices: np.ndarray[Any, Any], bar: datetime) -> np.ndarray[Any, Any]:
        """Computed from the first bar this model ever traded on, then read back forever."""
        record = self.journal.get_normaliser(self.spec.model_id)
        if record is None:
            anv = action_norm_vector(prices, self.spec.norms.action)
            record = self.journal.save_normaliser(
                self.spec.model_id, self.tickers, prices.tolist(), anv.tolist(), self.spec.norms.action, bar
            )
            log.info("action_normaliser_saved", p0=list(record.p0), anv=list(record.anv), bar=bar.isoformat())
        elif tuple(record.tickers) != tuple(self.tickers):
            raise InvariantViolation(
                f"journal normaliser is for tickers {record.tickers}, model trades {self.tickers}"
            )
        return np.asarray(record.anv, dtype=np.float64)


def _round(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 3)
