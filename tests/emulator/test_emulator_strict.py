"""The strict behaviours (issue 11), each driven through the real alpaca-py clients over loopback.

No sleeps: the simulated clock moves with ``emu.advance`` and the request budget's wall clock is a
stepped fake.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, OrderStatus, TimeInForce
from alpaca.trading.requests import LimitOrderRequest, MarketOrderRequest

from cappuccino_daemon.emulator.fills import plan_split, schedule
from cappuccino_daemon.emulator.options import STRICT_RATE_LIMIT, EmulatorOptions, default_assets_file
from cappuccino_daemon.emulator.testing import EmulatorThread
from cappuccino_daemon.errors import EX_CONFIG

START = datetime(2024, 1, 1, tzinfo=UTC)

TAKER, MAKER = Decimal("0.0025"), Decimal("0.0015")


class SteppedWall:
    """A wall clock that only moves when told to."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def _client(emu: EmulatorThread, key: str | None = None) -> Any:
    client = TradingClient(key or emu.key_id, emu.secret_key, paper=True, url_override=emu.base_url)
    client._retry = 0  # a 429 surfaces at once instead of three 3 s SDK retries
    return client


def _buy(client: Any, symbol: str, qty: float, tif: TimeInForce = TimeInForce.GTC) -> Any:
    return client.submit_order(
        MarketOrderRequest(symbol=symbol, qty=qty, side=OrderSide.BUY, time_in_force=tif)
    )


def test_strict_preset_and_lenient_switch() -> None:
    strict = EmulatorOptions.strict(position_lag_s=5.0)
    assert strict.rate_limit == STRICT_RATE_LIMIT and strict.partial_fill_rate > 0
    assert strict.position_lag_s == 5.0 and strict.assets == default_assets_file()
    lenient = strict.lenient()
    assert (lenient.rate_limit, lenient.partial_fill_rate, lenient.position_lag_s, lenient.assets) == (
        0,
        0,
        0,
        None,
    )
    assert EmulatorOptions().rate_limit == 0  # the embedded default stays lenient for now


def test_request_budget_headers_429_and_reset() -> None:
    wall = SteppedWall()
    with EmulatorThread(synthetic_seed=7, start=START, rate_limit=3, rate_clock=wall) as emu:
        headers = {"APCA-API-KEY-ID": emu.key_id, "APCA-API-SECRET-KEY": emu.secret_key}
        first = requests.get(emu.base_url + "/v2/account", headers=headers, timeout=10)
        assert first.headers["X-RateLimit-Limit"] == "3"
        assert first.headers["X-RateLimit-Remaining"] == "2"
        assert int(first.headers["X-RateLimit-Reset"]) == int(wall.now) + 60
        client = _client(emu)
        client.get_clock()
        client.get_all_positions()  # the third and last request of this minute
        with pytest.raises(APIError) as refused:
            client.get_account()
        assert refused.value.status_code == 429 and refused.value.code == 42910000
        raw = requests.get(emu.base_url + "/v2/orders", headers=headers, timeout=10)
        assert raw.status_code == 429 and raw.headers["X-RateLimit-Remaining"] == "0"
        assert 1 <= int(raw.headers["Retry-After"]) <= 60
        assert _client(emu, key="PKANOTHERKEY").get_account().status  # budgets are per key
        wall.now += 60
        assert client.get_account().cash  # a new minute, a new budget
        data = requests.get(
            emu.base_url + "/v1beta3/crypto/us/latest/bars", params={"symbols": "BTC/USD"}, timeout=10
        )
        assert data.status_code == 200  # the market-data API is not on the trading budget


def test_partial_fill_in_parts_with_fee_per_part() -> None:
    with EmulatorThread(synthetic_seed=7, start=START, partial_fill_rate=1.0, fill_window_s=90) as emu:
        client = _client(emu)
        order = _buy(client, "ETH/USD", 0.5)
        first = client.get_order_by_id(order.id)
        assert first.status == OrderStatus.PARTIALLY_FILLED
        assert Decimal("0") < Decimal(first.filled_qty) < Decimal("0.5")
        emu.advance(90)
        done = client.get_order_by_id(order.id)
        assert done.status == OrderStatus.FILLED and Decimal(done.filled_qty) == Decimal("0.5")
        fills = client.get("/account/activities/FILL", {"direction": "asc"})
        assert 2 <= len(fills) <= 4
        assert [f["type"] for f in fills] == ["partial_fill"] * (len(fills) - 1) + ["fill"]
        received = sum(
            (Decimal(f["qty"]) * (1 - TAKER)).quantize(Decimal("1e-9"), "ROUND_DOWN") for f in fills
        )
        assert Decimal(client.get_open_position("ETHUSD").qty) == received  # fee charged per part
        avg = sum(Decimal(f["qty"]) * Decimal(f["price"]) for f in fills) / Decimal("0.5")
        assert abs(Decimal(done.filled_avg_price) - avg) < Decimal("1e-6")


def test_ioc_cancels_the_remainder_of_a_partial_fill() -> None:
    with EmulatorThread(synthetic_seed=7, start=START, partial_fill_rate=1.0) as emu:
        client = _client(emu)
        order = _buy(client, "ETH/USD", 0.5, TimeInForce.IOC)
        emu.advance(120)
        seen = client.get_order_by_id(order.id)
        assert seen.status == OrderStatus.CANCELED
        assert Decimal("0") < Decimal(seen.filled_qty) < Decimal("0.5")


