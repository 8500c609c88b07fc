"""Alpaca's JSON shapes: every trading decimal a string, ids UUIDs, exact-case enums, RFC-3339 times.

Trading objects mirror the official spec's examples (``order_class: ""`` for crypto, ``source`` and
``subtag`` nulls, ``extended_hours`` always present); market-data numbers are JSON numbers.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from cappuccino_daemon.emulator.engine import Engine, Position, usd
from cappuccino_daemon.emulator.market import NS, BarWindow, from_ns
from cappuccino_daemon.emulator.orders import Order
from cappuccino_daemon.emulator.symbols import AssetRule, asset_id, compact, pair

_NEW_YORK = ZoneInfo("America/New_York")


def num(value: Decimal | None) -> str | None:
    """A decimal as Alpaca writes it: plain notation, no trailing zeros (``"0.0012345"``, ``"100000"``)."""
    if value is None:
        return None
    if value == 0:
        return "0"
    text = format(value.normalize(), "f")
    return text


def ts(when: datetime | None) -> str | None:
    """RFC-3339 UTC with microseconds and a ``Z``, as trading responses carry."""
    if when is None:
        return None
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def bar_ts(ns: int) -> str:
    return from_ns(ns).strftime("%Y-%m-%dT%H:%M:%SZ")


def order_json(order: Order) -> dict[str, Any]:
    return {
        "id": order.id,
        "client_order_id": order.client_order_id,
        "created_at": ts(order.created_at),
        "updated_at": ts(order.updated_at),
        "submitted_at": ts(order.submitted_at),
        "filled_at": ts(order.filled_at),
        "expired_at": ts(order.expired_at),
        "canceled_at": ts(order.canceled_at),
        "failed_at": None,
        "replaced_at": None,
        "replaced_by": None,
        "replaces": None,
        "asset_id": asset_id(order.base),
        "symbol": order.symbol,
        "asset_class": "crypto",
        "notional": num(order.notional),
        "qty": num(order.qty),
        "filled_qty": num(order.filled_qty),
        "filled_avg_price": num(order.filled_avg_price),
        "order_class": "",
        "order_type": order.type,
        "type": order.type,
        "side": order.side,
        "position_intent": order.position_intent,
        "time_in_force": order.time_in_force,
        "limit_price": num(order.limit_price),
        "stop_price": None,
        "status": order.status,
        "extended_hours": False,
        "legs": None,
        "trail_percent": None,
        "trail_price": None,
        "hwm": None,
        "source": None,
        "subtag": None,
    }


def position_json(engine: Engine, pos: Position, now: datetime) -> dict[str, Any]:
    price = engine.price(pos.base, now) or Decimal(0)
    midnight = datetime(now.year, now.month, now.day, tzinfo=UTC)
    lastday = engine.price(pos.base, midnight) or price
    market_value = usd(pos.qty * price)
    cost = usd(pos.cost_basis)
    pl = market_value - cost
    intraday = usd((price - lastday) * pos.qty)
    lastday_value = lastday * pos.qty
    return {
        "asset_id": asset_id(pos.base),
        "symbol": compact(pos.base),
        "exchange": "CRYPTO",
        "asset_class": "crypto",
        "asset_marginable": False,
        "qty": num(pos.qty),
        "qty_available": num(engine.available_qty(pos.base, now)),
        "avg_entry_price": num(pos.avg_entry_price.quantize(Decimal("0.000000001"))),
        "side": "long",
        "market_value": num(market_value),
        "cost_basis": num(cost),
        "unrealized_pl": num(pl),
        "unrealized_plpc": num((pl / cost).quantize(Decimal("0.0000000001")) if cost else Decimal(0)),
        "unrealized_intraday_pl": num(intraday),
        "unrealized_intraday_plpc": num(
            (intraday / lastday_value).quantize(Decimal("0.0000000001")) if lastday_value else Decimal(0)
        ),
        "current_price": num(price),
        "lastday_price": num(lastday),
        "change_today": num(
            ((price - lastday) / lastday).quantize(Decimal("0.0000000001")) if lastday else None
        ),
    }


def account_json(engine: Engine, now: datetime) -> dict[str, Any]:
    acc = engine.account
    cash = usd(acc.cash)
    long_value = Decimal(0)
    for pos in engine.positions.values():
        price = engine.price(pos.base, now)
        if price is not None:
            long_value += pos.qty * price
    long_value = usd(long_value)
    equity = cash + long_value
    buying_power = usd(engine.free_cash())
    return {
        "id": acc.id,
        "admin_configurations": {},
        "user_configurations": None,
        "account_number": acc.account_number,
        "status": "ACTIVE",
        "crypto_status": "ACTIVE",
        "options_approved_level": 0,
        "options_trading_level": 0,
        "currency": "USD",
        "buying_power": num(buying_power),
        "regt_buying_power": num(buying_power),
        "daytrading_buying_power": "0",
        "effective_buying_power": num(buying_power),
        "non_marginable_buying_power": num(buying_power),
        "options_buying_power": "0",
        "bod_dtbp": "0",
        "cash": num(cash),
        "accrued_fees": "0",
        "portfolio_value": num(equity),
        "pattern_day_trader": False,
        "trading_blocked": False,
        "transfers_blocked": False,
        "account_blocked": False,
        "created_at": ts(acc.created_at),
        "trade_suspended_by_user": False,
        "multiplier": "1",
        "shorting_enabled": False,
        "equity": num(equity),
        "last_equity": num(usd(acc.last_equity)),
        "long_market_value": num(long_value),
        "short_market_value": "0",
        "position_market_value": num(long_value),
        "initial_margin": "0",
        "maintenance_margin": "0",
        "last_maintenance_margin": "0",
        "sma": "0",
        "daytrade_count": 0,
        "balance_asof": now.astimezone(UTC).date().isoformat(),
        "crypto_tier": 1,
        "intraday_adjustments": "0",
        "pending_reg_taf_fees": "0",
    }


def asset_json(base: str, rule: AssetRule) -> dict[str, Any]:
    return {
        "id": asset_id(base),
        "class": "crypto",
        "exchange": "CRYPTO",
        "symbol": pair(base),
        "name": f"{base}/USD pair",
        "status": "active",
        "tradable": True,
        "marginable": False,
        "maintenance_margin_requirement": 100,
        "margin_requirement_long": "100",
        "margin_requirement_short": "100",
        "shortable": False,
        "easy_to_borrow": False,
        "fractionable": True,
        "attributes": [],
        "min_order_size": num(rule.min_order_size),
        "min_trade_increment": num(rule.min_trade_increment),
        "price_increment": num(rule.price_increment),
    }


def _session(day: datetime) -> tuple[datetime, datetime]:
    local = day.astimezone(_NEW_YORK).date()
    return (
        datetime.combine(local, time(9, 30), _NEW_YORK),
        datetime.combine(local, time(16, 0), _NEW_YORK),
    )


def clock_json(now: datetime) -> dict[str, Any]:
    """The US-equity clock Alpaca serves (weekdays 09:30-16:00 New York, holidays ignored)."""
    local_now = now.astimezone(_NEW_YORK)
    open_, close = _session(local_now)
    is_open = local_now.weekday() < 5 and open_ <= local_now < close
    probe = local_now
    while True:
        o = _session(probe)[0]
        if probe.weekday() < 5 and o > local_now:
            next_open = o
            break
        probe = datetime.combine(probe.date() + timedelta(days=1), time(0, 0), _NEW_YORK)
    next_close = close if is_open else _session(next_open)[1]
    return {
        "timestamp": local_now.isoformat(),
        "is_open": is_open,
        "next_open": next_open.isoformat(),
        "next_close": next_close.isoformat(),
    }


def bar_json(ns: int, row: np.ndarray) -> dict[str, Any]:
    o, h, low, c, v = (float(x) for x in row)
    return {
        "t": bar_ts(ns),
        "o": o,
        "h": h,
        "l": low,
        "c": c,
        "v": v,
        "n": max(1, int(v * c / 2500.0)) if v > 0 else 0,
        "vw": round((h + low + c) / 3.0, 10),
    }


def window_bars(window: BarWindow) -> list[dict[str, Any]]:
    return [bar_json(int(window.times[i]), window.data[:, i]) for i in range(len(window))]


def quote_json(close_ns: int, price: float, volume: float) -> dict[str, Any]:
    """A quote at the bar's close: a 1 bp spread around the close, sizes from the bar's volume."""
    half = price * 0.00005
    size = round(max(volume, 0.0) / 500.0 + 0.001, 6)
    return {
        "t": bar_ts(close_ns),
        "bp": round(price - half, 10),
        "bs": size,
        "ap": round(price + half, 10),
        "as": size,
    }


def trade_json(close_ns: int, price: float, volume: float, side_up: bool) -> dict[str, Any]:
    return {
        "t": bar_ts(close_ns),
        "p": price,
        "s": round(max(volume, 0.0) / 1000.0 + 0.0001, 6),
        "i": int(close_ns // NS),
        "tks": "B" if side_up else "S",
    }
