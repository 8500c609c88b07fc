"""``/v2/account/activities``: FILL per execution, CFEE per asset and day, Alpaca's paging.

alpaca-py 0.44 has no activities method, so the tests call the client's own ``get`` (its HTTP,
auth and error handling) and parse every item with the SDK's ``TradeActivity``/``NonTradeActivity``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import ActivityType, OrderSide, TimeInForce
from alpaca.trading.models import NonTradeActivity, TradeActivity
from alpaca.trading.requests import MarketOrderRequest

from cappuccino_daemon.emulator.testing import EmulatorThread

START = datetime(2024, 1, 1, tzinfo=UTC)


def _order(client: Any, side: OrderSide, qty: float) -> Any:
    return client.submit_order(
        MarketOrderRequest(symbol="ETH/USD", qty=qty, side=side, time_in_force=TimeInForce.GTC)
    )


def _parse(items: list[dict[str, Any]]) -> list[TradeActivity | NonTradeActivity]:
    return [TradeActivity(**i) if i["activity_type"] == "FILL" else NonTradeActivity(**i) for i in items]


@pytest.fixture
def traded() -> Any:
    with EmulatorThread(synthetic_seed=7, start=START) as emu:
        client = TradingClient(emu.key_id, emu.secret_key, paper=True, url_override=emu.base_url)
        _order(client, OrderSide.BUY, 1.0)
        emu.advance(3600)
        _order(client, OrderSide.SELL, 0.5)
        emu.advance(3600)
        yield emu, client


def test_fills_and_daily_crypto_fees_parse_with_the_sdk(traded: Any) -> None:
    emu, client = traded
    before_midnight = _parse(client.get("/account/activities"))
    assert [a.activity_type for a in before_midnight] == [ActivityType.FILL, ActivityType.FILL]
    sell, buy = before_midnight  # newest first by default
    assert (buy.side, buy.qty, buy.cum_qty, buy.leaves_qty, buy.symbol) == (
        OrderSide.BUY,
        1.0,
        1.0,
        0.0,
        "ETHUSD",
    )
    assert sell.side == OrderSide.SELL and sell.order_status == "filled"
    emu.set_time(datetime(2024, 1, 2, 0, 0, 1, tzinfo=UTC))
    fees = _parse(client.get("/account/activities/CFEE"))
    assert {f.activity_type for f in fees} == {ActivityType.CFEE}
    by_asset = {f.qty != 0: f for f in fees}  # the buy's fee is in ETH, the sell's in USD
    assert by_asset[True].qty == pytest.approx(-0.0025) and by_asset[True].net_amount == 0
    assert by_asset[False].net_amount < 0 and str(by_asset[False].date) == "2024-01-01"
    assert Decimal(str(-by_asset[False].net_amount)) == Decimal(str(0.5 * sell.price * 0.0025)).quantize(
        Decimal("1e-8")
    )


def test_paging_filters_and_directions(traded: Any) -> None:
    emu, client = traded
    emu.set_time(datetime(2024, 1, 2, 0, 0, 1, tzinfo=UTC))
    everything = client.get("/account/activities", {"direction": "asc"})
    assert len(everything) == 4
    seen, token = [], None
    while True:
        params = {"direction": "asc", "page_size": 1, **({"page_token": token} if token else {})}
        page = client.get("/account/activities", params)
        if not page:
            break
        seen.extend(page)
        token = page[-1]["id"]
    assert seen == everything
    fills_only = client.get("/account/activities", {"activity_types": "FILL", "date": "2024-01-01"})
    assert len(fills_only) == 2
    assert (
        client.get("/account/activities", {"after": "2024-01-01T23:00:00Z", "activity_types": "FILL"}) == []
    )
    with pytest.raises(APIError) as too_big:
        client.get("/account/activities", {"page_size": 101})
    assert too_big.value.status_code == 422


def test_activities_validate_against_the_spec(traded: Any, spec: Any) -> None:
    emu, client = traded
    emu.set_time(datetime(2024, 1, 2, 0, 0, 1, tzinfo=UTC))
    body = client.get("/account/activities")
    assert {i["activity_type"] for i in body} == {"FILL", "CFEE"}
    assert spec.errors("trading", "GET", "/v2/account/activities", 200, body) == []
    typed = client.get("/account/activities/FILL")
    assert typed and spec.errors("trading", "GET", "/v2/account/activities", 200, typed) == []
    # The typed route's schema is a oneOf of two schemas with no required keys, so every object
    # matches both and even Alpaca's own example fails it: validate with the untyped route's anyOf.
    example = spec.docs["trading"]["components"]["schemas"]["TradingActivities"]["examples"][0]
    assert spec.errors("trading", "GET", "/v2/account/activities/{activity_type}", 200, [example])