def test_partial_fill_choice_is_deterministic_per_seed() -> None:
    class Config:
        partial_fill_rate = 0.5
        seed = 3

    plans = [plan_split(Config(), n) for n in range(40)]
    assert plans == [plan_split(Config(), n) for n in range(40)]
    split = [p for p in plans if len(p) > 1]
    assert split and len(split) < 40 and all(sum(p) == 1 and 2 <= len(p) <= 4 for p in split)
    parts = schedule(Decimal("0.5"), split[0], Decimal("0.0001"), START, 60)
    assert sum(q for _, q in parts) == Decimal("0.5") and parts[-1][0] > parts[0][0]


def test_positions_trail_fills_by_the_lag() -> None:
    with EmulatorThread(synthetic_seed=7, start=START, position_lag_s=3) as emu:
        client = _client(emu)
        order = _buy(client, "ETH/USD", 0.5)
        assert client.get_order_by_id(order.id).status == OrderStatus.FILLED
        assert client.get_all_positions() == []
        with pytest.raises(APIError) as early_sell:
            client.submit_order(
                MarketOrderRequest(
                    symbol="ETH/USD", qty=0.1, side=OrderSide.SELL, time_in_force=TimeInForce.GTC
                )
            )
        assert early_sell.value.status_code == 403
        emu.advance(2)
        assert client.get_all_positions() == []
        emu.advance(1)
        position = client.get_open_position("ETHUSD")
        assert Decimal(position.qty_available) == Decimal(position.qty) == Decimal("0.5") * (1 - TAKER)


def test_asset_file_steps_are_enforced() -> None:
    with EmulatorThread(synthetic_seed=7, start=START, assets=default_assets_file()) as emu:
        client = _client(emu)
        btc = client.get_asset("BTC/USD")
        assert (btc.min_order_size, btc.min_trade_increment, btc.price_increment) == (0.0001, 0.0001, 1.0)
        with pytest.raises(APIError) as off_qty:
            _buy(client, "BTC/USD", 0.00015)
        assert off_qty.value.status_code == 422 and "min_trade_increment" in off_qty.value.message
        with pytest.raises(APIError) as off_price:
            client.submit_order(
                LimitOrderRequest(
                    symbol="BTC/USD",
                    qty=0.001,
                    side=OrderSide.BUY,
                    time_in_force=TimeInForce.GTC,
                    limit_price=20000.5,
                )
            )
        assert off_price.value.status_code == 422 and "price_increment" in off_price.value.message
        assert _buy(client, "BTC/USD", 0.0012).status == OrderStatus.PENDING_NEW


@pytest.mark.parametrize(
    ("content", "problem"),
    [("{not json", "is not valid JSON"), ('{"BTC/USD": {"min_order_size": "-1"}}', "not a positive decimal")],
)
def test_bad_asset_file_exits_78_with_one_paragraph(tmp_path: Path, content: str, problem: str) -> None:
    bad = tmp_path / "assets.json"
    bad.write_text(content)
    run = subprocess.run(
        [sys.executable, "-m", "cappuccino_daemon", "emulator", "--port", "0", "--assets", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == EX_CONFIG
    assert str(bad) in run.stderr and problem in run.stderr and "Traceback" not in run.stderr


def _price(client: Any, emu: EmulatorThread, symbol: str) -> Decimal:
    from alpaca.data.historical.crypto import CryptoHistoricalDataClient
    from alpaca.data.requests import CryptoLatestBarRequest

    data = CryptoHistoricalDataClient(url_override=emu.base_url)
    return Decimal(
        repr(data.get_crypto_latest_bar(CryptoLatestBarRequest(symbol_or_symbols=symbol))[symbol].close)
    )


def test_resting_limit_pays_maker_fee_and_marketable_pays_taker() -> None:
    with EmulatorThread(synthetic_seed=7, start=START) as emu:
        client = _client(emu)
        price = _price(client, emu, "ETH/USD")
        marketable = client.submit_order(
            LimitOrderRequest(
                symbol="ETH/USD",
                qty=1,
                side=OrderSide.BUY,
                time_in_force=TimeInForce.GTC,
                limit_price=float(price * 2),
            )
        )
        emu.advance(1)
        assert client.get_order_by_id(marketable.id).status == OrderStatus.FILLED
        assert Decimal(client.get_open_position("ETHUSD").qty) == 1 - TAKER
        resting = client.submit_order(
            LimitOrderRequest(
                symbol="ETH/USD",
                qty=1,
                side=OrderSide.BUY,
                time_in_force=TimeInForce.GTC,
                limit_price=float((price * Decimal("0.995")).quantize(Decimal("0.01"))),
            )
        )
        for _ in range(24 * 30):
            emu.advance(3600)
            if client.get_order_by_id(resting.id).status == OrderStatus.FILLED:
                break
        assert client.get_order_by_id(resting.id).status == OrderStatus.FILLED
        assert Decimal(client.get_open_position("ETHUSD").qty) == (1 - TAKER) + (1 - MAKER)
