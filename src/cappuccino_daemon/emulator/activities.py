"""``GET /v2/account/activities[/{type}]``: FILL per execution and CFEE per asset and UTC day.

Activities are derived from the orders' stored executions (nothing extra to persist):
- FILL: one per execution (part) of an order, ``type`` ``partial_fill`` until the order is filled.
- CFEE: the crypto fee, summed per fee asset per UTC day of the fills and posted once that day is
  over (created at the next UTC midnight; Alpaca posts crypto fees at end of day). A fee paid in
  the coin carries ``qty`` (negative) and ``net_amount`` ``"0"`` (no cash moved); a fee paid in USD
  carries ``net_amount`` (negative). ``price`` is the average fill price of that day's fills.
Ids are ``<17-digit UTC time>::<uuid>`` as Alpaca writes them, so sorting ids sorts by time, and
``page_token`` is the id of the last activity of the previous page.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from cappuccino_daemon.emulator import apierrors
from cappuccino_daemon.emulator.orders import Order
from cappuccino_daemon.emulator.symbols import compact

SUPPORTED = ("FILL", "CFEE")
MAX_PAGE = 100
_NAMESPACE = uuid.UUID("0c0f5f0e-3f7c-4b8e-9a43-7d3d1f4c2a61")


def _num(value: Decimal) -> str:
    return "0" if value == 0 else format(value.normalize(), "f")


def _ts(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _id(when: datetime, name: str) -> str:
    stamp = when.astimezone(UTC).strftime("%Y%m%d%H%M%S%f")[:17]
    return f"{stamp}::{uuid.uuid5(_NAMESPACE, name)}"


def _fills(order: Order, account_id: str) -> Iterable[tuple[datetime, dict[str, Any]]]:
    records = order.extra.get("fills", [])
    total = Decimal(order.extra.get("total_qty", "0"))
    cum = Decimal(0)
    for k, (when_s, qty_s, price_s, _fee, _asset) in enumerate(records):
        when, qty = datetime.fromisoformat(when_s), Decimal(qty_s)
        cum += qty
        last = k == len(records) - 1 and order.status == "filled"
        yield (
            when,
            {
                "id": _id(when, f"fill:{order.id}:{k}"),
                "account_id": account_id,
                "activity_type": "FILL",
                "transaction_time": _ts(when),
                "type": "fill" if last else "partial_fill",
                "price": price_s,
                "qty": qty_s,
                "side": order.side,
                "symbol": compact(order.base),
                "leaves_qty": _num(max(Decimal(0), total - cum)),
                "order_id": order.id,
                "cum_qty": _num(cum),
                "order_status": "filled" if last else "partially_filled",
            },
        )


def _fees(
    orders: Iterable[Order], account_id: str, now: datetime
) -> Iterable[tuple[datetime, dict[str, Any]]]:
    days: dict[tuple[date, str, str], list[Decimal]] = {}  # (day, base, fee asset) -> fee, qty, notional
    for order in orders:
        for when_s, qty_s, price_s, fee_s, asset in order.extra.get("fills", []):
            key = (datetime.fromisoformat(when_s).astimezone(UTC).date(), order.base, asset)
            sums = days.setdefault(key, [Decimal(0), Decimal(0), Decimal(0)])
            sums[0] += Decimal(fee_s)
            sums[1] += Decimal(qty_s)
            sums[2] += Decimal(qty_s) * Decimal(price_s)
    for (day, base, asset), (fee, qty, notional) in sorted(days.items()):
        posted = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)
        if posted > now or fee == 0:
            continue
        in_coin = asset != "USD"
        yield (
            posted,
            {
                "id": _id(posted, f"cfee:{day}:{base}:{asset}"),
                "account_id": account_id,
                "activity_type": "CFEE",
                "date": day.isoformat(),
                "created_at": _ts(posted),
                "net_amount": "0" if in_coin else _num(-fee),
                "qty": _num(-fee) if in_coin else "0",
                "price": _num((notional / qty).quantize(Decimal("0.000000001"))),
                "symbol": compact(base),
                "currency": asset if in_coin else "USD",
                "description": f"crypto fee for {base}/USD fills on {day.isoformat()}",
                "status": "executed",
            },
        )


def all_activities(
    orders: Iterable[Order], account_id: str, now: datetime
) -> list[tuple[datetime, dict[str, Any]]]:
    orders = list(orders)
    out = [item for order in orders for item in _fills(order, account_id)]
    out.extend(_fees(orders, account_id, now))
    return out


def _when(raw: str | None, name: str) -> datetime | None:
    if not raw:
        return None
    try:
        when = datetime.fromisoformat(raw.replace("Z", "+00:00").replace(" ", "+"))
    except ValueError as exc:
        raise apierrors.invalid(f"invalid {name}: {raw!r} is neither YYYY-MM-DD nor RFC-3339") from exc
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when


def _types(raw: str | None) -> set[str] | None:
    if not raw:
        return None
    wanted = {t.strip().upper() for t in raw.split(",") if t.strip()}
    for name in wanted:
        if not name.isalpha():
            raise apierrors.invalid(f"invalid activity type: {name!r}")
    return wanted


def _page_size(raw: str | None) -> int:
    try:
        size = int(raw) if raw else MAX_PAGE
    except ValueError as exc:
        raise apierrors.invalid(f"invalid page_size: {raw!r}") from exc
    if not 1 <= size <= MAX_PAGE:
        raise apierrors.invalid(f"invalid page_size: {size} is out of range [1, {MAX_PAGE}]")
    return size


def select(items: list[tuple[datetime, dict[str, Any]]], query: dict[str, str]) -> list[dict[str, Any]]:
    """Filter (``activity_types``, ``date``, ``after``, ``until``), sort and page like Alpaca."""
    types = _types(query.get("activity_types"))
    after, until = _when(query.get("after"), "after"), _when(query.get("until"), "until")
    on_date = _when(query.get("date"), "date")
    direction = query.get("direction") or "desc"
    if direction not in ("asc", "desc"):
        raise apierrors.invalid(f"invalid direction: {direction!r}")
    size, token = _page_size(query.get("page_size")), query.get("page_token")
    chosen = []
    for when, item in items:
        if types is not None and item["activity_type"] not in types:
            continue
        if (after and when <= after) or (until and when >= until):
            continue
        if on_date and when.astimezone(UTC).date() != on_date.astimezone(UTC).date():
            continue
        chosen.append(item)
    chosen.sort(key=lambda item: item["id"], reverse=direction == "desc")
    if token:
        chosen = [i for i in chosen if (i["id"] < token if direction == "desc" else i["id"] > token)]
    return chosen[:size]
