"""Every call of the reference's request table, through the real alpaca-py clients (raw_data=False)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from alpaca.data.historical.crypto import CryptoHistoricalDataClient
from alpaca.data.models import Bar, Quote, Snapshot, Trade
from alpaca.data.requests import (
    CryptoBarsRequest,
    CryptoLatestBarRequest,
    CryptoLatestOrderbookRequest,
    CryptoLatestQuoteRequest,
    CryptoLatestTradeRequest,
    CryptoQuoteRequest,
    CryptoSnapshotRequest,
    CryptoTradesRequest,
)
from alpaca.data.timeframe import TimeFrame, TimeFrameUnit
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import (
    AssetClass,
    AssetStatus,
    OrderSide,
    OrderStatus,
    QueryOrderStatus,
    TimeInForce,
)
from alpaca.trading.models import Asset, Clock, Order, Position, TradeAccount
from alpaca.trading.requests import (
    ClosePositionRequest,
    GetAssetsRequest,
    GetOrdersRequest,
    LimitOrderRequest,
    MarketOrderRequest,
)

from cappuccino_daemon.bars import read_bars_csv
from cappuccino_daemon.emulator.synthetic import SyntheticMarket
from cappuccino_daemon.emulator.testing import EmulatorThread

PAIRS = ["BTC/USD", "ETH/USD"]


def test_trading_calls_parse(emu: EmulatorThread, trading: TradingClient) -> None:
    account = trading.get_account()
    assert isinstance(account, TradeAccount) and account.cash == "100000"
    assert str(account.status) in ("AccountStatus.ACTIVE", "ACTIVE")
    clock = trading.get_clock()
    assert isinstance(clock, Clock) and clock.timestamp == emu.now()

    order = trading.submit_order(
        MarketOrderRequest(
            symbol="BTC/USD",
            qty=0.0012345,
            side=OrderSide.BUY,
            time_in_force=TimeInForce.GTC,
            client_order_id="rl-123",
        )
    )
    assert isinstance(order, Order) and order.status == OrderStatus.PENDING_NEW and order.symbol == "BTC/USD"
    assert order.qty is not None and float(order.qty) == pytest.approx(0.0012345)
    fetched = trading.get_order_by_id(order.id)
    assert fetched.status == OrderStatus.FILLED and fetched.filled_avg_price is not None
    assert trading.get_order_by_client_id("rl-123").id == order.id

    notional = trading.submit_order(
        MarketOrderRequest(
            symbol="BTC/USD", notional=15.5, side=OrderSide.SELL, time_in_force=TimeInForce.IOC
        )
    )
    assert notional.notional == "15.5" and notional.qty is None
    limit = trading.submit_order(
        LimitOrderRequest(
            symbol="ETH/USD", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.GTC, limit_price=500.5
        )
    )
    assert limit.limit_price is not None and float(limit.limit_price) == 500.5

    assert len(trading.get_orders()) == 1  # open only: the resting limit
    everything = trading.get_orders(
        GetOrdersRequest(
            status=QueryOrderStatus.ALL,
            limit=500,
            after=datetime(2023, 1, 1),
            direction="asc",
            symbols=PAIRS,
            nested=True,
        )
    )
    assert [o.id for o in everything] == [order.id, notional.id, limit.id]

    positions = trading.get_all_positions()
    assert len(positions) == 1 and isinstance(positions[0], Position) and positions[0].symbol == "BTCUSD"
    assert trading.get_open_position("BTCUSD").qty == positions[0].qty

    assets = trading.get_all_assets(
        GetAssetsRequest(asset_class=AssetClass.CRYPTO, status=AssetStatus.ACTIVE)
    )
    assert {a.symbol for a in assets} >= set(PAIRS) and all(isinstance(a, Asset) for a in assets)
    btc = trading.get_asset("BTC/USD")
    assert btc.min_order_size == 0.0001 and btc.min_trade_increment == 1e-9 and btc.price_increment == 1

    canceled = trading.cancel_orders()
    assert [c.id for c in canceled] == [limit.id] and canceled[0].status == 200
    closing = trading.close_position("BTCUSD", ClosePositionRequest(percentage="50"))
    assert isinstance(closing, Order) and closing.side == OrderSide.SELL
    closed = trading.close_all_positions(cancel_orders=True)
    assert [c.symbol for c in closed] == ["BTCUSD"] and closed[0].status == 200

    spare = trading.submit_order(
        LimitOrderRequest(
            symbol="ETH/USD", qty=0.1, side=OrderSide.BUY, time_in_force=TimeInForce.GTC, limit_price=100
        )
    )
    assert trading.cancel_order_by_id(spare.id) is None
    assert trading.get_order_by_id(spare.id).status == OrderStatus.CANCELED


def test_data_calls_parse(emu: EmulatorThread, data: CryptoHistoricalDataClient) -> None:
    now = emu.now()
    bars = data.get_crypto_bars(
        CryptoBarsRequest(
            symbol_or_symbols=PAIRS,
            timeframe=TimeFrame(1, TimeFrameUnit.Hour),
            start=now - timedelta(days=1),
            end=now,
            limit=100,
        )
    )
    assert sum(len(v) for v in bars.data.values()) == 48
    assert all(isinstance(b, Bar) for b in bars.data["BTC/USD"])
    assert bars.data["BTC/USD"][-1].timestamp == now - timedelta(hours=1)  # only closed bars

    latest = data.get_crypto_latest_bar(CryptoLatestBarRequest(symbol_or_symbols=PAIRS))
    assert latest["ETH/USD"].timestamp == now - timedelta(minutes=1)  # the finest bar: a minute
    quote = data.get_crypto_latest_quote(CryptoLatestQuoteRequest(symbol_or_symbols=PAIRS))["BTC/USD"]
    assert isinstance(quote, Quote) and quote.bid_price < quote.ask_price
    trade = data.get_crypto_latest_trade(CryptoLatestTradeRequest(symbol_or_symbols=PAIRS))["BTC/USD"]
    assert isinstance(trade, Trade) and trade.price == latest["BTC/USD"].close
    snap = data.get_crypto_snapshot(CryptoSnapshotRequest(symbol_or_symbols=PAIRS))["ETH/USD"]
    assert isinstance(snap, Snapshot) and snap.previous_daily_bar is not None
    book = data.get_crypto_latest_orderbook(CryptoLatestOrderbookRequest(symbol_or_symbols=PAIRS))["BTC/USD"]
    assert book.bids[0].price < book.asks[0].price
    quotes = data.get_crypto_quotes(
        CryptoQuoteRequest(symbol_or_symbols=PAIRS, start=now - timedelta(hours=5))
    )
    trades = data.get_crypto_trades(
        CryptoTradesRequest(symbol_or_symbols=PAIRS, start=now - timedelta(hours=5))
    )
    # one of each at every minute bar's close
    assert len(quotes.data["BTC/USD"]) == 5 * 60 + 1 and len(trades.data["ETH/USD"]) == 5 * 60 + 1


def _all_bars(client: CryptoHistoricalDataClient, symbols: list[str], start: datetime, end: datetime) -> Any:
    request = CryptoBarsRequest(symbol_or_symbols=symbols, timeframe=TimeFrame.Hour, start=start, end=end)
    return client.get_crypto_bars(request).data


def test_pagination_returns_every_synthetic_bar() -> None:
    start = datetime(2024, 3, 1, tzinfo=UTC)
    with EmulatorThread(synthetic_seed=4, start=start, page_size=37, history_days=30) as emu:
        client = CryptoHistoricalDataClient(url_override=emu.base_url)  # anonymous, like the real data API
        got = _all_bars(client, ["BTC/USD", "ETH/USD", "UNI/USD"], start - timedelta(days=20), start)
        origin = emu.exchange.market.first_bar_time()
    reference = SyntheticMarket(4, start=origin)
    n = 20 * 24
    for symbol in ("BTC/USD", "ETH/USD", "UNI/USD"):
        expected = reference.frame(symbol.split("/")[0], 30 * 24).iloc[-n:]
        bars = got[symbol]
        assert len(bars) == n  # 3 x 480 points through pages of 37
        assert [b.timestamp for b in bars] == list(expected.index.to_pydatetime())
        assert [b.close for b in bars] == pytest.approx(expected["close"].tolist(), rel=1e-12)


def test_pagination_replays_the_shared_csvs(ohlcv_dir: Path) -> None:
    start = datetime(2021, 3, 1, tzinfo=UTC)
    with EmulatorThread(bars_dir=ohlcv_dir, start=start, page_size=250) as emu:
        client = CryptoHistoricalDataClient(emu.key_id, emu.secret_key, url_override=emu.base_url)
        got = _all_bars(client, ["AAVE/USD", "BTC/USD", "LTC/USD"], datetime(2020, 12, 1, tzinfo=UTC), start)
    for base in ("AAVE", "BTC", "LTC"):
        frame = read_bars_csv(ohlcv_dir / f"{base}-USDT_1h.csv")
        expected = frame[frame.index + pd.Timedelta(hours=1) <= pd.Timestamp(start)]
        bars = got[f"{base}/USD"]
        assert len(bars) == len(expected) > 2000
        assert [b.timestamp for b in bars] == list(expected.index.to_pydatetime())
        assert [b.close for b in bars] == expected["close"].tolist()
        assert [b.volume for b in bars] == expected["volume"].tolist()


def test_limit_counts_points_across_symbols_and_tokens_continue(emu: EmulatorThread) -> None:
    import requests

    url = f"{emu.base_url}/v1beta3/crypto/us/bars"
    params: dict[str, Any] = {
        "symbols": "BTC/USD,ETH/USD",
        "timeframe": "1Hour",
        "start": "2023-12-31T20:00:00Z",
        "limit": 6,
    }
    first = requests.get(url, params=params, timeout=10).json()
    assert len(first["bars"]["BTC/USD"]) == 4 and len(first["bars"]["ETH/USD"]) == 2
    assert first["next_page_token"]
    second = requests.get(url, params={**params, "page_token": first["next_page_token"]}, timeout=10).json()
    assert list(second["bars"]) == ["ETH/USD"] and len(second["bars"]["ETH/USD"]) == 2
    assert second["next_page_token"] is None
    desc = requests.get(url, params={**params, "sort": "desc", "limit": 10}, timeout=10).json()
    times = [b["t"] for b in desc["bars"]["BTC/USD"]]
    assert times == sorted(times, reverse=True)


def test_daily_bars_aggregate_hourly(emu: EmulatorThread, data: CryptoHistoricalDataClient) -> None:
    now = emu.now()
    daily = data.get_crypto_bars(
        CryptoBarsRequest(
            symbol_or_symbols="BTC/USD",
            timeframe=TimeFrame.Day,
            start=now - timedelta(days=3),
            end=now - timedelta(seconds=1),
        )
    ).data["BTC/USD"]
    hourly = data.get_crypto_bars(
        CryptoBarsRequest(
            symbol_or_symbols="BTC/USD", timeframe=TimeFrame.Hour, start=now - timedelta(days=1), end=now
        )
    ).data["BTC/USD"]
    last_day = daily[-1]
    assert last_day.timestamp == now - timedelta(days=1) and len(daily) == 3
    assert last_day.open == hourly[0].open and last_day.close == hourly[-1].close
    assert last_day.high == max(b.high for b in hourly) and last_day.volume == pytest.approx(
        sum(b.volume for b in hourly)
    )


def test_advancing_the_clock_reveals_exactly_the_closed_bars(
    emu: EmulatorThread, data: CryptoHistoricalDataClient
) -> None:
    req = CryptoLatestBarRequest(symbol_or_symbols="BTC/USD")
    before = data.get_crypto_latest_bar(req)["BTC/USD"].timestamp
    emu.advance(59)
    assert data.get_crypto_latest_bar(req)["BTC/USD"].timestamp == before
    emu.advance(1)
    assert data.get_crypto_latest_bar(req)["BTC/USD"].timestamp == before + timedelta(minutes=1)
    hourly = CryptoBarsRequest(symbol_or_symbols="BTC/USD", timeframe=TimeFrame.Hour, start=before)
    emu.advance(3600 - 61)
    assert data.get_crypto_bars(hourly).data == {}  # the hour has not closed yet
    emu.advance(1)
    assert [b.timestamp for b in data.get_crypto_bars(hourly).data["BTC/USD"]] == [
        before + timedelta(minutes=1)
    ]


def test_keys_are_optional_on_data_but_required_on_trading(emu: EmulatorThread) -> None:
    import requests

    anonymous = CryptoHistoricalDataClient(url_override=emu.base_url)
    assert anonymous.get_crypto_latest_bar(CryptoLatestBarRequest(symbol_or_symbols="BTC/USD"))
    response = requests.get(f"{emu.base_url}/v2/account", timeout=10)
    assert response.status_code == 401
    assert response.json() == {"code": 40110000, "message": "request is not authorized"}
    only_key = requests.get(f"{emu.base_url}/v2/account", headers={"APCA-API-KEY-ID": "PK1"}, timeout=10)
    assert only_key.status_code == 401


def test_unique_ids_are_uuids(trading: TradingClient) -> None:
    order = trading.submit_order(
        MarketOrderRequest(symbol="ETHUSD", qty=0.01, side=OrderSide.BUY, time_in_force=TimeInForce.GTC)
    )
    assert isinstance(order.id, uuid.UUID) and order.symbol == "ETH/USD"
    assert Decimal(trading.get_account().cash) < Decimal(100000)
