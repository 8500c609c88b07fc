"""The port's contract under Alpaca's strict behaviours, on the fake and on alpaca-py against the emulator.

Partial fills, a request budget with 429 and reset, positions lagging fills, asset increments and the
activities ledger: each test runs once per backend with the same knobs. The request budget's wall
clock is a stepped fake shared by the server and the client, so no test sleeps.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import requests

from cappuccino_daemon.broker.alpaca import AlpacaBroker, AlpacaEndpoints
from cappuccino_daemon.broker.budget import RequestBudget
from cappuccino_daemon.broker.http import ReadRetry
from cappuccino_daemon.broker.memory import STRICT_RULES, MemoryBroker
from cappuccino_daemon.broker.ports import Broker, BrokerRejectedError, OrderStatus, RateLimitedError
from cappuccino_daemon.emulator.options import default_assets_file
from cappuccino_daemon.emulator.testing import EmulatorThread

START = datetime(2024, 3, 1, tzinfo=UTC)
BACKENDS = ["memory", "alpaca"]
TAKER = Decimal("0.0025")


class Wall:
    """A wall clock that moves only when slept on (the request budget's clock and sleep)."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0
        self.slept = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.slept += seconds


@dataclass
class Strict:
    partial: bool = False
    lag_s: float = 0.0
    rules: bool = False
    rate_limit: int = 0
    budget: int = 0  # the client's own budget per minute; 0 = none


@dataclass
class Venue:
    broker: Broker
    wall: Wall
    budget: RequestBudget | None
    emu: EmulatorThread | None = None

    def advance(self, seconds: float) -> None:
        if self.emu is not None:
            self.emu.advance(seconds)
        else:
            assert isinstance(self.broker, MemoryBroker)
            self.broker.advance(seconds)


@contextmanager
def open_venue(kind: str, knobs: Strict) -> Iterator[Venue]:
    wall = Wall()
    budget = RequestBudget(knobs.budget, clock=wall, sleep=wall.sleep) if knobs.budget else None
    if kind == "memory":
        broker = MemoryBroker(
            start=START,
            partial_parts=3 if knobs.partial else 1,
            fill_window_s=90.0,
            position_lag_s=knobs.lag_s,
            rules=dict(STRICT_RULES) if knobs.rules else MemoryBroker().rules,
            rate_limit=knobs.rate_limit,
            wall=wall,
            budget=budget,  # its read retry sleeps for real (a no-op here), like the adapter's ReadRetry
        )
        yield Venue(broker, wall, budget)
        return
    options: dict[str, Any] = {
        "partial_fill_rate": 1.0 if knobs.partial else 0.0,
        "fill_window_s": 90.0,
        "position_lag_s": knobs.lag_s,
        "assets": default_assets_file() if knobs.rules else None,
        "rate_limit": knobs.rate_limit,
        "rate_clock": wall,
    }
    with EmulatorThread(synthetic_seed=3, start=START, **options) as emu:
        adapter = AlpacaBroker(
            emu.key_id,
            emu.secret_key,
            AlpacaEndpoints(emu.base_url, emu.base_url),
            timeout_s=5.0,
            read_retry=ReadRetry(attempts=3, base_s=0.001, max_wait_s=0.002),
            budget=budget,
        )
        yield Venue(adapter, wall, budget, emu)


def _eth_qty(broker: Broker, usd: float = 300.0) -> Decimal:
    bars = broker.get_bars(["ETH"], timedelta(hours=1), broker.now() - timedelta(hours=6), broker.now())
    price = float(bars["ETH"]["close"].iloc[-1])
    return Decimal(str(round(usd / price, 3)))


@pytest.mark.parametrize("kind", BACKENDS)
def test_partial_fills_show_progress_and_a_cancel_keeps_what_filled(kind: str) -> None:
    with open_venue(kind, Strict(partial=True)) as venue:
        broker = venue.broker
        qty = _eth_qty(broker)
        broker.submit_market_order("ETH", "buy", qty, "st-part-1")
        first = broker.get_order_by_client_id("st-part-1")
        assert first is not None and first.status is OrderStatus.PARTIALLY_FILLED and first.is_open
        assert Decimal(0) < first.filled_qty < qty and first.filled_avg_price is not None
        broker.cancel_order(first.id)
        canceled = broker.get_order_by_client_id("st-part-1")
        assert canceled is not None and canceled.status is OrderStatus.CANCELED
        assert canceled.filled_qty == first.filled_qty  # what filled stays filled
        broker.submit_market_order("ETH", "buy", qty, "st-part-2")
        venue.advance(91)
        done = broker.get_order_by_client_id("st-part-2")
        assert done is not None and done.status is OrderStatus.FILLED and done.filled_qty == qty


@pytest.mark.parametrize("kind", BACKENDS)
def test_positions_lag_behind_a_filled_order(kind: str) -> None:
    with open_venue(kind, Strict(lag_s=3.0)) as venue:
        broker = venue.broker
        qty = _eth_qty(broker)
        broker.submit_market_order("ETH", "buy", qty, "st-lag-1")
        filled = broker.get_order_by_client_id("st-lag-1")
        assert filled is not None and filled.status is OrderStatus.FILLED
        assert "ETH" not in broker.get_positions()  # the order shows the fill, the position not yet
        venue.advance(3)
        position = broker.get_positions()["ETH"]
        assert position.qty == qty * (1 - TAKER) == position.qty_available


@pytest.mark.parametrize("kind", BACKENDS)
def test_asset_steps_are_served_and_off_step_quantities_get_422(kind: str) -> None:
    with open_venue(kind, Strict(rules=True)) as venue:
        broker = venue.broker
        btc = broker.get_assets(["BTC"])["BTC"]
        assert (btc.min_order_size, btc.min_trade_increment, btc.price_increment) == (
            Decimal("0.0001"),
            Decimal("0.0001"),
            Decimal("1"),
        )
        with pytest.raises(BrokerRejectedError) as off_step:
            broker.submit_market_order("BTC", "buy", Decimal("0.00115"), "st-step-1")
        assert off_step.value.status_code == 422 and "min_trade_increment" in str(off_step.value)
        assert broker.get_order_by_client_id("st-step-1") is None
        assert broker.submit_market_order("BTC", "buy", Decimal("0.0011"), "st-step-2").qty == Decimal(
            "0.0011"
        )


@pytest.mark.parametrize("kind", BACKENDS)
def test_past_the_server_limit_a_429_carries_the_reset(kind: str) -> None:
    with open_venue(kind, Strict(rate_limit=3)) as venue:
        broker = venue.broker
        broker.get_account()
        broker.get_positions()
        broker.list_open_orders()
        with pytest.raises(RateLimitedError) as limited:
            broker.get_account()  # retried inside, but the window does not move: still refused
        assert limited.value.retry_after_s is not None and 1 <= limited.value.retry_after_s <= 60
        with pytest.raises(RateLimitedError):
            broker.submit_market_order("ETH", "buy", Decimal("0.1"), "st-429-1")
        venue.wall.sleep(60)
        assert broker.get_order_by_client_id("st-429-1") is None  # the refused submit created nothing
        assert broker.get_account().cash > 0  # a new minute, a new budget


@pytest.mark.parametrize("kind", BACKENDS)
def test_the_client_budget_stays_below_the_server_limit(kind: str) -> None:
    with open_venue(kind, Strict(rate_limit=5, budget=4)) as venue:
        for _ in range(13):
            venue.broker.get_account()
        assert venue.budget is not None and venue.budget.rate_limited == 0  # never a 429
        assert venue.wall.slept >= 180  # 13 requests at 4 a minute: three full waits


@pytest.mark.parametrize("kind", BACKENDS)
def test_remaining_zero_is_honoured_before_any_429(kind: str) -> None:
    with open_venue(kind, Strict(rate_limit=3, budget=100)) as venue:
        for _ in range(4):
            assert venue.broker.get_account().cash > 0
        assert venue.budget is not None and venue.budget.rate_limited == 0
        assert 59 <= venue.wall.slept <= 61  # waited for X-RateLimit-Reset instead of asking


@pytest.mark.parametrize("kind", BACKENDS)
def test_a_429_from_a_budget_spent_elsewhere_is_waited_out(kind: str) -> None:
    with open_venue(kind, Strict(rate_limit=3, budget=100)) as venue:
        spend_elsewhere(venue, 3)  # another process with the same key used this minute up
        assert venue.broker.get_account().cash > 0  # 429, then the budget waits for the reset
        assert venue.budget is not None and venue.budget.rate_limited == 1
        assert 1 <= venue.wall.slept <= 61


def spend_elsewhere(venue: Venue, n: int) -> None:
    """Requests with the same key that our client never sees (a second worker sharing the key)."""
    if venue.emu is None:
        assert isinstance(venue.broker, MemoryBroker)
        venue.broker.spend_rate(n)
        return
    headers = {"APCA-API-KEY-ID": venue.emu.key_id, "APCA-API-SECRET-KEY": venue.emu.secret_key}
    for _ in range(n):
        assert requests.get(venue.emu.base_url + "/v2/clock", headers=headers, timeout=10).status_code == 200


@pytest.mark.parametrize("kind", BACKENDS)
def test_activities_list_each_fill_and_the_daily_crypto_fee(kind: str) -> None:
    with open_venue(kind, Strict(partial=True)) as venue:
        broker = venue.broker
        qty = _eth_qty(broker)
        snap = broker.submit_market_order("ETH", "buy", qty, "st-act-1")
        venue.advance(91)
        done = broker.get_order_by_client_id("st-act-1")
        assert done is not None and done.status is OrderStatus.FILLED
        fills = [a for a in broker.list_activities() if a.kind == "FILL"]
        assert 2 <= len(fills) <= 4 and all(f.order_id == snap.id and f.side == "buy" for f in fills)
        assert sum(f.qty for f in fills) == qty and not [
            a for a in broker.list_activities() if a.kind == "CFEE"
        ]
        venue.advance(86400)  # the day is over: its crypto fee is posted
        fees = [a for a in broker.list_activities() if a.kind == "CFEE"]
        assert len(fees) == 1 and fees[0].symbol == "ETH" and fees[0].qty < 0 and fees[0].day == START.date()
        notional = sum(f.qty * f.price for f in fills)
        assert abs(fees[0].fee_usd - notional * TAKER) < Decimal("0.01")
        assert broker.list_activities(after=fees[0].when) == []
