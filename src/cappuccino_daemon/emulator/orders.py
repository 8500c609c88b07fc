"""Order records and the validation of ``POST /v2/orders`` bodies, with Alpaca's error answers.

Numbers arrive as JSON floats from alpaca-py (``1e-05`` for small values); the app parses them
straight into ``Decimal`` so no binary rounding sneaks in, and can refuse exponent form on request.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from cappuccino_daemon.emulator import apierrors
from cappuccino_daemon.emulator.apierrors import CODE_UNPROCESSABLE
from cappuccino_daemon.emulator.symbols import base_from_any, pair

OPEN_STATUSES = frozenset({"pending_new", "accepted", "new", "partially_filled", "pending_cancel", "held"})
_DECIMAL_FIELDS = (
    "qty",
    "notional",
    "limit_price",
    "filled_qty",
    "filled_avg_price",
    "reserved_cash",
    "reserved_qty",
    "fee",
)
_TIME_FIELDS = (
    "created_at",
    "updated_at",
    "submitted_at",
    "filled_at",
    "canceled_at",
    "expired_at",
    "fill_due",
    "checked_until",
)


@dataclass
class Order:
    """One order as the emulator keeps it; ``serialise.order_json`` turns it into Alpaca's shape."""

    id: str
    client_order_id: str
    base: str
    side: str  # buy | sell
    type: str  # market | limit
    time_in_force: str  # gtc | ioc
    qty: Decimal | None
    notional: Decimal | None
    limit_price: Decimal | None
    status: str
    created_at: datetime
    updated_at: datetime
    submitted_at: datetime
    fill_due: datetime
    checked_until: datetime  # resting limit orders: bars up to here were already checked
    position_intent: str | None = None
    filled_qty: Decimal = Decimal(0)
    filled_avg_price: Decimal | None = None
    filled_at: datetime | None = None
    canceled_at: datetime | None = None
    expired_at: datetime | None = None
    reserved_cash: Decimal = Decimal(0)
    reserved_qty: Decimal = Decimal(0)
    fee: Decimal = Decimal(0)
    reason: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def symbol(self) -> str:
        return pair(self.base)

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    def to_state(self) -> dict[str, Any]:
        out = asdict(self)
        for name in _DECIMAL_FIELDS:
            out[name] = None if out[name] is None else str(out[name])
        for name in _TIME_FIELDS:
            out[name] = None if out[name] is None else out[name].isoformat()
        return out

    @classmethod
    def from_state(cls, data: dict[str, Any]) -> Order:
        values = dict(data)
        for name in _DECIMAL_FIELDS:
            values[name] = None if values.get(name) is None else Decimal(values[name])
        for name in _TIME_FIELDS:
            values[name] = None if values.get(name) is None else datetime.fromisoformat(values[name])
        return cls(**values)


@dataclass(frozen=True)
class OrderRequest:
    base: str
    side: str
    type: str
    time_in_force: str
    qty: Decimal | None
    notional: Decimal | None
    limit_price: Decimal | None
    client_order_id: str


def _decimal(body: dict[str, Any], name: str) -> Decimal | None:
    value = body.get(name)
    if value is None or value == "":
        return None
    try:
        number = Decimal(str(value)) if not isinstance(value, Decimal) else value
    except InvalidOperation as exc:
        raise apierrors.invalid(f"invalid {name}: {value!r} is not a number") from exc
    if not number.is_finite():
        raise apierrors.invalid(f"invalid {name}: {value!r} is not a number")
    return number


def parse_order_request(body: Any, known_bases: frozenset[str]) -> OrderRequest:
    """Validate a submit body in the order Alpaca checks it; raise ``ApiError`` with its answer."""
    if not isinstance(body, dict):
        raise apierrors.bad_request("request body format is invalid")
    symbol = str(body.get("symbol") or "")
    if not symbol:
        raise apierrors.invalid("symbol is required")
    base = base_from_any(symbol, known_bases)
    if base is None:
        raise apierrors.invalid(f'asset "{symbol}" not found')
    side = str(body.get("side") or "")
    if side not in ("buy", "sell"):
        raise apierrors.invalid(f"invalid side: {side!r}")
    order_type = str(body.get("type") or body.get("order_type") or "")
    if order_type in ("stop", "trailing_stop"):
        raise apierrors.invalid("invalid order type for crypto order")
    if order_type == "stop_limit":
        raise apierrors.invalid("stop_limit orders are not supported by the emulator")
    if order_type not in ("market", "limit"):
        raise apierrors.invalid(f"invalid order type: {order_type!r}")
    tif = str(body.get("time_in_force") or "")
    if tif not in ("gtc", "ioc"):
        raise apierrors.invalid("invalid crypto time_in_force", code=CODE_UNPROCESSABLE)
    order_class = body.get("order_class")
    if order_class not in (None, "", "simple"):
        raise apierrors.invalid("crypto orders support only the simple order class")
    qty, notional = _decimal(body, "qty"), _decimal(body, "notional")
    if qty is None and notional is None:
        raise apierrors.invalid("qty or notional is required")
    if qty is not None and notional is not None:
        raise apierrors.invalid("only one of qty or notional is accepted")
    if qty is not None and qty <= 0:
        raise apierrors.invalid("qty must be > 0")
    if notional is not None and notional <= 0:
        raise apierrors.invalid("notional must be > 0")
    if notional is not None and notional.as_tuple().exponent < -9:  # type: ignore[operator]
        raise apierrors.invalid("notional must be limited to 9 decimal places")
    limit_price = _decimal(body, "limit_price")
    if order_type == "limit":
        if limit_price is None:
            raise apierrors.invalid("limit_price is required for limit orders")
        if limit_price <= 0:
            raise apierrors.invalid("limit_price must be > 0")
        if notional is not None:
            raise apierrors.invalid("notional is only accepted for market orders by the emulator")
    else:
        limit_price = None
    coid = body.get("client_order_id")
    client_order_id = str(coid) if coid not in (None, "") else str(uuid.uuid4())
    if len(client_order_id) > 128:
        raise apierrors.invalid("client_order_id must be no more than 128 characters")
    return OrderRequest(base, side, order_type, tif, qty, notional, limit_price, client_order_id)
