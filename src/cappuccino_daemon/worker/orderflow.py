"""A bar's orders for every model at once: all sells, one wait, all buys, one wait.

Each model's rules stay its own executor's (sizing, exactly-once submits, its journal); what is shared
is the order of the phases and the broker reads around them:
- every model's sells go out first, each model's as soon as it has decided (``OrderFlow.add``), sized
  from one positions read that each sell draws down in turn (two models never sell the same coins);
- one wait settles them all (one list read per poll, ``await_many``);
- then every model's buys, sized against its virtual cash and one account cash read that each buy
  draws down in turn (``BuyingPower``: a bar's buys never ask for more cash than the account had);
- one wait for the buys; what is open at the fill deadline is canceled (``fills.py``).

So a tournament's last order leaves after one wait for fills, not one wait per model, and a model of
one is the same path with one job. A model whose sells are not final by the deadline sends no buys
this bar (its cash is not known); the others buy on. A stop request ends every job at its next safe
point.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from cappuccino_daemon.journal.store import IntentRecord
from cappuccino_daemon.logsetup import get_logger
from cappuccino_daemon.states import IntentStatus
from cappuccino_daemon.worker.crashpoints import crash_point
from cappuccino_daemon.worker.executor import BuyingPower, ExecutionReport, Executor, OrderLine, await_many
from cappuccino_daemon.worker.fills import cancel_at_deadline

log = get_logger(__name__)


@dataclass
class Job:
    """One model's orders for one bar; ``orders_after``: no order of it was sent before (bar close)."""

    executor: Executor
    bar: datetime
    lines: Sequence[OrderLine]
    prices: Sequence[float]
    orders_after: datetime | None = None
    report: ExecutionReport = field(default_factory=ExecutionReport)

    def side(self, side: str) -> list[OrderLine]:
        return [line for line in self.lines if line.side == side]


def execute_one(
    executor: Executor, bar: datetime, lines: Sequence[OrderLine], prices: Sequence[float]
) -> ExecutionReport:
    """One model's orders (sells, wait, buys, wait); safe to call again for the same bar after a crash."""
    job = Job(executor, bar, lines, prices)
    execute_all([job])
    return job.report


def execute_all(jobs: Sequence[Job], concurrency: int = 1) -> None:
    """Every job's sells, then every job's buys; each job's ``report`` says how its orders ended."""
    with OrderFlow(concurrency) as flow:
        for job in jobs:
            flow.add(job)
        flow.finish()


class OrderFlow:
    """One bar's orders of many models: each model's sells leave as soon as it has decided (while the
    next model decides), its buys once every model's sells have ended.

    Planning (sizing against the shared positions and cash) happens in the caller's thread, one model
    after the other; what runs in the pool is only each model's ``Executor.send``: its submits and
    their journal entries, on its own journal, up to ``concurrency`` models at once. A round trip to
    Alpaca is tens of milliseconds, so a hundred models' orders sent one at a time would take seconds.
    Leaving the ``with`` block waits for every send in flight, even when a decision raised, so no
    submit is ever cut from its journal entry.
    """

    def __init__(self, concurrency: int = 1) -> None:
        self.concurrency = max(1, concurrency)
        self._pool: ThreadPoolExecutor | None = None
        self._jobs: list[Job] = []
        self._sends: list[Future[list[str]]] = []
        self._sellable: dict[str, Decimal] | None = None

    def __enter__(self) -> OrderFlow:
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def add(self, job: Job) -> None:
        """Plan the job's sells against the coins no sell of this bar has claimed yet, start sending."""
        self._jobs.append(job)
        sells = job.side("sell")
        if not sells:
            return
        if self._sellable is None:
            positions = job.executor.broker.get_positions()
            self._sellable = {symbol: pos.qty_available for symbol, pos in positions.items()}
        planned = job.executor.plan_sells(job.bar, sells, job.prices, job.report, self._sellable)
        self._sends.append(self._start(job, planned))

    def finish(self) -> None:
        """Wait for every sell, then plan and send every buy and wait for them."""
        selling = [job for job in self._jobs if job.side("sell")]
        sent = [future.result() for future in self._sends]
        self._after_sells(selling, _wait(selling, sent))
        ready = [job for job in self._jobs if not job.report.stopped and not job.report.unresolved]
        if ready:
            crash_point("before_buys")
        self._buys(ready)
        for job in self._jobs:
            job.report.filled = sum(
                1 for i in job.executor.journal.intents(job.bar) if i.status == IntentStatus.FILLED
            )

    def _start(self, job: Job, planned: list[IntentRecord]) -> Future[list[str]]:
        if self.concurrency == 1 or not planned:
            done: Future[list[str]] = Future()
            done.set_result(job.executor.send(planned, job.report))
            return done
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="orders")
        return self._pool.submit(job.executor.send, planned, job.report)

    def _after_sells(self, selling: Sequence[Job], still: Sequence[list[IntentRecord]]) -> None:
        for job, open_sells in zip(selling, still, strict=True):
            if open_sells:
                job.report.unresolved = len(open_sells)
                log.warning(
                    "sells_not_final", bar=job.bar.isoformat(), open=[i.client_order_id for i in open_sells]
                )
        for job in self._jobs:
            if job.report.stopped or job.executor.stop.is_set():
                job.report.stopped = True
                log.warning("cycle_paused", bar=job.bar.isoformat(), at="sells", reason="stop requested")

    def _buys(self, jobs: Sequence[Job]) -> None:
        buying = [job for job in jobs if job.side("buy")]
        if not buying:
            return
        pool = BuyingPower(jobs[0].executor.broker.get_account().cash)
        sends = [
            self._start(job, job.executor.plan_buys(job.bar, job.side("buy"), job.prices, job.report, pool))
            for job in buying
        ]
        still = _wait(buying, [future.result() for future in sends])
        for job, open_buys in zip(buying, still, strict=True):
            if job.report.stopped or (open_buys and job.executor.stop.is_set()):
                job.report.stopped = True
                log.warning("cycle_paused", bar=job.bar.isoformat(), at="buys", reason="stop requested")
            job.report.unresolved = len(open_buys)


def _wait(jobs: Sequence[Job], sent: Sequence[list[str]]) -> list[list[IntentRecord]]:
    """One bounded wait for every job's orders; what is open at the deadline is canceled (fills.py)."""
    groups = [(job.executor, ids) for job, ids in zip(jobs, sent, strict=True) if ids]
    if not groups:
        return [[] for _ in jobs]
    afters = [job.orders_after for job, ids in zip(jobs, sent, strict=True) if ids]
    after = None if any(a is None for a in afters) else min(a for a in afters if a is not None)
    waited = iter(await_many(groups, orders_after=after))
    still = [next(waited) if ids else [] for ids in sent]
    for job, open_intents in zip(jobs, still, strict=True):
        if open_intents and not job.executor.stop.is_set():
            open_intents[:] = cancel_at_deadline(job.executor, open_intents)  # book what filled
    return still
