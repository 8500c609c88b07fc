"""Wiring: settings + flags → model, broker, journal, executor, cycle, loop. Heavy imports live here."""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

from cappuccino_daemon.bars import timeframe_delta
from cappuccino_daemon.broker.factory import open_broker
from cappuccino_daemon.broker.ports import Broker
from cappuccino_daemon.clock import Clock, SystemClock
from cappuccino_daemon.config import (
    NO_LIMITS,
    DaemonSettings,
    ModelEntry,
    RiskLimits,
    SupervisorSection,
    WorkerSection,
)
from cappuccino_daemon.errors import ConfigError, TransientBrokerError
from cappuccino_daemon.journal.store import Journal
from cappuccino_daemon.layout import StateLayout
from cappuccino_daemon.logsetup import get_logger
from cappuccino_daemon.model.spec import ModelSpec, Policy
from cappuccino_daemon.policy.features import WARMUP_BARS
from cappuccino_daemon.worker.accountguard import guard_account
from cappuccino_daemon.worker.books_check import LagPolicy
from cappuccino_daemon.worker.cycle import Cycle, CycleConfig
from cappuccino_daemon.worker.executor import Executor
from cappuccino_daemon.worker.loop import WorkerLoop
from cappuccino_daemon.worker.parity import ParityCheck, ReplayFeatures
from cappuccino_daemon.worker.riskguard import RiskGuard
from cappuccino_daemon.worker.tournament import SharedBars

log = get_logger(__name__)


_DEFAULTS = WorkerSection()  # the defaults live in config.py only; tests build options field by field


@dataclass(frozen=True)
class WorkerOptions:
    """The worker's component configuration; the CLI builds it from settings with ``worker_options``."""

    model_dir: Path
    tickers: tuple[str, ...] | None
    state_dir: Path
    broker_kind: str = "emulator"
    broker_url: str | None = None
    data_url: str | None = None
    poll_interval_s: float = _DEFAULTS.poll_interval_s
    history_hours: int = _DEFAULTS.history_hours
    grace_s: float = _DEFAULTS.bar_close_grace_s
    max_clock_skew_s: float | None = _DEFAULTS.max_clock_skew_s
    http_timeout_s: float = _DEFAULTS.http_timeout_s
    request_budget_per_min: int = _DEFAULTS.request_budget_per_min
    position_wait_s: float = _DEFAULTS.position_wait_s
    asset_rules_max_age_s: float = _DEFAULTS.asset_rules_max_age_s
    parity_check_every: int = _DEFAULTS.parity_check_every
    order_concurrency: int = _DEFAULTS.order_concurrency
    heartbeat_file: Path | None = None
    journal_file: Path | None = None
    max_cycles: int | None = None
    fill_timeout_s: float = _DEFAULTS.fill_timeout_s
    gap_wait_s: float = _DEFAULTS.gap_wait_s
    exchange_ready_file: Path | None = None  # embedded emulator: wait for this before the first request
    exchange_wait_s: float = 2 * SupervisorSection().emulator_ready_timeout_s
    profile: str | None = None  # [model] profile: replaces the model's env profile
    capital: float | None = None  # [model] capital: the virtual sub-account's USD
    model_name: str = ""
    models: tuple[ModelEntry, ...] = ()  # a tournament: every model; empty: the one model above
    config_file: Path | None = None  # named in the account lock, for a second trader's refusal
    risk: RiskLimits = NO_LIMITS  # the single model's limits (a tournament's are in ``models``)
    min_account_equity: float | None = None  # [risk]: below it every model halts
    lock_dir: Path | None = None  # [paths] locks; None: the host default (accountlock.py)


def worker_options(
    settings: DaemonSettings,
    *,
    journal_file: Path | None = None,
    max_cycles: int | None = None,
    max_clock_skew_flag: float | None = None,
    exchange_wait_s: float | None = None,
) -> WorkerOptions:
    """The worker's composition root: every option derived from the settings (flags already applied).

    The clock-skew guard is on by default for alpaca-paper only (the emulator's clock is simulated);
    ``--max-clock-skew`` forces it on (> 0) or off (<= 0) for either. With ``[broker] kind = "emulator"``
    and no url, the worker talks to ``[emulator] host:port``, where ``run`` starts the exchange.
    """
    worker, broker, emu = settings.worker, settings.broker, settings.emulator
    models = settings.models_list
    model = models[0]  # the fields of the first; ``models`` carries every one (a tournament)
    skew = max_clock_skew_flag
    if skew is None and broker.kind == "alpaca-paper":
        skew = worker.max_clock_skew_s
    url = broker.url
    if url is None and broker.kind == "emulator":
        url = f"http://{emu.host}:{emu.port}"
    return WorkerOptions(
        model_dir=Path(model.dir).resolve(),
        tickers=model.tickers,
        profile=model.profile,
        capital=model.capital,
        model_name=model.name,
        models=models,
        risk=model.risk,
        min_account_equity=settings.risk.min_account_equity,
        config_file=settings.source_file,
        lock_dir=settings.paths.locks,
        state_dir=Path(settings.paths.state).resolve(),
        broker_kind=broker.kind,
        broker_url=url,
        data_url=broker.data_url,
        poll_interval_s=worker.poll_interval_s,
        history_hours=worker.history_hours,
        grace_s=worker.bar_close_grace_s,
        max_clock_skew_s=skew if skew and skew > 0 else None,
        http_timeout_s=worker.http_timeout_s,
        request_budget_per_min=worker.request_budget_per_min,
        position_wait_s=worker.position_wait_s,
        asset_rules_max_age_s=worker.asset_rules_max_age_s,
        parity_check_every=worker.parity_check_every,
        order_concurrency=worker.order_concurrency,
        heartbeat_file=worker.heartbeat_file,
        journal_file=journal_file,
        max_cycles=max_cycles,
        fill_timeout_s=worker.fill_timeout_s,
        gap_wait_s=worker.gap_wait_s,
        exchange_ready_file=worker.exchange_ready_file,
        exchange_wait_s=exchange_wait_s or 2 * settings.supervisor.emulator_ready_timeout_s,
    )


