"""One contract for the ``Broker`` port, run against the in-memory fake and the alpaca-py adapter.

The adapter talks to a real in-process emulator over loopback HTTP; the fake is ``broker/memory.py``.
Both get the same faults through one small ``Venue`` wrapper, so the fake cannot drift from what the
adapter really does (and the worker's tests can trust the fake where they use it).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from cappuccino_daemon.broker.alpaca import AlpacaBroker, AlpacaEndpoints
from cappuccino_daemon.broker.http import ReadRetry
from cappuccino_daemon.broker.memory import MemoryBroker
from cappuccino_daemon.broker.ports import (
    AmbiguousSubmitError,
    Broker,
    BrokerRejectedError,
    BrokerUnavailableError,
    DuplicateClientOrderIdError,
    OrderStatus,
    RateLimitedError,
)
from cappuccino_daemon.emulator.testing import EmulatorThread

START = datetime(2024, 3, 1, tzinfo=UTC)
# Port call → emulator route; fault kind → emulator fault kind.
ROUTES = {
    "submit_market_order": "orders_submit",
    "get_account": "account",
    "get_order_by_client_id": "order_by_client_id",
    "get_positions": "positions",
}
KINDS = {"unavailable": "503", "rate_limited": "429", "timeout": "drop", "ambiguous": "ambiguous"}


class Venue:
    """A broker plus the two levers every test needs: inject a fault, let simulated time pass."""

    def __init__(self, broker: Broker, emu: EmulatorThread | None = None) -> None:
        self.broker = broker
        self._emu = emu

    def inject(self, call: str, kind: str, times: int = 1) -> None:
        if self._emu is not None:
            self._emu.set_faults(f"{ROUTES[call]}:{KINDS[kind]}:1:{times}")
        else:
            assert isinstance(self.broker, MemoryBroker)
            self.broker.inject(call, kind, times)  # type: ignore[arg-type]

    def advance(self, seconds: float) -> None:
        if self._emu is not None:
            self._emu.advance(seconds)
        else:
            assert isinstance(self.broker, MemoryBroker)
            self.broker.advance(seconds)


@contextmanager
def open_venue(kind: str, fill_delay_s: float = 0.0) -> Iterator[Venue]:
    if kind == "memory":
        yield Venue(MemoryBroker(start=START, fill_delay_s=fill_delay_s))
        return
    with EmulatorThread(synthetic_seed=3, start=START, fill_delay_s=fill_delay_s) as emu:
        broker = AlpacaBroker(
            emu.key_id,
            emu.secret_key,
            AlpacaEndpoints(emu.base_url, emu.base_url),
            timeout_s=5.0,
            read_retry=ReadRetry(attempts=3, base_s=0.01, max_wait_s=0.05),
        )
        yield Venue(broker, emu)


BACKENDS = ["memory", "alpaca"]


@pytest.fixture(params=BACKENDS)
def venue(request: pytest.FixtureRequest) -> Iterator[Venue]:
    with open_venue(str(request.param)) as opened:
        yield opened


@pytest.fixture(params=BACKENDS)
def slow_venue(request: pytest.FixtureRequest) -> Iterator[Venue]:
    """Orders fill one simulated hour after they are accepted."""
    with open_venue(str(request.param), fill_delay_s=3600.0) as opened:
        yield opened


def _buy_qty(broker: Broker, symbol: str = "ETH", usd: float = 200.0) -> tuple[Decimal, float]:
    """A buy quantity worth about ``usd`` that fits the asset's increment, and the price used."""
    bars = broker.get_bars([symbol], timedelta(hours=1), broker.now() - timedelta(hours=6), broker.now())
    price = float(bars[symbol]["close"].iloc[-1])
    step = broker.get_assets([symbol])[symbol].min_trade_increment
    qty = (Decimal(str(usd / price)) / step).to_integral_value() * step
    return qty.quantize(Decimal("0.0001")), price


