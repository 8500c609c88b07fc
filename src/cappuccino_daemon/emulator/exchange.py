"""One emulator instance: market + simulated clock + paper account + faults + optional SQLite state.

Every request runs through ``transact``: under one lock, pending orders are first brought up to the
simulated now, then the request runs, then changes are committed in one SQLite transaction.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

from cappuccino_daemon.emulator.assetrules import load_asset_rules
from cappuccino_daemon.emulator.engine import Engine, EngineConfig
from cappuccino_daemon.emulator.faults import Faults
from cappuccino_daemon.emulator.market import Market
from cappuccino_daemon.emulator.options import EmulatorOptions
from cappuccino_daemon.emulator.ratelimit import RateLimiter
from cappuccino_daemon.emulator.simclock import SimClock
from cappuccino_daemon.emulator.store import StateStore
from cappuccino_daemon.errors import ConfigError
from cappuccino_daemon.logsetup import get_logger

log = get_logger(__name__)
T = TypeVar("T")
CLOCK_SAVE_INTERVAL_S = 1.0
# After a crash the saved clock may trail what clients were already shown by up to about two save
# intervals (checkpoint period + "due" check). Resuming that far ahead keeps the clock monotonic for
# them: a bar they saw closed never reopens. A clean stop saves the exact time and resumes from it.
UNCLEAN_RESUME_MARGIN_S = 3 * CLOCK_SAVE_INTERVAL_S


def floor_hour(when: datetime) -> datetime:
    when = when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)
    return when.replace(minute=0, second=0, microsecond=0)


def _build_market(options: EmulatorOptions, store: StateStore | None) -> tuple[Market, datetime]:
    """The market and the simulated start time, honouring what a state file already recorded."""
    saved_market: dict[str, Any] | None = store.get("market") if store else None
    saved_clock = store.clock() if store else None
    if store is not None and saved_clock is not None and store.get("clean_stop") is not True:
        margin = timedelta(seconds=UNCLEAN_RESUME_MARGIN_S * options.speed)
        log.info(
            "emulator_unclean_resume", saved_clock=saved_clock.isoformat(), margin_s=margin.total_seconds()
        )
        saved_clock += margin
    if options.bars_dir is not None:
        market = Market.from_bars_dir(options.bars_dir)
        identity: dict[str, Any] = {"kind": "bars", "dir": str(options.bars_dir.resolve())}
        if saved_market is not None and saved_market.get("kind") != "bars":
            raise _identity_error(store, saved_market, identity)
        first, last = market.first_bar_time(), market.last_bar_time()
        assert first is not None and last is not None
        default_start = min(first + timedelta(days=42), last + timedelta(hours=1))
        start = saved_clock or options.start or default_start
    else:
        start = saved_clock or options.start or floor_hour(datetime.now(UTC))
        if saved_market is not None:
            if saved_market.get("kind") != "synthetic" or saved_market.get("seed") != options.synthetic_seed:
                identity = {"kind": "synthetic", "seed": options.synthetic_seed}
                raise _identity_error(store, saved_market, identity)
            origin = datetime.fromisoformat(saved_market["origin"])
        else:
            origin = floor_hour(start) - timedelta(days=options.history_days)
        market = Market.synthetic(options.synthetic_seed, origin=origin)
        identity = {"kind": "synthetic", "seed": options.synthetic_seed, "origin": origin.isoformat()}
    if store is not None and saved_market is None:
        store.put_many({"market": identity})
    return market, start


def _identity_error(store: StateStore | None, saved: dict[str, Any], wanted: dict[str, Any]) -> ConfigError:
    path = store.path if store else "?"
    return ConfigError(
        f"Emulator state file {path} was written for market {saved}, but this run asks for {wanted}; "
        "prices would jump and the paper account would be revalued. Start with the same --bars-dir/"
        f"--synthetic as before, or move the state aside (mv {path} {path}.old) for a fresh account."
    )


class Exchange:
    def __init__(self, options: EmulatorOptions, wall: Callable[[], float] = time.monotonic) -> None:
        self.options = options
        self.store = StateStore(options.state_file) if options.state_file else None
        self.market, start = _build_market(options, self.store)
        self.clock = SimClock(start, options.speed, wall)
        self.engine = Engine(
            EngineConfig(
                initial_cash=options.initial_cash,
                taker_fee=options.taker_fee,
                min_notional=options.min_notional,
                max_notional=options.max_notional,
                slippage_bps=Decimal(str(options.slippage_bps)),
                fill_delay_s=options.fill_delay_s,
                maker_fee=options.maker_fee,
                partial_fill_rate=options.partial_fill_rate,
                fill_window_s=options.fill_window_s,
                position_lag_s=options.position_lag_s,
                seed=options.synthetic_seed,
                asset_rules=load_asset_rules(options.assets) if options.assets is not None else None,
            ),
            self.market,
        )
        self.faults = Faults(options.faults, seed=options.fault_seed)
        self.limiter = (
            RateLimiter(options.rate_limit, options.rate_clock or time.time)
            if options.rate_limit > 0
            else None
        )
        self.lock = threading.RLock()
        self._wall = wall
        self._clock_saved_at = float("-inf")
        self.resumed = False
        if self.store is not None:
            account = self.store.get("account")
            if account is not None:
                self.engine.restore(account, self.store.load_orders())
                self.resumed = True
        self.transact(lambda _now: None)

    def now(self) -> datetime:
        return self.clock.now()

    def transact(self, fn: Callable[[datetime], T]) -> T:
        """Bring orders up to now, run ``fn(now)``, commit whatever changed."""
        with self.lock:
            now = self.clock.now()
            self.engine.tick(now)
            result = fn(now)
            self._commit(now)
            return result

    def advance(self, seconds: float) -> datetime:
        with self.lock:
            self.clock.advance(seconds)
            return self.transact(lambda now: now)

    def set_time(self, when: datetime) -> datetime:
        with self.lock:
            self.clock.set(when)
            return self.transact(lambda now: now)

    def checkpoint(self) -> None:
        """Periodic: fills due by time alone happen and the clock is saved even without requests."""
        self.transact(lambda _now: None)

    def _commit(self, now: datetime, force: bool = False, clean_stop: bool = False) -> None:
        if self.store is None:
            self.engine.dirty.clear()
            return
        engine = self.engine
        clock_due = self._wall() - self._clock_saved_at >= CLOCK_SAVE_INTERVAL_S
        if not (engine.dirty or engine.dirty_account or clock_due or force):
            return
        values: dict[str, Any] = {"clock": now.isoformat(), "clean_stop": clean_stop}
        if engine.dirty or engine.dirty_account:
            values["account"] = engine.export_account()
        orders = [engine.orders[i] for i in sorted(engine.dirty) if i in engine.orders]
        self.store.commit(values, orders)
        engine.dirty.clear()
        engine.dirty_account = False
        self._clock_saved_at = self._wall()

    def close(self) -> None:
        with self.lock:
            if self.store is not None:
                self._commit(self.clock.now(), force=True, clean_stop=True)
                self.store.close()
                self.store = None