def history_bars(history_hours: int, timeframe: timedelta) -> int:
    """Bars of history to fetch; raised to the indicator warm-up with a warning."""
    bars = int(timedelta(hours=history_hours) / timeframe)
    if bars < WARMUP_BARS:
        log.warning(
            "history_raised",
            requested_hours=history_hours,
            requested_bars=bars,
            using_bars=WARMUP_BARS,
            reason="indicators need >= 300 bars to match training",
        )
        return WARMUP_BARS
    return bars


def make_broker(opts: WorkerOptions) -> Broker:
    return open_broker(
        opts.broker_kind, opts.broker_url, opts.data_url, opts.http_timeout_s, opts.request_budget_per_min
    )


def journal_path(opts: WorkerOptions, spec: ModelSpec) -> Path:
    return opts.journal_file or StateLayout(opts.state_dir).journal(spec.model_id)


def build_loop(
    opts: WorkerOptions,
    spec: ModelSpec,
    policy: Policy,
    broker: Broker,
    clock: Clock | None = None,
    stop: threading.Event | None = None,
    others: Sequence[tuple[ModelSpec, Policy]] = (),
) -> WorkerLoop:
    """One loop for the model ``spec`` and a tournament's ``others``, on one broker, clock and stop."""
    clock = clock or SystemClock()
    stop = stop or threading.Event()  # shared: SIGTERM stops the loop and cuts a cycle's waits short
    cycles = [_cycle(opts, s, p, broker, clock, stop) for s, p in [(spec, policy), *others]]
    limits = [e.risk for e in model_entries(opts)]
    if len(limits) != len(cycles):  # options built by hand (tests, benches): the one [risk] for all
        limits = [opts.risk] * len(cycles)
    replay_features = ReplayFeatures()  # the replay path's features: once per ticker and bar
    for c, lim in zip(cycles, limits, strict=True):
        c.risk = RiskGuard(c.journal, c.spec.model_id, lim, c.config.timeframe)
        if opts.parity_check_every > 0:
            c.parity = ParityCheck(c.spec, c.policy, c.journal, opts.parity_check_every, replay_features)
    if others:
        shared = SharedBars(broker, [t for c in cycles for t in c.tickers])
        for c in cycles:
            c.bar_source, c.aligner = shared, shared.aligned
    heartbeat = opts.heartbeat_file or StateLayout(opts.state_dir).heartbeat
    loop = WorkerLoop(cycles[0], heartbeat, opts.poll_interval_s, opts.max_cycles, stop, others=cycles[1:])
    loop.account_floor = opts.min_account_equity
    loop.order_concurrency = opts.order_concurrency
    return loop


def _cycle(
    opts: WorkerOptions, spec: ModelSpec, policy: Policy, broker: Broker, clock: Clock, stop: threading.Event
) -> Cycle:
    timeframe = timeframe_delta(spec.timeframe)
    journal = Journal(journal_path(opts, spec))
    executor = Executor(
        broker,
        journal,
        model_id=spec.model_id,
        tickers=spec.tickers,
        profile=spec.profile,
        clock=clock,
        fill_timeout_s=opts.fill_timeout_s,
        stop=stop,
    )
    executor.rules.max_age = timedelta(seconds=opts.asset_rules_max_age_s)
    executor.lag_policy = LagPolicy(wait_s=opts.position_wait_s)
    config = CycleConfig(
        timeframe=timeframe,
        history_bars=history_bars(opts.history_hours, timeframe),
        grace_s=opts.grace_s,
        max_clock_skew_s=opts.max_clock_skew_s,
        gap_wait=timedelta(seconds=opts.gap_wait_s),
    )
    return Cycle(spec, policy, broker, journal, executor, clock, config)


def model_entries(opts: WorkerOptions) -> tuple[ModelEntry, ...]:
    """The tournament's models; without ``models`` the single model of the options."""
    if opts.models:
        return opts.models
    name = opts.model_name or opts.model_dir.name
    return (ModelEntry(name, opts.model_dir, opts.capital, opts.tickers, opts.profile, opts.risk),)


