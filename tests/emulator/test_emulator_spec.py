"""Responses validate against Alpaca's official OpenAPI specs (alpaca-mcp-server 2.4.0), no whitelist needed.

The reference's known spec-vs-SDK gaps concern the old spec's exchange enum (fixed in 2.4.0), request
number types (requests are not validated here) and nullable timestamps the SDK requires (we always send
them), so every response below must validate as is.
"""

from __future__ import annotations

import copy
from typing import Any

import requests

from cappuccino_daemon.emulator.testing import EmulatorThread

HEADERS = {"APCA-API-KEY-ID": "k", "APCA-API-SECRET-KEY": "s"}


def _call(emu: EmulatorThread, method: str, path: str, **kw: Any) -> requests.Response:
    return requests.request(method, emu.base_url + path, headers=HEADERS, timeout=10, **kw)


def test_trading_responses_validate(emu: EmulatorThread, spec: Any) -> None:
    order = {"symbol": "BTC/USD", "qty": 0.01, "side": "buy", "type": "market", "time_in_force": "gtc"}
    limit = {
        "symbol": "ETH/USD",
        "qty": 1,
        "side": "buy",
        "type": "limit",
        "time_in_force": "gtc",
        "limit_price": 100,
    }
    submitted = _call(emu, "POST", "/v2/orders", json=order)
    resting = _call(emu, "POST", "/v2/orders", json=limit).json()
    emu.advance(60)
    cases: list[tuple[str, str, str, dict[str, Any], int]] = [
        ("GET", "/v2/account", "/v2/account", {}, 200),
        ("GET", "/v2/orders/{order_id}", f"/v2/orders/{submitted.json()['id']}", {}, 200),
        (
            "GET",
            "/v2/orders:by_client_order_id",
            "/v2/orders:by_client_order_id",
            {"params": {"client_order_id": resting["client_order_id"]}},
            200,
        ),
        ("GET", "/v2/orders", "/v2/orders", {"params": {"status": "all"}}, 200),
        ("GET", "/v2/positions", "/v2/positions", {}, 200),
        ("GET", "/v2/positions/{symbol_or_asset_id}", "/v2/positions/BTCUSD", {}, 200),
        ("GET", "/v2/assets", "/v2/assets", {"params": {"asset_class": "crypto", "status": "active"}}, 200),
        ("GET", "/v2/assets/{symbol_or_asset_id}", "/v2/assets/BTC/USD", {}, 200),
        ("GET", "/v2/clock", "/v2/clock", {}, 200),
        ("POST", "/v2/orders", "/v2/orders", {"json": {**order, "time_in_force": "day"}}, 422),
        ("POST", "/v2/orders", "/v2/orders", {"json": {**order, "qty": 50}}, 403),
        (
            "DELETE",
            "/v2/positions/{symbol_or_asset_id}",
            "/v2/positions/BTCUSD",
            {"params": {"percentage": 50}},
            200,
        ),
        ("DELETE", "/v2/orders", "/v2/orders", {}, 207),
        ("DELETE", "/v2/positions", "/v2/positions", {"params": {"cancel_orders": "True"}}, 207),
    ]
    assert submitted.status_code == 200 and not spec.errors(
        "trading", "POST", "/v2/orders", 200, submitted.json()
    )
    for method, template, path, kw, status in cases:
        response = _call(emu, method, path, **kw)
        assert response.status_code == status, (path, response.text)
        body = response.json()
        assert body not in ([], {}), path
        assert spec.errors("trading", method, template, status, body) == [], (method, path)


def test_market_data_responses_validate(emu: EmulatorThread, spec: Any) -> None:
    params = {
        "symbols": "BTC/USD,ETH/USD",
        "timeframe": "1Hour",
        "start": "2023-12-30T00:00:00Z",
        "limit": 30,
    }
    for kind in ("bars", "quotes", "trades"):
        response = _call(emu, "GET", f"/v1beta3/crypto/us/{kind}", params=params)
        body = response.json()
        assert body["next_page_token"] and body[kind]
        assert spec.errors("data", "GET", f"/v1beta3/crypto/{{loc}}/{kind}", 200, body) == [], kind
    for kind in ("latest/bars", "latest/quotes", "latest/trades", "latest/orderbooks", "snapshots"):
        response = _call(emu, "GET", f"/v1beta3/crypto/us/{kind}", params={"symbols": "BTC/USD,ETH/USD"})
        assert response.status_code == 200
        assert spec.errors("data", "GET", f"/v1beta3/crypto/{{loc}}/{kind}", 200, response.json()) == [], kind
    bad = _call(emu, "GET", "/v1beta3/crypto/us/bars", params={**params, "symbols": "BTCUSD"})
    assert bad.status_code == 400
    assert spec.errors("data", "GET", "/v1beta3/crypto/{loc}/bars", 400, bad.json()) == []


def test_validator_catches_what_the_sdk_would_reject(emu: EmulatorThread, spec: Any) -> None:
    account = _call(emu, "GET", "/v2/account").json()
    broken = copy.deepcopy(account)
    broken["cash"] = 100000  # a number where Alpaca sends a string
    assert spec.errors("trading", "GET", "/v2/account", 200, account) == []
    assert spec.errors("trading", "GET", "/v2/account", 200, broken)
    bars = _call(emu, "GET", "/v1beta3/crypto/us/latest/bars", params={"symbols": "BTC/USD"}).json()
    del bars["bars"]["BTC/USD"]["vw"]
    assert spec.errors("data", "GET", "/v1beta3/crypto/{loc}/latest/bars", 200, bars)


def test_rate_limit_answer_validates(spec: Any) -> None:
    with EmulatorThread(synthetic_seed=7, rate_limit=1, rate_clock=lambda: 1_700_000_000.0) as emu:
        assert _call(emu, "GET", "/v2/clock").status_code == 200
        refused = _call(emu, "GET", "/v2/clock")
        assert refused.status_code == 429 and refused.json()["code"] == 42910000
        assert spec.errors("trading", "GET", "/v2/clock", 429, refused.json()) == []
