"""Orders move cash and positions as Alpaca crypto does: fees in the received asset, reservations, fills."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from alpaca.common.exceptions import APIError
from alpaca.data.historical.crypto import CryptoHistoricalDataClient
from alpaca.data.requests import CryptoLatestBarRequest
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, OrderStatus, TimeInForce
from alpaca.trading.requests import LimitOrderRequest, MarketOrderRequest

from cappuccino_daemon.emulator.testing import EmulatorThread

FEE = Decimal("0.0025")


def _price(data: CryptoHistoricalDataClient, symbol: str) -> Decimal:
    bar = data.get_crypto_latest_bar(CryptoLatestBarRequest(symbol_or_symbols=symbol))[symbol]
    return Decimal(repr(bar.close))


def _buy(trading: TradingClient, symbol: str, qty: float, **kw: object) -> str:
    order = trading.submit_order(
        MarketOrderRequest(symbol=symbol, qty=qty, side=OrderSide.BUY, time_in_force=TimeInForce.GTC, **kw)
    )
    return str(order.id)


def test_buy_then_sell_moves_cash_and_position_with_fees(
    emu: EmulatorThread, trading: TradingClient, data: CryptoHistoricalDataClient
) -> None:
    price = _price(data, "ETH/USD")
    order_id = _buy(trading, "ETH/USD", 0.5)
    filled = trading.get_order_by_id(order_id)
    assert filled.status == OrderStatus.FILLED and Decimal(str(filled.filled_qty)) == Decimal("0.5")
    assert Decimal(str(filled.filled_avg_price)) == price
    account = trading.get_account()
    assert Decimal(account.cash) == (Decimal(100000) - Decimal("0.5") * price).quantize(Decimal("0.00000001"))
    position = trading.get_open_position("ETHUSD")
    assert Decimal(position.qty) == Decimal("0.5") * (1 - FEE)  # the fee is paid in ETH
    assert Decimal(position.qty) < Decimal(str(filled.filled_qty))
    assert Decimal(position.cost_basis) == (Decimal("0.5") * price).quantize(Decimal("0.00000001"))
    assert Decimal(account.equity) == pytest.approx(Decimal(account.cash) + Decimal(position.market_value))

    # selling filled_qty fails exactly like Alpaca: the position is smaller than the order
    with pytest.raises(APIError) as raised:
        trading.submit_order(
            MarketOrderRequest(symbol="ETH/USD", qty=0.5, side=OrderSide.SELL, time_in_force=TimeInForce.GTC)
        )
    assert raised.value.status_code == 403 and raised.value.code == 40310000
    assert "insufficient balance for ETH" in raised.value.message

    emu.advance(3600)
    new_price = _price(data, "ETH/USD")
    qty = Decimal(position.qty)
    sell = trading.submit_order(
        MarketOrderRequest(
            symbol="ETH/USD", qty=float(qty), side=OrderSide.SELL, time_in_force=TimeInForce.IOC
        )
    )
    assert trading.get_order_by_id(sell.id).status == OrderStatus.FILLED
    proceeds = (qty * new_price * (1 - FEE)).quantize(Decimal("0.00000001"))
    assert Decimal(trading.get_account().cash) == Decimal(account.cash) + proceeds  # the fee is paid in USD
    assert trading.get_all_positions() == []


def test_notional_buy_and_reserved_cash(trading: TradingClient, data: CryptoHistoricalDataClient) -> None:
    price = _price(data, "BTC/USD")
    order = trading.submit_order(
        MarketOrderRequest(symbol="BTC/USD", notional=1000, side=OrderSide.BUY, time_in_force=TimeInForce.GTC)
    )
    filled = trading.get_order_by_id(order.id)
    qty = Decimal(str(filled.filled_qty))
    assert qty == (Decimal(1000) / price).quantize(Decimal("0.000000001"), rounding="ROUND_DOWN")
    limit = trading.submit_order(
        LimitOrderRequest(
            symbol="LTC/USD", qty=10, side=OrderSide.BUY, time_in_force=TimeInForce.GTC, limit_price=1.0
        )
    )
    account = trading.get_account()
    assert Decimal(account.buying_power) == Decimal(account.cash) - Decimal(10)  # held for the resting limit
    trading.cancel_order_by_id(limit.id)
    assert Decimal(trading.get_account().buying_power) == Decimal(account.cash)


def test_fill_delay_and_slippage_in_simulated_time() -> None:
    with EmulatorThread(synthetic_seed=3, fill_delay_s=30, slippage_bps=10) as emu:
        trading = TradingClient(emu.key_id, emu.secret_key, paper=True, url_override=emu.base_url)
        data = CryptoHistoricalDataClient(url_override=emu.base_url)
        price = _price(data, "BTC/USD")
        order_id = _buy(trading, "BTC/USD", 0.01, client_order_id="slow-1")
        assert trading.get_order_by_id(order_id).status == OrderStatus.PENDING_NEW
        emu.advance(29)
        assert trading.get_order_by_id(order_id).status == OrderStatus.NEW
        emu.advance(1)
        order = trading.get_order_by_client_id("slow-1")
        assert order.status == OrderStatus.FILLED
        assert order.filled_at == emu.now() and order.filled_avg_price is not None
        assert Decimal(str(order.filled_avg_price)) == (price * Decimal("1.001")).quantize(Decimal("1e-9"))


def test_limit_orders_rest_fill_through_bars_and_ioc_cancels(
    emu: EmulatorThread, trading: TradingClient, data: CryptoHistoricalDataClient
) -> None:
    price = _price(data, "BTC/USD")
    far = trading.submit_order(
        LimitOrderRequest(
            symbol="BTC/USD",
            qty=0.01,
            side=OrderSide.BUY,
            time_in_force=TimeInForce.IOC,
            limit_price=float(price * Decimal("0.5")),
        )
    )
    assert trading.get_order_by_id(far.id).status == OrderStatus.CANCELED
    marketable = trading.submit_order(
        LimitOrderRequest(
            symbol="BTC/USD",
            qty=0.01,
            side=OrderSide.BUY,
            time_in_force=TimeInForce.GTC,
            limit_price=float(price * Decimal("1.01")),
        )
    )
    filled = trading.get_order_by_id(marketable.id)
    assert filled.status == OrderStatus.FILLED and Decimal(str(filled.filled_avg_price)) == price
    # a resting sell just above the market fills at its limit once a later bar trades through it
    target = (price * Decimal("1.002")).quantize(Decimal("0.01"))
    resting = trading.submit_order(
        LimitOrderRequest(
            symbol="BTC/USD",
            qty=0.009,
            side=OrderSide.SELL,
            time_in_force=TimeInForce.GTC,
            limit_price=float(target),
        )
    )
    assert trading.get_order_by_id(resting.id).status == OrderStatus.NEW
    for _ in range(200):
        emu.advance(3600)
        state = trading.get_order_by_id(resting.id)
        if state.status == OrderStatus.FILLED:
            break
    assert state.status == OrderStatus.FILLED and Decimal(str(state.filled_avg_price)) == target
    assert state.filled_at is not None and state.filled_at <= emu.now()
    assert state.filled_at.second == 0 and state.filled_at > emu.now() - timedelta(hours=1)  # a minute close


def test_close_position_and_close_all(trading: TradingClient) -> None:
    _buy(trading, "BTC/USD", 0.002)
    _buy(trading, "ETH/USD", 0.1)
    trading.get_account()  # both fill
    before = Decimal(trading.get_open_position("BTCUSD").qty)
    half = trading.close_position("BTCUSD", close_options=None)
    assert Decimal(str(half.qty)) == before
    trading.get_account()
    with pytest.raises(APIError) as raised:
        trading.get_open_position("BTCUSD")
    assert raised.value.status_code == 404 and raised.value.code == 40410000
    results = trading.close_all_positions(cancel_orders=True)
    assert [r.symbol for r in results] == ["ETHUSD"] and results[0].status == 200
    trading.get_account()
    assert trading.get_all_positions() == []
