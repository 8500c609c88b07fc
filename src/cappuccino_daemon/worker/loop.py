"""The worker's life: STARTING → RECONCILING → TRADING (waiting between bars) → STOPPING.

It wakes at each bar close plus the grace by the BROKER's clock (``--poll-interval`` caps every sleep,
so a missed wake-up costs at most one poll), reconciles before each new bar, runs one cycle, and
writes the heartbeat on every poll and after every cycle. The heartbeat also says whether bars get
resolved (``progress``, worker/progress.py): a worker that polls but refuses every bar is ``stalled``.
SIGTERM/SIGINT only set a flag: a cycle in progress finishes (its waits are bounded), so the process
never stops between a submit and its journal entry; the flag is checked between cycles and interrupts
the idle sleep at once.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from types import FrameType

from cappuccino_daemon.alerts.sender import AlertSender
from cappuccino_daemon.errors import (
    EX_SOFTWARE,
    BrokerRejectedError,
    InvariantViolation,
    StaleDataError,
    TransientBrokerError,
)
from cappuccino_daemon.heartbeat import Heartbeat, write_heartbeat
from cappuccino_daemon.journal.halts import current_halt
from cappuccino_daemon.logsetup import get_logger
from cappuccino_daemon.policy.risk import Breach
from cappuccino_daemon.states import WORKER_PHASES, CycleStatus, WorkerPhase
from cappuccino_daemon.worker.account import load_account
from cappuccino_daemon.worker.alerting import DailySummary
from cappuccino_daemon.worker.cycle import ClockSkewError, Cycle, CycleOutcome, Decided
from cappuccino_daemon.worker.fees_audit import FeeAuditor, FeeBook
from cappuccino_daemon.worker.metrics import WorkerMetrics
from cappuccino_daemon.worker.orderflow import Job, OrderFlow
from cappuccino_daemon.worker.progress import ProgressReport, ProgressTracker
from cappuccino_daemon.worker.reconcile import Book, reconcile_books
from cappuccino_daemon.worker.tournament import SharedBars, combine

log = get_logger(__name__)
MISSED_BAR = (
    "not decided: no cycle ran for this bar before the next one closed (worker stopped, restarting or down, "
    "or every read refused; see the log)"
)


@dataclass
class LoopStatus:
    phase: WorkerPhase = WorkerPhase.STARTING
    cycles: int = 0
    last_bar: datetime | None = None
    equity: float | None = None
    lag_s: float | None = None
    message: str = ""


class WorkerLoop:
    def __init__(
        self,
        cycle: Cycle,
        heartbeat_file: Path | None,
        poll_interval_s: float,  # no default here: [worker] poll_interval_s (config.py) is the one
        max_cycles: int | None = None,
        stop: threading.Event | None = None,
        metrics: WorkerMetrics | None = None,
        others: Sequence[Cycle] = (),
    ) -> None:
        """``cycle`` is the first model's (its broker, clock and timeframe serve all); ``others`` are the
        rest of a tournament's models, on the same account and timeframe (worker/tournament.py)."""
        self.cycle = cycle
        self.cycles = [cycle, *others]
        self.metrics = metrics or WorkerMetrics()  # a no-op unless [metrics] enabled = true
        self.pace = cycle.pace  # one estimate: sleeps and the logged lag use the same rate
        self.heartbeat_file = heartbeat_file
        self.poll_interval_s = poll_interval_s
        self.max_cycles = max_cycles
        self.stop = stop or threading.Event()
        self.status = LoopStatus()
        self._reconciled_for: datetime | None = None
        self.account_floor: float | None = None  # [risk] min_account_equity
        self.order_concurrency = 1  # [worker] order_concurrency (set by build_loop)
        self.alerts: AlertSender | None = None  # set by ``attach_alerts``
        self.summary: DailySummary | None = None
        self._floor_checked_for: datetime | None = None
        self.progress = ProgressTracker(cycle.clock.monotonic())
        others_fees = [FeeBook(c.journal, c.spec.profile, c.tickers) for c in others]
        self.fees = FeeAuditor(cycle.broker, cycle.journal, cycle.spec.profile, cycle.tickers, others_fees)

    # -- signals ----------------------------------------------------------------------------------
    def install_signal_handlers(self) -> None:
        def handler(signum: int, _frame: FrameType | None) -> None:
            log.info("stop_requested", signal=signal.Signals(signum).name)
            self.stop.set()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    # -- heartbeat --------------------------------------------------------------------------------
    def _set_phase(self, phase: WorkerPhase) -> None:
        """Move along ``WORKER_PHASES`` (a move it does not list raises ``InvalidTransition``); log real
        moves, the TRADING/WAITING flip of every poll at debug level."""
        previous = self.status.phase
        if phase == previous:
            return
        self.status.phase = WORKER_PHASES.check(previous, phase)
        routine = {previous, phase} == {WorkerPhase.TRADING, WorkerPhase.WAITING}
        (log.debug if routine else log.info)("phase", phase=phase, previous=previous)
        if phase == WorkerPhase.STOPPING:
            self.beat()  # step() beats after every poll; these two happen outside a poll

    def beat(self) -> None:
        if self.heartbeat_file is None:
            return
        progress = self.progress_report()
        write_heartbeat(
            self.heartbeat_file,
            Heartbeat(
                time=self.cycle.clock.now(),
                pid=os.getpid(),
                phase=self.status.phase,
                cycles=self.status.cycles,
                last_bar=self.status.last_bar,
                equity=self.status.equity,
                positions=self._positions(),
                lag_s=self.status.lag_s,
                message=self.status.message,
                progress=progress.state,
                last_progress_at=progress.last_progress_at,
                stall_cause=progress.cause,
            ),
        )

    def _positions(self) -> dict[str, float]:
        """The virtual holdings per symbol, summed over the models (what the broker should show)."""
        out: dict[str, float] = {}
        for c in self.cycles:
            account = load_account(c.journal, c.spec.profile.initial_capital, len(c.tickers))
            for symbol, qty in zip(c.tickers, account.holdings, strict=True):
                out[symbol] = out.get(symbol, 0.0) + float(qty)
        return out

    # -- progress ---------------------------------------------------------------------------------
    def _bar_wall_s(self) -> float:
        """One bar interval in wall seconds (the accelerated emulator's bars pass faster)."""
        return self.pace.wall_seconds(self.cycle.config.timeframe.total_seconds())

    def progress_report(self) -> ProgressReport:
        return self.progress.assess(self.cycle.clock.monotonic(), self._bar_wall_s())

    def _track_progress(self, outcome: CycleOutcome) -> None:
        """A resolved bar (decided, skipped with a reason, or already decided) is progress; anything
        else is not, and its message becomes the cause. A stall is logged once per bar interval."""
        mono = self.cycle.clock.monotonic()
        if outcome.kind in ("traded", "skipped", "idle"):
            if self.progress.progressed(mono, self.cycle.clock.now()):
                log.info("progress_resumed", bar=outcome.bar.isoformat() if outcome.bar else None)
            return
        self.progress.refused(outcome.message or f"cycle {outcome.kind}")
        if self.progress.should_log(mono, self._bar_wall_s()):
            report = self.progress_report()
            log.error(
                "worker_stalled",
                cause=report.cause,
                no_progress_s=round(report.silent_s, 3),
                last_progress_at=report.last_progress_at.isoformat() if report.last_progress_at else None,
                rule="no bar decided or skipped for two bar intervals",
            )

    # -- phases -----------------------------------------------------------------------------------
    def reconcile_now(self, broker_now: datetime) -> None:
        current = self.cycle.expected_bar(broker_now)
        for c in self.cycles:
            self._journal_missed_bars(c, current)
        books = [
            Book(c.journal, c.executor, c.spec.model_id, c.tickers, c.spec.profile.initial_capital)
            for c in self.cycles
        ]
        reconcile_books(self.cycle.broker, books, current, since=self._reconciled_for)
        for c in self.cycles:
            for old in c.journal.cycles(CycleStatus.EXECUTING):
                if old.bar_time < current:
                    log.warning(
                        "cycle_interrupted", bar=old.bar_time.isoformat(), rule="its orders were reconciled"
                    )
                    c.journal.finish_cycle(
                        old.bar_time, CycleStatus.INTERRUPTED, None, "worker restarted after its bar"
                    )
        self._reconciled_for = current

    def _journal_missed_bars(self, cycle: Cycle, current: datetime) -> None:
        """Bars that closed with no cycle (worker down or restarting, or every read refused) are skipped
        with that reason, so the journal explains every bar since the first one."""
        journal, last = cycle.journal, cycle.journal.last_cycle()
        if last is None or last.bar_time >= current:
            return
        missed = journal.skip_missed(
            last.bar_time, current, cycle.config.timeframe, cycle.spec.model_id, MISSED_BAR
        )
        if missed:
            log.warning(
                "bars_missed",
                model=cycle.spec.model_id,
                count=len(missed),
                first=missed[0].isoformat(),
                last=missed[-1].isoformat(),
            )

    def _needs_reconcile(self, bar: datetime) -> bool:
        """Always at start (even if this bar was decided before a restart), then once per bar."""
        if bar == self._reconciled_for:
            return False
        if self._reconciled_for is None:
            return True
        existing = [c.journal.get_cycle(bar) for c in self.cycles]
        return any(e is None or e.status == CycleStatus.EXECUTING for e in existing)

    def _prefetch_bars(self, broker_now: datetime) -> None:
        """A tournament's bar download for the decisions, fetched while the account is reconciled."""
        bars = self.cycle.bar_source
        if isinstance(bars, SharedBars):
            start = self.cycle.history_start(self.cycle.expected_bar(broker_now))
            bars.prefetch(self.cycle.config.timeframe, start, broker_now)

    def _run_models(self, broker_now: datetime, read_at: float) -> CycleOutcome:
        self._check_account_floor(self.cycle.expected_bar(broker_now))
        decided: list[Decided | CycleOutcome] = []
        jobs: dict[int, Job] = {}
        senders = self.order_concurrency if len(self.cycles) > 1 else 1  # one model sends from here
        with OrderFlow(senders) as flow:  # sells leave as each model decides
            for i, c in enumerate(self.cycles):
                decided.append(c.decide(broker_now, read_at))
                if isinstance(decided[-1], Decided):
                    jobs[i] = c.job(decided[-1])
                    flow.add(jobs[i])
            flow.finish()  # every sell ended, then every buy
        outcomes = [
            c.conclude(d, jobs[i].report) if isinstance(d, Decided) else d
            for i, (c, d) in enumerate(zip(self.cycles, decided, strict=True))
        ]
        self._daily_summary(outcomes)
        if self.metrics.enabled:
            for c, o in zip(self.cycles, outcomes, strict=True):
                if o.kind in ("traded", "skipped") and o.bar is not None:
                    statuses = [i.status for i in c.journal.intents(o.bar)]
                    halted = c.risk is not None and current_halt(c.journal) is not None
                    self.metrics.record_model(c.spec.model_id, o.equity, statuses, halted, o.parity)
        return combine(self.cycles, outcomes)

    def attach_alerts(self, sender: AlertSender, daily_summary: bool = True) -> None:
        """Halts, parity alarms and (``daily_summary``) one message per model each UTC day."""
        self.alerts, self.summary = sender, DailySummary() if daily_summary else None
        for c in self.cycles:
            if c.risk is not None:
                c.risk.on_alert = sender.post
            if c.parity is not None:
                c.parity.on_alert = sender.post

    def _daily_summary(self, outcomes: Sequence[CycleOutcome]) -> None:
        bars = [o.bar for o in outcomes if o.kind == "traded" and o.bar is not None]
        if self.alerts is None or self.summary is None or not bars:
            return
        closed = max(bars) + self.cycle.config.timeframe
        if not self.summary.due(closed):
            return
        rows = [
            (c.spec.model_id, o.equity, c.spec.profile.initial_capital, current_halt(c.journal) is not None)
            for c, o in zip(self.cycles, outcomes, strict=True)
        ]
        for alert in self.summary.alerts(rows, closed.date()):
            self.alerts.post(alert)

    def _check_account_floor(self, bar: datetime) -> None:
        """``min_account_equity``: once per bar, the broker's equity; below the floor every model halts."""
        floor = self.account_floor
        if floor is None or bar == self._floor_checked_for:
            return
        equity = self.cycle.broker.get_account().equity
        self._floor_checked_for = bar
        if equity >= floor:
            return
        breach = Breach("min_account_equity", equity, floor)
        for c in self.cycles:
            if c.risk is not None:
                c.risk.halt(bar, breach, equity)

    def step(self) -> CycleOutcome:
        """One poll: reconcile if a new bar is due, run the cycle, publish the heartbeat."""
        try:
            read_at = self.cycle.clock.monotonic()
            broker_now = self.cycle.broker_now()
            self.pace.observe(read_at, broker_now)
            if self._needs_reconcile(self.cycle.expected_bar(broker_now)):
                self._prefetch_bars(broker_now)
                self._set_phase(WorkerPhase.RECONCILING)
                self.reconcile_now(broker_now)
            self._set_phase(WorkerPhase.TRADING)
            outcome = self._run_models(broker_now, read_at)
            # Once per broker day, virtual vs booked fees: after the bar's orders, which it never delays.
            self.fees.maybe_run(broker_now)
        except ClockSkewError as exc:
            log.error("clock_skew_refused", error=str(exc))
            outcome = CycleOutcome("refused", message=str(exc))
        except TransientBrokerError as exc:
            log.warning("broker_unavailable", error=str(exc))
            outcome = CycleOutcome("refused", message=f"broker unavailable: {exc}")
        except BrokerRejectedError as exc:
            # A read the broker refuses (4xx other than auth) will not fix itself by crashing; keep the
            # heartbeat going, say it every poll, trade nothing until it clears.
            log.error("broker_rejected_read", error=str(exc), status=exc.status_code)
            outcome = CycleOutcome("refused", message=f"broker refused a request: {exc}")
        except StaleDataError as exc:
            log.warning("stale_data_refused", error=str(exc))
            outcome = CycleOutcome("refused", message=str(exc))
        if outcome.kind in ("traded", "skipped"):
            self.status.cycles += 1
            self.status.last_bar = outcome.bar
            if outcome.equity is not None:
                self.status.equity = outcome.equity
            lag_s = None if outcome.lag is None else outcome.lag.wall_s  # only bars that sent an order
            if lag_s is not None:
                self.status.lag_s = lag_s
            if self.metrics.enabled and outcome.bar is not None:
                statuses = [i.status for c in self.cycles for i in c.journal.intents(outcome.bar)]
                self.metrics.record_cycle(outcome.bar, lag_s, outcome.equity, statuses)
        self.status.message = outcome.message
        self._track_progress(outcome)
        if outcome.kind in ("idle", "traded", "skipped"):
            self._set_phase(WorkerPhase.WAITING)
        self.beat()
        return outcome

    def _sleep_s(self, outcome: CycleOutcome) -> float:
        """Until the next bar close + grace by the broker's clock, capped by the poll interval.

        Until the broker clock's rate is measured the wait is also capped by the span that measures it:
        taken at rate 1.0, a wait on a 600x emulator clock would sleep through many bars.
        """
        if outcome.kind in ("waiting", "refused"):
            return self.poll_interval_s
        try:
            now = self.cycle.broker.now()
            self.pace.observe(self.cycle.clock.monotonic(), now)
        except TransientBrokerError:
            return self.poll_interval_s
        bar = self.cycle.expected_bar(now)
        due = bar + 2 * self.cycle.config.timeframe
        wait = self.pace.wall_seconds(
            (due + timedelta(seconds=self.cycle.config.grace_s) - now).total_seconds()
        )
        cap = self.poll_interval_s if self.pace.measured else min(self.poll_interval_s, self.pace.min_span_s)
        return max(0.05, min(wait, cap))

    def run(self) -> int:
        try:
            while not self.stop.is_set():
                outcome = self.step()
                if self.max_cycles is not None and self.status.cycles >= self.max_cycles:
                    log.info("max_cycles_reached", cycles=self.status.cycles)
                    break
                self.stop.wait(self._sleep_s(outcome))
        except InvariantViolation as exc:
            log.error("invariant_violation", error=str(exc))
            self.status.message = f"invariant violation: {exc}"
            self._set_phase(WorkerPhase.STOPPING)
            return EX_SOFTWARE
        finally:
            self.metrics.close()
            if self.alerts is not None:
                self.alerts.close()
        self._set_phase(WorkerPhase.STOPPING)
        log.info("worker_stopped", cycles=self.status.cycles)
        return 0