def test_clock_account_and_assets(venue: Venue) -> None:
    broker = venue.broker
    assert broker.now().tzinfo is not None and broker.now().utcoffset() == timedelta(0)
    account = broker.get_account()
    assert account.cash > 0 and account.equity >= account.cash and not account.trading_blocked
    assets = broker.get_assets(["BTC", "ETH", "NOPE"])
    assert set(assets) == {"BTC", "ETH"}
    assert all(a.tradable and a.min_order_size > 0 and a.min_trade_increment > 0 for a in assets.values())


def test_bars_are_closed_utc_and_sorted(venue: Venue) -> None:
    now = venue.broker.now()
    bars = venue.broker.get_bars(["BTC", "ETH"], timedelta(hours=1), now - timedelta(hours=10), now)
    for frame in bars.values():
        assert list(frame.columns) == ["open", "high", "low", "close", "volume"]
        assert len(frame) >= 8 and str(frame.index.tz) == "UTC" and frame.index.is_monotonic_increasing
        assert frame.index[-1] + timedelta(hours=1) <= now  # only closed bars
        assert (frame["close"] > 0).all()


def test_market_buy_fills_into_a_position(venue: Venue) -> None:
    broker = venue.broker
    qty, _ = _buy_qty(broker)
    snap = broker.submit_market_order("ETH", "buy", qty, "ct-buy-1")
    assert (snap.client_order_id, snap.symbol, snap.side, snap.qty) == ("ct-buy-1", "ETH", "buy", qty)
    assert snap.is_open and snap.filled_qty == 0
    filled = broker.get_order_by_client_id("ct-buy-1")
    assert filled is not None and filled.status is OrderStatus.FILLED and filled.is_final
    assert filled.filled_qty == qty and filled.filled_avg_price is not None and filled.filled_avg_price > 0
    position = broker.get_positions()["ETH"]
    assert Decimal(0) < position.qty <= qty  # the fee is taken in the received coin
    assert broker.list_open_orders() == []


def test_selling_coins_not_held_is_rejected(venue: Venue) -> None:
    with pytest.raises(BrokerRejectedError) as caught:
        venue.broker.submit_market_order("ETH", "sell", Decimal("1"), "ct-sell-1")
    assert not isinstance(caught.value, DuplicateClientOrderIdError) and caught.value.status_code == 403
    assert venue.broker.get_order_by_client_id("ct-sell-1") is None


def test_duplicate_client_order_id_is_refused_and_the_original_kept(venue: Venue) -> None:
    qty, _ = _buy_qty(venue.broker)
    first = venue.broker.submit_market_order("ETH", "buy", qty, "ct-dup-1")
    with pytest.raises(DuplicateClientOrderIdError):
        venue.broker.submit_market_order("ETH", "buy", qty, "ct-dup-1")
    found = venue.broker.get_order_by_client_id("ct-dup-1")
    assert found is not None and found.id == first.id and found.qty == qty


def test_unknown_client_order_id_is_none(venue: Venue) -> None:
    assert venue.broker.get_order_by_client_id("ct-never-sent") is None


def test_delayed_fill_stays_open_until_due_and_cancel_is_final(slow_venue: Venue) -> None:
    broker = slow_venue.broker
    qty, _ = _buy_qty(broker)
    broker.submit_market_order("ETH", "buy", qty, "ct-slow-1")
    broker.submit_market_order("ETH", "buy", qty, "ct-slow-2")
    slow_venue.advance(60)
    working = broker.get_order_by_client_id("ct-slow-1")
    assert working is not None and working.is_open and working.filled_qty == 0
    assert {o.client_order_id for o in broker.list_open_orders()} == {"ct-slow-1", "ct-slow-2"}
    broker.cancel_order(working.id)
    canceled = broker.get_order_by_client_id("ct-slow-1")
    assert canceled is not None and canceled.status is OrderStatus.CANCELED and canceled.filled_qty == 0
    broker.cancel_order(working.id)  # already final: not an error
    slow_venue.advance(3600)
    late = broker.get_order_by_client_id("ct-slow-2")
    assert late is not None and late.status is OrderStatus.FILLED and late.filled_qty == qty


