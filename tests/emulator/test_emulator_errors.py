"""Each error case: the status and body Alpaca sends, raised by alpaca-py as APIError."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
import requests
from alpaca.common.exceptions import APIError
from alpaca.data.historical.crypto import CryptoHistoricalDataClient
from alpaca.data.requests import CryptoBarsRequest
from alpaca.data.timeframe import TimeFrame
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, TimeInForce
from alpaca.trading.requests import LimitOrderRequest, MarketOrderRequest

from cappuccino_daemon.emulator.testing import EmulatorThread


def _post(emu: EmulatorThread, body: dict[str, Any]) -> requests.Response:
    headers = {"APCA-API-KEY-ID": emu.key_id, "APCA-API-SECRET-KEY": emu.secret_key}
    return requests.post(f"{emu.base_url}/v2/orders", data=json.dumps(body), headers=headers, timeout=10)


def _order(**kw: Any) -> dict[str, Any]:
    return {"symbol": "BTC/USD", "qty": 0.01, "side": "buy", "type": "market", "time_in_force": "gtc", **kw}


@pytest.mark.parametrize(
    ("body", "status", "expected"),
    [
        (_order(time_in_force="day"), 422, {"code": 42210000, "message": "invalid crypto time_in_force"}),
        (_order(type="stop"), 422, {"code": 40010001, "message": "invalid order type for crypto order"}),
        (_order(qty=None), 422, {"code": 40010001, "message": "qty or notional is required"}),
        (_order(notional=20), 422, {"code": 40010001, "message": "only one of qty or notional is accepted"}),
        (
            _order(client_order_id="x" * 129),
            422,
            {"code": 40010001, "message": "client_order_id must be no more than 128 characters"},
        ),
        (
            _order(qty=None, notional=5),
            403,
            {"code": 40310000, "message": "cost basis must be >= minimal amount of order 10"},
        ),
        (_order(symbol="DOGE/USD"), 422, {"code": 40010001, "message": 'asset "DOGE/USD" not found'}),
    ],
)
def test_order_rejections(
    emu: EmulatorThread, body: dict[str, Any], status: int, expected: dict[str, Any]
) -> None:
    response = _post(emu, body)
    assert response.status_code == status
    assert response.json() == expected
    assert response.headers["content-type"].startswith("application/json")


def test_sdk_raises_apierror_with_code(emu: EmulatorThread, trading: TradingClient) -> None:
    def submit(**kw: Any) -> None:
        args: dict[str, Any] = {
            "symbol": "BTC/USD",
            "side": OrderSide.BUY,
            "time_in_force": TimeInForce.GTC,
            **kw,
        }
        trading.submit_order(MarketOrderRequest(**args))

    with pytest.raises(APIError) as raised:
        submit(notional=150_000)  # more than the 100k cash, less than the 200k maximum
    assert raised.value.status_code == 403 and raised.value.code == 40310000
    assert raised.value.message.startswith("insufficient balance for USD (requested: ")
    with pytest.raises(APIError) as raised:
        submit(qty=0.00001)
    assert raised.value.status_code == 422 and "minimum order size 0.0001" in raised.value.message
    with pytest.raises(APIError) as raised:
        submit(qty=0.0012345678901)
    assert raised.value.status_code == 422 and "min_trade_increment" in raised.value.message
    with pytest.raises(APIError) as raised:
        trading.submit_order(
            MarketOrderRequest(symbol="ETH/USD", qty=1, side=OrderSide.SELL, time_in_force=TimeInForce.GTC)
        )
    assert raised.value.status_code == 403 and "insufficient balance for ETH" in raised.value.message
    submit(qty=0.001, client_order_id="dup")
    with pytest.raises(APIError) as raised:
        submit(qty=0.001, client_order_id="dup")
    assert raised.value.status_code == 422 and raised.value.message == "client_order_id must be unique"
    done = trading.get_order_by_client_id("dup")
    with pytest.raises(APIError) as raised:
        trading.cancel_order_by_id(done.id)
    assert raised.value.status_code == 422 and raised.value.message == 'order is already in "filled" state'


def test_wash_trade_guard(trading: TradingClient) -> None:
    trading.submit_order(
        MarketOrderRequest(symbol="BTC/USD", qty=0.01, side=OrderSide.BUY, time_in_force=TimeInForce.GTC)
    )
    trading.submit_order(
        LimitOrderRequest(
            symbol="BTC/USD",
            qty=0.005,
            side=OrderSide.SELL,
            time_in_force=TimeInForce.GTC,
            limit_price=10_000_000,
        )
    )
    with pytest.raises(APIError) as raised:
        trading.submit_order(
            MarketOrderRequest(symbol="BTC/USD", qty=0.001, side=OrderSide.BUY, time_in_force=TimeInForce.GTC)
        )
    assert raised.value.status_code == 403 and raised.value.message.startswith("potential wash trade")


def test_not_found_bodies(emu: EmulatorThread, trading: TradingClient) -> None:
    cases = [
        (lambda: trading.get_open_position("BTCUSD"), "position does not exist"),
        (
            lambda: trading.get_open_position("BTC/USD"),
            "position does not exist",
        ),  # slash path: 404 as on Alpaca
        (lambda: trading.get_order_by_id(uuid.uuid4()), "order not found"),
        (lambda: trading.get_order_by_client_id("nope"), "order not found for nope"),
        (lambda: trading.get_asset("DOGE/USD"), "asset not found"),
        (lambda: trading.close_position("ETHUSD"), "position not found: ETHUSD"),
    ]
    for call, message in cases:
        with pytest.raises(APIError) as raised:
            call()
        assert raised.value.status_code == 404 and raised.value.code == 40410000
        assert raised.value.message == message
    response = requests.get(
        f"{emu.base_url}/v2/account/",
        headers={"APCA-API-KEY-ID": "k", "APCA-API-SECRET-KEY": "s"},
        allow_redirects=False,
        timeout=10,
    )
    assert response.status_code == 404  # never a redirect


def test_required_keys_401_and_403() -> None:
    with EmulatorThread(require_keys=("PKGOOD", "good-secret")) as emu:
        assert (emu.key_id, emu.secret_key) == ("PKGOOD", "good-secret")
        ok = TradingClient(emu.key_id, emu.secret_key, paper=True, url_override=emu.base_url)
        assert ok.get_account().status is not None
        with pytest.raises(APIError) as raised:
            TradingClient("PKBAD", "good-secret", paper=True, url_override=emu.base_url).get_account()
        assert raised.value.status_code == 401 and raised.value.code == 40110000
        with pytest.raises(APIError) as raised:
            TradingClient("PKGOOD", "bad", paper=True, url_override=emu.base_url).get_account()
        assert raised.value.status_code == 403
        assert json.loads(str(raised.value)) == {"message": "forbidden."}
        with pytest.raises(APIError) as raised:
            CryptoHistoricalDataClient("PKBAD", "x", url_override=emu.base_url).get_crypto_bars(
                CryptoBarsRequest(symbol_or_symbols="BTC/USD", timeframe=TimeFrame.Hour)
            )
        assert raised.value.status_code == 401


def test_data_errors_have_no_code(emu: EmulatorThread, data: CryptoHistoricalDataClient) -> None:
    with pytest.raises(APIError) as raised:
        data.get_crypto_bars(CryptoBarsRequest(symbol_or_symbols="BTCUSD", timeframe=TimeFrame.Hour))
    assert raised.value.status_code == 400
    assert json.loads(str(raised.value)) == {
        "message": "invalid symbol: BTCUSD does not match ^[A-Z]+/[A-Z]+$"
    }
    with pytest.raises(KeyError):
        _ = raised.value.code  # alpaca-py's APIError.code fails on code-less bodies, as against Alpaca
    bad_time = requests.get(
        f"{emu.base_url}/v1beta3/crypto/us/bars",
        params={"symbols": "BTC/USD", "timeframe": "1Hour", "start": "0"},
        timeout=10,
    )
    assert bad_time.status_code == 400 and bad_time.json()["message"].startswith(
        "Invalid format for parameter start"
    )
    fine = requests.get(
        f"{emu.base_url}/v1beta3/crypto/us/bars",
        params={"symbols": "BTC/USD", "timeframe": "5Min", "start": "2023-12-31T23:00:00Z"},
        timeout=10,
    )
    assert fine.status_code == 200 and len(fine.json()["bars"]["BTC/USD"]) == 12  # minutes, aggregated
    for outside_alpaca in ("7Day", "60Min", "24Hour", "2Week", "0Hour", "4Month"):
        refused = requests.get(
            f"{emu.base_url}/v1beta3/crypto/us/bars",
            params={"symbols": "BTC/USD", "timeframe": outside_alpaca},
            timeout=10,
        )
        assert refused.status_code == 400, outside_alpaca
        assert refused.json() == {"message": f"invalid timeframe: {outside_alpaca!r}"}
    for served in ("1Day", "1D", "2Hour", "1Week"):
        ok = requests.get(
            f"{emu.base_url}/v1beta3/crypto/us/bars",
            params={"symbols": "BTC/USD", "timeframe": served},
            timeout=10,
        )
        assert ok.status_code == 200, served
    unknown = requests.get(
        f"{emu.base_url}/v1beta3/crypto/us/latest/bars", params={"symbols": "DOGE/USD"}, timeout=10
    )
    assert unknown.status_code == 200 and unknown.json() == {"bars": {}}


def test_exponent_numbers_accepted_or_refused() -> None:
    with EmulatorThread(reject_exponent=True) as strict:
        response = _post(strict, _order(qty=None, notional=None) | {"qty": 1e-05})
        assert response.status_code == 422 and "exponent" in response.json()["message"]
    with EmulatorThread() as lenient:
        raw = b'{"symbol":"ETH/USD","qty":5e-02,"side":"buy","type":"market","time_in_force":"gtc"}'
        headers = {"APCA-API-KEY-ID": "k", "APCA-API-SECRET-KEY": "s"}
        response = requests.post(f"{lenient.base_url}/v2/orders", data=raw, headers=headers, timeout=10)
        assert response.status_code == 200 and response.json()["qty"] == "0.05"
