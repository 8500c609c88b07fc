"""``MemoryBroker``: the ``Broker`` port in memory, with fault knobs, for tests and experiments.

It keeps the rules the worker relies on, the same way the adapter over the emulator does (the contract
suite in tests/broker runs one set of tests against both): a market order is accepted as PENDING and
fills at the first call on or after its fill time (``fill_delay_s`` of simulated time, moved only by
``advance``); the fee is taken in the received coin on buys and in USD on sells; a client_order_id is
unique; buys need free cash and Alpaca's $10 minimum, sells need the coins. Reads are retried inside
(``read_attempts``), submits never are.

Faults are armed per call (a method name, or ``*``) and fire on the next matching calls:

- ``unavailable`` (a 5xx): a read raises BrokerUnavailableError; a submit raises AmbiguousSubmitError
  and creates nothing (the adapter cannot tell a 5xx apart from a lost order either);
- ``timeout``: as ``unavailable`` (the request never arrived);
- ``ambiguous``: the call is carried out, then the answer is lost (a submit creates the order);
- ``rate_limited``: RateLimitedError with ``retry_after_s`` (reads wait for it through ``sleep``);
- ``rejected``: BrokerRejectedError(status_code=403).

Alpaca's strict behaviours are knobs too (all off by default, as the emulator's lenient profile):
``rate_limit`` (requests per minute on the ``wall`` clock, 429 with the reset past it; ``budget`` is the
client's own ``RequestBudget``, as the adapter has one), ``partial_parts`` (an order fills in that many
parts spread over ``fill_window_s``, ``PARTIALLY_FILLED`` in between, fee per part),
``position_lag_s`` (positions show a fill that many simulated seconds late), ``rules`` (per-symbol
``min_order_size`` / ``min_trade_increment`` / ``price_increment``, 422 off the steps), and the
account activities ledger (FILL per part, CFEE per symbol and UTC day, posted after the day ends).
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from typing import Literal, TypeVar

import pandas as pd

from cappuccino_daemon.broker.budget import RequestBudget
from cappuccino_daemon.broker.ports import (
    Activity,
    AmbiguousSubmitError,
    Asset,
    BrokerAccount,
    BrokerPosition,
    BrokerRejectedError,
    BrokerUnavailableError,
    DuplicateClientOrderIdError,
    OrderSnapshot,
    OrderStatus,
    RateLimitedError,
    Side,
)

T = TypeVar("T")
FaultKind = Literal["unavailable", "timeout", "ambiguous", "rate_limited", "rejected"]
FAULT_KINDS: frozenset[str] = frozenset({"unavailable", "timeout", "ambiguous", "rate_limited", "rejected"})

MIN_NOTIONAL = Decimal("10")
DEFAULT_PRICES: dict[str, float] = {"BTC": 60_000.0, "ETH": 3_000.0, "LTC": 80.0, "SOL": 150.0}
Rule = tuple[str, str, str]  # min_order_size, min_trade_increment, price_increment
DEFAULT_RULES: dict[str, Rule] = {
    "BTC": ("0.0001", "0.000000001", "0"),
    "ETH": ("0.001", "0.000000001", "0"),
    "LTC": ("0.01", "0.000000001", "0"),
    "SOL": ("0.01", "0.000000001", "0"),
}
# The emulator's shipped strict asset file (Alpaca's documented BTC/USD values, the rest the same pattern).
STRICT_RULES: dict[str, Rule] = {
    "BTC": ("0.0001", "0.0001", "1"),
    "ETH": ("0.001", "0.001", "0.1"),
    "LTC": ("0.01", "0.01", "0.01"),
    "SOL": ("0.01", "0.01", "0.01"),
}
RATE_WINDOW_S = 60.0


@dataclass
class Fault:
    call: str  # a Broker method name, or "*"
    kind: FaultKind
    times: int = 1
    retry_after_s: float | None = None

    def matches(self, call: str) -> bool:
        return self.times > 0 and self.call in (call, "*")


@dataclass
class _Order:
    snap: OrderSnapshot
    fill_due: datetime
    parts: list[tuple[datetime, Decimal]] = field(default_factory=list)  # (due, qty) still to fill
    executions: list[tuple[datetime, Decimal, Decimal, Decimal]] = field(default_factory=list)
    # executions: (when, qty, price, fee in the received asset: coins on buys, USD on sells)


@dataclass
class MemoryBroker:
    """An in-memory broker; ``now`` only moves with ``advance`` (deterministic)."""

    start: datetime = datetime(2024, 1, 1, tzinfo=UTC)
    cash: Decimal = Decimal("100000")
    prices: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_PRICES))
    fee_pct: Decimal = Decimal("0.0025")
    fill_delay_s: float = 0.0
    read_attempts: int = 3
    sleep: Callable[[float], None] = lambda _s: None
    timeframe: timedelta = timedelta(hours=1)
    trading_blocked: bool = False
    account_id: str = field(default_factory=lambda: f"memory-{uuid.uuid4().hex[:12]}")
    # strict knobs (off = lenient)
    rate_limit: int = 0
    wall: Callable[[], float] = time.time
    budget: RequestBudget | None = None
    partial_parts: int = 1
    fill_window_s: float = 60.0
    position_lag_s: float = 0.0
    rules: dict[str, Rule] = field(default_factory=lambda: dict(DEFAULT_RULES))

    def __post_init__(self) -> None:
        if self.read_attempts < 1:
            raise ValueError(f"MemoryBroker(read_attempts={self.read_attempts}): needs at least 1")
        self._now = self.start
        self._lock = threading.RLock()
        self._orders: dict[str, _Order] = {}  # by client_order_id
        self._positions: dict[str, Decimal] = {}
        self._faults: list[Fault] = []
        self._lagging: list[tuple[datetime, str, Decimal]] = []  # position deltas not shown yet
        self._window: tuple[float, int] | None = None  # the server's rate window: start, used
        self.rate_limited = 0  # 429s answered
        self.calls: list[str] = []  # every call that reached the broker, in order
        self.submits: list[str] = []  # client_order_ids of every order the broker accepted

    # -- test controls ----------------------------------------------------------------------------
    def inject(self, call: str, kind: FaultKind, times: int = 1, retry_after_s: float | None = None) -> None:
        """Arm a fault for the next ``times`` matching calls."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; use one of {sorted(FAULT_KINDS)}")
        with self._lock:
            self._faults.append(Fault(call, kind, times, retry_after_s))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def spend_rate(self, n: int) -> None:
        """Count ``n`` requests of another client with the same key against the server's budget."""
        with self._lock:
            start, used = self._current_window(self.wall())
            self._window = (start, min(self.rate_limit, used + n))

    def _current_window(self, now: float) -> tuple[float, int]:
        if self._window is None or not 0 <= now - self._window[0] < RATE_WINDOW_S:
            return now, 0
        return self._window

    def advance(self, seconds: float) -> datetime:
        """Move the simulated clock; due orders fill at the next call."""
        with self._lock:
            self._now += timedelta(seconds=seconds)
            return self._now

    def set_position(self, symbol: str, qty: Decimal) -> None:
        with self._lock:
            self._positions[symbol] = qty

    def price(self, symbol: str, when: datetime | None = None) -> float:
        """A deterministic wiggle around the symbol's base price, constant within a bar."""
        at = when or self._now
        step = math.floor(at.timestamp() / self.timeframe.total_seconds())
        return self.prices[symbol] * (1.0 + 0.01 * math.sin(step / 5.0 + len(symbol)))

    # -- plumbing ---------------------------------------------------------------------------------
    def _fault(self, call: str) -> Fault | None:
        self._gate(call)
        with self._lock:
            self.calls.append(call)
            for fault in self._faults:
                if fault.matches(call):
                    fault.times -= 1
                    return fault
        return None

    def _gate(self, call: str) -> None:
        """The client's budget first (as the adapter's session does), then the server's rate limit."""
        if self.budget is not None:
            self.budget.acquire()
        if self.rate_limit <= 0:
            return
        with self._lock:
            now = self.wall()
            start, used = self._current_window(now)
            allowed = used < self.rate_limit
            self._window = (start, used + 1 if allowed else used)
            reset = start + RATE_WINDOW_S
            remaining = max(0, self.rate_limit - (used + 1 if allowed else used))
            if not allowed:
                self.rate_limited += 1
        headers = {"X-RateLimit-Remaining": str(remaining), "X-RateLimit-Reset": str(math.ceil(reset))}
        if not allowed:
            wait = max(1.0, math.ceil(reset - now))
            headers["Retry-After"] = str(int(wait))
        if self.budget is not None:
            self.budget.observe(200 if allowed else 429, headers)
        if not allowed:
            raise RateLimitedError(f"{call}: rate limited (HTTP 429)", wait)

    def _read(self, call: str, fn: Callable[[], T]) -> T:
        """One read with the port's retry rule: unavailable/rate-limited are retried a bounded number."""
        for attempt in range(1, self.read_attempts + 1):
            try:
                return self._read_once(call, fn)
            except RateLimitedError as exc:
                if attempt == self.read_attempts:
                    raise
                if self.budget is None:  # with a budget, its acquire() already waits for the reset
                    self.sleep(exc.retry_after_s or 0.0)
            except BrokerUnavailableError:
                if attempt == self.read_attempts:
                    raise
        raise AssertionError("unreachable")

    def _read_once(self, call: str, fn: Callable[[], T]) -> T:
        fault = self._fault(call)
        if fault is None:
            with self._lock:
                self._tick()
                return fn()
        if fault.kind == "ambiguous":
            with self._lock:
                self._tick()
                fn()
            raise BrokerUnavailableError(f"{call}: connection dropped after the request was served")
        raise _read_error(call, fault)

    def _tick(self) -> None:
        for order in self._orders.values():
            while order.snap.is_open and order.parts and order.parts[0][0] <= self._now:
                due, qty = order.parts.pop(0)
                self._fill_part(order, due, qty)
        shown = [d for d in self._lagging if d[0] <= self._now]
        self._lagging = [d for d in self._lagging if d[0] > self._now]
        for _due, symbol, delta in shown:
            self._positions[symbol] = self._positions.get(symbol, Decimal(0)) + delta

    def _fill_part(self, order: _Order, due: datetime, qty: Decimal) -> None:
        snap = order.snap
        price = Decimal(str(round(self.price(snap.symbol, due), 2)))
        if snap.side == "buy":
            fee = (qty * self.fee_pct).quantize(Decimal("1e-9"))
            self.cash -= qty * price
            delta = qty - fee
        else:
            fee = (qty * price * self.fee_pct).quantize(Decimal("1e-9"))
            self.cash += qty * price - fee
            delta = -qty
        self._lagging.append((due + timedelta(seconds=self.position_lag_s), snap.symbol, delta))
        order.executions.append((due, qty, price, fee))
        filled = snap.filled_qty + qty
        notional = sum((q * p for _, q, p, _ in order.executions), Decimal(0))
        done = not order.parts
        order.snap = replace(
            snap,
            status=OrderStatus.FILLED if done else OrderStatus.PARTIALLY_FILLED,
            filled_qty=filled,
            filled_avg_price=float(notional / filled),
        )

    # -- reads ------------------------------------------------------------------------------------
    def now(self) -> datetime:
        return self._read("now", lambda: self._now)

    def get_account(self) -> BrokerAccount:
        def account() -> BrokerAccount:
            equity = self.cash + sum(
                (q * Decimal(str(self.price(s))) for s, q in self._positions.items()), Decimal(0)
            )
            return BrokerAccount(
                float(self.cash), float(equity), "ACTIVE", self.trading_blocked, self.account_id
            )

        return self._read("get_account", account)

    def get_positions(self) -> dict[str, BrokerPosition]:
        def positions() -> dict[str, BrokerPosition]:
            out: dict[str, BrokerPosition] = {}
            for symbol, qty in self._positions.items():
                if qty > 0:
                    free = qty - self._reserved_qty(symbol)
                    out[symbol] = BrokerPosition(symbol, qty, free, self.prices.get(symbol, 0.0))
            return out

        return self._read("get_positions", positions)

    def get_assets(self, symbols: list[str]) -> dict[str, Asset]:
        def assets() -> dict[str, Asset]:
            out: dict[str, Asset] = {}
            for symbol in symbols:
                if symbol in self.prices:
                    size, step, tick = self._rule(symbol)
                    out[symbol] = Asset(symbol, True, size, step, tick)
            return out

        return self._read("get_assets", assets)

    def list_open_orders(self) -> list[OrderSnapshot]:
        return self._read(
            "list_open_orders", lambda: [o.snap for o in self._orders.values() if o.snap.is_open]
        )

    def list_orders_since(self, after: datetime) -> list[OrderSnapshot]:
        def since() -> list[OrderSnapshot]:
            snaps = [
                o.snap for o in self._orders.values() if o.snap.submitted_at and o.snap.submitted_at > after
            ]
            return sorted(snaps, key=lambda s: s.submitted_at or after)[:500]

        return self._read("list_orders_since", since)

    def get_order_by_client_id(self, client_order_id: str) -> OrderSnapshot | None:
        def lookup() -> OrderSnapshot | None:
            order = self._orders.get(client_order_id)
            return order.snap if order is not None else None

        return self._read("get_order_by_client_id", lookup)

    def get_bars(
        self, symbols: list[str], timeframe: timedelta, start: datetime, end: datetime
    ) -> dict[str, pd.DataFrame]:
        return self._read("get_bars", lambda: {s: self._bars(s, timeframe, start, end) for s in symbols})

    def _bars(self, symbol: str, timeframe: timedelta, start: datetime, end: datetime) -> pd.DataFrame:
        """Closed bars only: a bar opening at t is served once ``t + timeframe <= now``."""
        step = timeframe.total_seconds()
        first = math.ceil(start.timestamp() / step)
        last = min(end.timestamp(), (self._now - timeframe).timestamp())
        opens = [datetime.fromtimestamp(i * step, UTC) for i in range(first, math.floor(last / step) + 1)]
        if symbol not in self.prices:
            opens = []
        closes = [self.price(symbol, t) for t in opens]
        index = pd.DatetimeIndex(opens, tz="UTC", name="timestamp") if opens else _empty_index()
        return pd.DataFrame(
            {
                "open": [self.price(symbol, t - timeframe) for t in opens],
                "high": [c * 1.002 for c in closes],
                "low": [c * 0.998 for c in closes],
                "close": closes,
                "volume": [1.0 + (i % 7) for i in range(len(opens))],
            },
            index=index,
            dtype="float64",
        )

    # -- writes -----------------------------------------------------------------------------------
    def submit_market_order(
        self, symbol: str, side: Side, qty: Decimal, client_order_id: str
    ) -> OrderSnapshot:
        call = f"submit {client_order_id}"
        fault = self._fault("submit_market_order")
        if fault is not None and fault.kind != "ambiguous":
            raise _submit_error(call, fault)
        with self._lock:
            self._tick()
            snap = self._accept(symbol, side, qty, client_order_id)
        if fault is not None:
            raise AmbiguousSubmitError(f"{call}: connection dropped after the order was accepted")
        return snap

    def _accept(self, symbol: str, side: Side, qty: Decimal, client_order_id: str) -> OrderSnapshot:
        if client_order_id in self._orders:
            raise DuplicateClientOrderIdError(f"{client_order_id}: client_order_id must be unique", 422)
        if symbol not in self.prices:
            raise BrokerRejectedError(f"asset {symbol}/USD not found", status_code=422)
        size, step, _tick = self._rule(symbol)
        if (qty / step).to_integral_value(rounding=ROUND_FLOOR) * step != qty:
            raise BrokerRejectedError(
                f"invalid qty: {qty} is not a multiple of min_trade_increment {step}", status_code=422
            )
        if qty < size:
            raise BrokerRejectedError(
                f"qty {qty} is below the minimum order size {size} for {symbol}/USD", status_code=422
            )
        price = Decimal(str(self.price(symbol)))
        if side == "buy" and qty * price < MIN_NOTIONAL:
            raise BrokerRejectedError(f"cost basis must be >= minimal amount of order {MIN_NOTIONAL}", 403)
        if side == "buy" and qty * price > self.cash - self._reserved_cash():
            raise BrokerRejectedError("insufficient balance for USD", status_code=403)
        held = self._positions.get(symbol, Decimal(0))
        if side == "sell" and qty > held - self._reserved_qty(symbol):
            raise BrokerRejectedError(f"insufficient balance for {symbol}", status_code=403)
        snap = OrderSnapshot(
            id=str(uuid.uuid4()),
            client_order_id=client_order_id,
            symbol=symbol,
            side=side,
            qty=qty,
            filled_qty=Decimal(0),
            filled_avg_price=None,
            status=OrderStatus.PENDING,
            submitted_at=self._now,
        )
        due = self._now + timedelta(seconds=self.fill_delay_s)
        self._orders[client_order_id] = _Order(snap, due, self._schedule(qty, step, due))
        self.submits.append(client_order_id)
        return snap

    def _rule(self, symbol: str) -> tuple[Decimal, Decimal, Decimal]:
        size, step, tick = self.rules.get(symbol, ("0.000000001", "0.000000001", "0"))
        return Decimal(size), Decimal(step), Decimal(tick)

    def _schedule(self, qty: Decimal, step: Decimal, due: datetime) -> list[tuple[datetime, Decimal]]:
        """Whole at ``due``, or ``partial_parts`` parts on the step, the first at ``due``."""
        n = max(1, self.partial_parts)
        part = (qty / n / step).to_integral_value(rounding=ROUND_FLOOR) * step
        if n == 1 or part <= 0:
            return [(due, qty)]
        gap = timedelta(seconds=self.fill_window_s / (n - 1))
        parts = [(due + gap * k, part) for k in range(n - 1)]
        return [*parts, (due + gap * (n - 1), qty - part * (n - 1))]

    def cancel_order(self, order_id: str) -> None:
        def cancel() -> None:
            for order in self._orders.values():
                if order.snap.id == order_id and order.snap.is_open:
                    order.parts.clear()  # what filled stays filled
                    order.snap = replace(order.snap, status=OrderStatus.CANCELED)

        self._read("cancel_order", cancel)

    def list_activities(self, after: datetime | None = None) -> list[Activity]:
        return self._read(
            "list_activities", lambda: [a for a in self._activities() if after is None or a.when > after]
        )

    def _activities(self) -> list[Activity]:
        out: list[Activity] = []
        fees: dict[tuple[str, str, bool], list[Decimal]] = {}  # (day, symbol, in coin) -> fee, qty, notional
        for order in self._orders.values():
            snap = order.snap
            for k, (when, qty, price, fee) in enumerate(order.executions):
                aid = f"{when.isoformat()}::{snap.id}:{k}"
                out.append(
                    Activity(aid, "FILL", snap.symbol, when, qty, price, side=snap.side, order_id=snap.id)
                )
                sums = fees.setdefault(
                    (when.date().isoformat(), snap.symbol, snap.side == "buy"), [Decimal(0)] * 3
                )
                sums[0], sums[1], sums[2] = sums[0] + fee, sums[1] + qty, sums[2] + qty * price
        for (day, symbol, in_coin), (fee, qty, notional) in sorted(fees.items()):
            posted = datetime.fromisoformat(day).replace(tzinfo=UTC) + timedelta(days=1)
            if posted > self._now or fee == 0:
                continue
            price = notional / qty
            aid = f"{posted.isoformat()}::cfee:{day}:{symbol}:{in_coin}"
            coins, usd = (-fee, Decimal(0)) if in_coin else (Decimal(0), -fee)
            out.append(
                Activity(aid, "CFEE", symbol, posted, coins, price, usd, day=posted.date() - timedelta(1))
            )
        return sorted(out, key=lambda a: (a.when, a.id))

    def _reserved_cash(self) -> Decimal:
        return sum(
            (
                (o.snap.qty - o.snap.filled_qty) * Decimal(str(self.price(o.snap.symbol)))
                for o in self._open("buy")
            ),
            Decimal(0),
        )

    def _reserved_qty(self, symbol: str) -> Decimal:
        return sum(
            (o.snap.qty - o.snap.filled_qty for o in self._open("sell") if o.snap.symbol == symbol),
            Decimal(0),
        )

    def _open(self, side: Side) -> Iterable[_Order]:
        return (o for o in self._orders.values() if o.snap.is_open and o.snap.side == side)


def _read_error(call: str, fault: Fault) -> Exception:
    if fault.kind == "rate_limited":
        return RateLimitedError(f"{call}: rate limited (HTTP 429)", fault.retry_after_s)
    if fault.kind == "rejected":
        return BrokerRejectedError(f"{call}: HTTP 403 'forbidden'", status_code=403)
    return BrokerUnavailableError(f"{call}: {fault.kind} (injected)")


def _submit_error(call: str, fault: Fault) -> Exception:
    if fault.kind == "rate_limited":
        return RateLimitedError(f"{call}: rate limited (HTTP 429)", fault.retry_after_s)
    if fault.kind == "rejected":
        return BrokerRejectedError(f"{call}: HTTP 403 'forbidden'", status_code=403)
    return AmbiguousSubmitError(f"{call}: {fault.kind} (injected); outcome unknown")


def _empty_index() -> pd.DatetimeIndex:
    return pd.DatetimeIndex([], tz="UTC", name="timestamp")
