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
"""

from __future__ import annotations

import math
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from typing import Literal, TypeVar

import pandas as pd

from cappuccino_daemon.broker.ports import (
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
DEFAULT_RULES: dict[str, tuple[str, str]] = {  # min_order_size, min_trade_increment
    "BTC": ("0.0001", "0.000000001"),
    "ETH": ("0.001", "0.000000001"),
    "LTC": ("0.01", "0.000000001"),
    "SOL": ("0.01", "0.000000001"),
}


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

    def __post_init__(self) -> None:
        if self.read_attempts < 1:
            raise ValueError(f"MemoryBroker(read_attempts={self.read_attempts}): needs at least 1")
        self._now = self.start
        self._lock = threading.RLock()
        self._orders: dict[str, _Order] = {}  # by client_order_id
        self._positions: dict[str, Decimal] = {}
        self._faults: list[Fault] = []
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
        with self._lock:
            self.calls.append(call)
            for fault in self._faults:
                if fault.matches(call):
                    fault.times -= 1
                    return fault
        return None

    def _read(self, call: str, fn: Callable[[], T]) -> T:
        """One read with the port's retry rule: unavailable/rate-limited are retried a bounded number."""
        for attempt in range(1, self.read_attempts + 1):
            try:
                return self._read_once(call, fn)
            except RateLimitedError as exc:
                if attempt == self.read_attempts:
                    raise
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
            if order.snap.is_open and order.fill_due <= self._now:
                self._fill(order)

    def _fill(self, order: _Order) -> None:
        snap = order.snap
        price = Decimal(str(round(self.price(snap.symbol, order.fill_due), 2)))
        held = self._positions.get(snap.symbol, Decimal(0))
        if snap.side == "buy":
            self.cash -= snap.qty * price
            self._positions[snap.symbol] = held + snap.qty * (1 - self.fee_pct)
        else:
            self.cash += snap.qty * price * (1 - self.fee_pct)
            self._positions[snap.symbol] = held - snap.qty
        order.snap = replace(
            snap, status=OrderStatus.FILLED, filled_qty=snap.qty, filled_avg_price=float(price)
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
                    size, step = DEFAULT_RULES.get(symbol, ("0.000000001", "0.000000001"))
                    out[symbol] = Asset(symbol, True, Decimal(size), Decimal(step))
            return out

        return self._read("get_assets", assets)

    def list_open_orders(self) -> list[OrderSnapshot]:
        return self._read(
            "list_open_orders", lambda: [o.snap for o in self._orders.values() if o.snap.is_open]
        )

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
        size, step = (Decimal(v) for v in DEFAULT_RULES.get(symbol, ("0.000000001", "0.000000001")))
        if qty < size or (qty / step).to_integral_value(rounding=ROUND_FLOOR) * step != qty:
            raise BrokerRejectedError(f"invalid qty {qty} for {symbol}/USD", status_code=422)
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
        self._orders[client_order_id] = _Order(snap, self._now + timedelta(seconds=self.fill_delay_s))
        self.submits.append(client_order_id)
        return snap

    def cancel_order(self, order_id: str) -> None:
        def cancel() -> None:
            for order in self._orders.values():
                if order.snap.id == order_id and order.snap.is_open:
                    order.snap = replace(order.snap, status=OrderStatus.CANCELED)

        self._read("cancel_order", cancel)

    def _reserved_cash(self) -> Decimal:
        return sum(
            (o.snap.qty * Decimal(str(self.price(o.snap.symbol))) for o in self._open("buy")), Decimal(0)
        )

    def _reserved_qty(self, symbol: str) -> Decimal:
        return sum((o.snap.qty for o in self._open("sell") if o.snap.symbol == symbol), Decimal(0))

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