def entry_options(opts: WorkerOptions, entry: ModelEntry) -> WorkerOptions:
    return replace(
        opts,
        model_dir=Path(entry.dir).resolve(),
        tickers=entry.tickers,
        profile=entry.profile,
        capital=entry.capital,
        model_name=entry.name,
        risk=entry.risk,
    )


def load_tournament(opts: WorkerOptions) -> list[tuple[ModelSpec, Policy]]:
    """Every model checked (``load_checked_model``); one account needs one timeframe and distinct models."""
    entries = model_entries(opts)
    if len(entries) > 1 and opts.journal_file is not None:
        raise ConfigError(
            f"--journal {opts.journal_file} names one journal, but the configuration trades {len(entries)} "
            "models, each with its own journal in <state>/journal/. Drop --journal."
        )
    loaded = [load_checked_model(entry_options(opts, e)) for e in entries]
    seen: dict[str, str] = {}
    for entry, (spec, _) in zip(entries, loaded, strict=True):
        if spec.model_id in seen:
            raise ConfigError(
                f"[[models]] {seen[spec.model_id]!r} and {entry.name!r} are the same actor (model id "
                f"{spec.model_id}): one journal and one order prefix cannot serve two books. Keep one of "
                "them (give it the summed capital)."
            )
        seen[spec.model_id] = entry.name
    frames = {spec.timeframe for spec, _ in loaded}
    if len(frames) > 1:
        raise ConfigError(
            "The models of one tournament must share a timeframe (they decide on the same bar), but they use "
            + ", ".join(sorted(frames))
            + ". Run one daemon per timeframe, each with its own paper account."
        )
    return loaded


def load_checked_model(opts: WorkerOptions) -> tuple[ModelSpec, Policy]:
    """The model, checked as ``cappuccino-paper validate`` does, before any broker request.

    This is the supervisor's pre-start validation: a model that fails it raises ConfigError (exit 78), so
    it never trades and the supervisor gives up instead of restarting it.
    """
    import numpy as np

    from cappuccino_daemon.model.actor import load_policy
    from cappuccino_daemon.model.loader import load_model_spec

    tickers = list(opts.tickers) if opts.tickers else None
    spec = load_model_spec(opts.model_dir, tickers, profile=opts.profile, capital=opts.capital)
    for warning in spec.warnings:
        log.warning("model_warning", warning=warning)
    policy = load_policy(opts.model_dir)
    action = policy.act(np.zeros(spec.state_dim, dtype=np.float32))
    if action.shape != (spec.action_dim,) or not np.all(np.isfinite(action)):
        raise ConfigError(
            f"{spec.model_dir / 'actor.pth'} produced a non-finite or mis-shaped action on a zero state "
            f"({action!r}). Fix: the weights are unusable; copy actor.pth again or retrain."
        )
    log.info(
        "validate_ok",
        model=spec.model_id,
        summary=f"{spec.algorithm} {spec.net_dim}/{spec.state_dim}/{spec.action_dim}, lookback "
        f"{spec.lookback}, {spec.timeframe}, tickers {','.join(spec.tickers)}",
    )
    return spec, policy


def wait_for_exchange(
    ready_file: Path,
    timeout_s: float,
    monotonic: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Block until the embedded emulator has written its ready file (started alongside us by ``run``)."""
    deadline = monotonic() + timeout_s
    while not ready_file.exists():
        if monotonic() >= deadline:
            raise TransientBrokerError(
                f"the embedded emulator did not write its ready file {ready_file} within {timeout_s:g} s"
            )
        sleep(0.02)


def build_from_options(opts: WorkerOptions) -> WorkerLoop:
    loaded = load_tournament(opts)  # while the embedded emulator starts, in parallel
    if opts.exchange_ready_file is not None:
        wait_for_exchange(opts.exchange_ready_file, opts.exchange_wait_s)
    broker = make_broker(opts)
    account = broker.get_account()  # proves the credentials before trading (401 → exit 78)
    log.info(
        "broker_connected",
        kind=opts.broker_kind,
        cash=account.cash,
        status=account.status,
        models=[spec.model_id for spec, _ in loaded],
        tickers=sorted({t for spec, _ in loaded for t in spec.tickers}),
        timeframe=loaded[0][0].timeframe,
    )
    if account.trading_blocked:
        raise ConfigError("The broker account is blocked from trading; check it in the Alpaca dashboard.")
    guard_account(  # one trader per account, and the capital fits its cash
        account,
        models=model_entries(opts),
        state_dir=opts.state_dir,
        config_file=opts.config_file,
        lock_dir=opts.lock_dir,
    )
    (spec, policy), *others = loaded
    return build_loop(opts, spec, policy, broker, others=others)


def freeze_startup_heap() -> None:
    """Hand what start-up built (models, torch, the libraries) to the permanent generation.

    They live as long as the process, yet every full collection walked them: ~225 ms with 100 models,
    landing inside a bar's order window about every sixth bar (bench/tournament.py). Frozen, a full
    collection takes ~5 ms. Called once, after the loop is built and before the first bar.
    """
    gc.collect()
    gc.freeze()
