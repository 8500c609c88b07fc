"""Injected faults: Alpaca's error bodies, latency, hangs, dropped connections, ambiguous submits."""

from __future__ import annotations

import json
import time

import pytest
import requests
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, TimeInForce
from alpaca.trading.requests import MarketOrderRequest

from cappuccino_daemon.emulator.faults import parse_rule
from cappuccino_daemon.emulator.testing import EmulatorThread


def _no_retry(client: TradingClient) -> TradingClient:
    client._retry = 0  # type: ignore[attr-defined]  # alpaca-py retries 429/504 with 3 s sleeps
    return client


@pytest.mark.parametrize("kind", ["429", "500", "503", "504"])
def test_error_faults_carry_alpaca_bodies(emu: EmulatorThread, trading: TradingClient, kind: str) -> None:
    emu.set_faults(f"account:{kind}:1:1")
    with pytest.raises(APIError) as raised:
        _no_retry(trading).get_account()
    assert raised.value.status_code == int(kind) and isinstance(raised.value.code, int)
    assert trading.get_account().cash == "100000"  # TIMES=1: the next call is healthy


def test_sdk_retries_429_then_succeeds(emu: EmulatorThread, trading: TradingClient) -> None:
    trading._retry_wait = 0  # type: ignore[attr-defined]
    emu.set_faults("clock:429:1:2")
    assert trading.get_clock().timestamp == emu.now()
    assert emu.exchange.faults.rules()[0].fired == 2


def test_plain_text_500(emu: EmulatorThread, trading: TradingClient) -> None:
    emu.set_faults("positions:500text:1")
    with pytest.raises(APIError) as raised:
        trading.get_all_positions()
    assert raised.value.status_code == 500 and str(raised.value) == "Internal Server Error"
    with pytest.raises(json.JSONDecodeError):
        _ = raised.value.code


def test_latency_and_hang(emu: EmulatorThread, trading: TradingClient) -> None:
    emu.set_faults("clock:latency=0.4:1")
    began = time.monotonic()
    trading.get_clock()
    assert time.monotonic() - began >= 0.4
    emu.set_faults("data:hang=5:1")
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.get(
            f"{emu.base_url}/v1beta3/crypto/us/latest/bars", params={"symbols": "BTC/USD"}, timeout=0.3
        )
    assert trading.get_clock() is not None  # trading routes are unaffected by a "data" rule


def test_dropped_connection(emu: EmulatorThread, trading: TradingClient) -> None:
    emu.set_faults("orders_list:drop:1:1")
    with pytest.raises(requests.exceptions.ConnectionError):
        trading.get_orders()
    assert trading.get_orders() == []


def test_ambiguous_submit_accepts_the_order_but_loses_the_answer(
    emu: EmulatorThread, trading: TradingClient
) -> None:
    emu.set_faults("orders_submit:ambiguous:1:1")
    request = MarketOrderRequest(
        symbol="BTC/USD",
        qty=0.001,
        side=OrderSide.BUY,
        time_in_force=TimeInForce.GTC,
        client_order_id="amb-1",
    )
    with pytest.raises(requests.exceptions.ConnectionError):
        trading.submit_order(request)
    found = trading.get_order_by_client_id("amb-1")  # how a worker resolves the ambiguity
    assert found.client_order_id == "amb-1"
    with pytest.raises(APIError) as raised:
        trading.submit_order(request)  # a blind retry is refused, not doubled
    assert raised.value.status_code == 422


def test_rates_are_seeded_and_admin_endpoint_switches_faults(emu: EmulatorThread) -> None:
    url = emu.base_url
    reply = requests.post(f"{url}/admin/faults", json={"faults": ["clock:503:0.5"]}, timeout=10).json()
    assert reply["faults"][0]["kind"] == "503" and reply["faults"][0]["rate"] == 0.5
    headers = {"APCA-API-KEY-ID": "k", "APCA-API-SECRET-KEY": "s"}
    codes = [requests.get(f"{url}/v2/clock", headers=headers, timeout=10).status_code for _ in range(40)]
    assert 5 < codes.count(503) < 35 and set(codes) == {200, 503}
    assert requests.get(f"{url}/v2/clock", headers=headers, timeout=10).status_code in (200, 503)
    requests.delete(f"{url}/admin/faults", timeout=10)
    assert {requests.get(f"{url}/v2/clock", headers=headers, timeout=10).status_code for _ in range(10)} == {
        200
    }
    assert requests.get(f"{url}/admin/state", timeout=10).json()["faults"] == []


def test_fault_specs_are_validated() -> None:
    rule = parse_rule("orders_*:latency=1.5:0.25:3")
    assert (rule.route, rule.kind, rule.seconds, rule.rate, rule.times) == (
        "orders_*",
        "latency",
        1.5,
        0.25,
        3,
    )
    assert rule.matches("orders_submit") and not rule.matches("account")
    assert parse_rule("data:504").matches("bars") and not parse_rule("data:504").matches("account")
    for bad in ("account", "account:418:1", "account:500:2", "account:latency:1"):
        with pytest.raises(ValueError):
            parse_rule(bad)