def test_answer_lost_after_accept_is_ambiguous_and_found_by_id(venue: Venue) -> None:
    qty, _ = _buy_qty(venue.broker)
    venue.inject("submit_market_order", "ambiguous")
    with pytest.raises(AmbiguousSubmitError):
        venue.broker.submit_market_order("ETH", "buy", qty, "ct-amb-1")
    found = venue.broker.get_order_by_client_id("ct-amb-1")
    assert found is not None and found.qty == qty


@pytest.mark.parametrize("kind", ["timeout", "unavailable"])
def test_submit_that_never_arrived_is_ambiguous_and_absent(venue: Venue, kind: str) -> None:
    qty, _ = _buy_qty(venue.broker)
    venue.inject("submit_market_order", kind)
    with pytest.raises(AmbiguousSubmitError):
        venue.broker.submit_market_order("ETH", "buy", qty, "ct-lost-1")
    assert venue.broker.get_order_by_client_id("ct-lost-1") is None
    again = venue.broker.submit_market_order("ETH", "buy", qty, "ct-lost-1")  # same id, now accepted
    assert again.client_order_id == "ct-lost-1"


def test_rate_limited_submit_raises_rate_limited_and_sends_nothing(venue: Venue) -> None:
    qty, _ = _buy_qty(venue.broker)
    venue.inject("submit_market_order", "rate_limited")
    with pytest.raises(RateLimitedError):
        venue.broker.submit_market_order("ETH", "buy", qty, "ct-429-1")
    assert venue.broker.get_order_by_client_id("ct-429-1") is None


@pytest.mark.parametrize("kind", ["unavailable", "rate_limited", "timeout"])
def test_one_failed_read_is_retried_inside(venue: Venue, kind: str) -> None:
    venue.inject("get_account", kind, times=1)
    assert venue.broker.get_account().cash > 0


@pytest.mark.parametrize(
    ("kind", "error"), [("unavailable", BrokerUnavailableError), ("rate_limited", RateLimitedError)]
)
def test_a_read_that_keeps_failing_raises_the_domain_error(venue: Venue, kind: str, error: Any) -> None:
    venue.inject("get_positions", kind, times=50)
    with pytest.raises(error) as caught:
        venue.broker.get_positions()
    if isinstance(caught.value, RateLimitedError):
        assert caught.value.retry_after_s is None or caught.value.retry_after_s >= 0


def test_fake_waits_the_retry_after_hint_between_read_attempts() -> None:
    """The fake's own knob: a 429 with a retry time is waited out through the injected sleep."""
    waits: list[float] = []
    fake = MemoryBroker(start=START, sleep=waits.append)
    fake.inject("get_account", "rate_limited", times=2, retry_after_s=7.5)
    assert fake.get_account().cash > 0
    assert waits == [7.5, 7.5] and fake.calls.count("get_account") == 3
    with pytest.raises(ValueError, match="unknown fault kind"):
        fake.inject("get_account", "slow")  # type: ignore[arg-type]


def test_orders_since_a_time_are_listed_oldest_first_whatever_their_status(slow_venue: Venue) -> None:
    """One read settles a tournament's orders (worker/executor.await_many): open and final alike, only
    those submitted after the time given."""
    broker = slow_venue.broker
    qty, _ = _buy_qty(broker)
    broker.submit_market_order("ETH", "buy", qty, "ct-list-old")
    slow_venue.advance(3600)  # the first fills
    cut = broker.now()
    slow_venue.advance(1)
    broker.submit_market_order("ETH", "buy", qty, "ct-list-1")
    slow_venue.advance(1)
    broker.submit_market_order("ETH", "buy", qty, "ct-list-2")
    listed = broker.list_orders_since(cut)
    assert [o.client_order_id for o in listed] == ["ct-list-1", "ct-list-2"]
    assert all(o.is_open and o.qty == qty for o in listed)
    slow_venue.advance(3600)
    assert {o.status for o in broker.list_orders_since(cut)} == {OrderStatus.FILLED}
    assert len(broker.list_orders_since(cut - timedelta(hours=2))) == 3
