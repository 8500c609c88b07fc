"""Trading API under ``/v2``: account, positions, orders, assets, clock (auth required)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cappuccino_daemon.emulator import activities, apierrors, serialise
from cappuccino_daemon.emulator.apierrors import ApiError
from cappuccino_daemon.emulator.endpoint import endpoint, json_response
from cappuccino_daemon.emulator.exchange import Exchange
from cappuccino_daemon.emulator.orders import Order, parse_order_request
from cappuccino_daemon.emulator.symbols import base_from_any, base_from_compact_or_id, compact

_TRUE = {"true", "1", "yes"}


def _bool(value: str | None) -> bool:
    return value is not None and value.strip().lower() in _TRUE


def _query_time(request: Request, name: str) -> datetime | None:
    raw = request.query_params.get(name)
    if not raw:
        return None
    try:
        when = datetime.fromisoformat(raw.replace("Z", "+00:00").replace(" ", "+"))
    except ValueError as exc:
        raise apierrors.invalid(f"invalid {name}: {raw!r} is not an RFC-3339 time") from exc
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when


def _query_decimal(request: Request, name: str) -> Decimal | None:
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return None
    try:
        return Decimal(raw)
    except InvalidOperation as exc:
        raise apierrors.invalid(f"invalid {name}: {raw!r}") from exc


@endpoint("account", auth="trading")
async def get_account(_request: Request, ex: Exchange) -> Response:
    return json_response(ex.transact(lambda now: serialise.account_json(ex.engine, now)))


@endpoint("positions", auth="trading")
async def list_positions(_request: Request, ex: Exchange) -> Response:
    def run(now: datetime) -> list[dict[str, Any]]:
        engine = ex.engine
        return [serialise.position_json(engine, pos, now) for pos in engine.visible_positions(now).values()]

    return json_response(ex.transact(run))


@endpoint("position", auth="trading")
async def get_position(request: Request, ex: Exchange) -> Response:
    symbol = request.path_params["symbol"]

    def run(now: datetime) -> dict[str, Any]:
        base = base_from_compact_or_id(symbol, ex.market.bases)
        pos = ex.engine.visible_positions(now).get(base or "")
        if pos is None:
            raise apierrors.not_found("position does not exist")
        return serialise.position_json(ex.engine, pos, now)

    return json_response(ex.transact(run))


@endpoint("close_position", auth="trading")
async def close_position(request: Request, ex: Exchange) -> Response:
    symbol = request.path_params["symbol"]
    qty, percentage = _query_decimal(request, "qty"), _query_decimal(request, "percentage")

    def run(now: datetime) -> dict[str, Any]:
        base = base_from_compact_or_id(symbol, ex.market.bases)
        if base is None:
            raise apierrors.not_found(f"position not found: {symbol}")
        return serialise.order_json(ex.engine.close_position(base, now, qty=qty, percentage=percentage))

    return json_response(ex.transact(run))


@endpoint("close_all", auth="trading")
async def close_all_positions(request: Request, ex: Exchange) -> Response:
    cancel = _bool(request.query_params.get("cancel_orders"))

    def run(now: datetime) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for base, result in ex.engine.close_all(now, cancel):
            if isinstance(result, ApiError):
                out.append({"symbol": compact(base), "status": result.status, "body": result.body})
            else:
                out.append(
                    {
                        "symbol": compact(base),
                        "status": 200,
                        "order_id": result.id,
                        "body": serialise.order_json(result),
                    }
                )
        return out

    return json_response(ex.transact(run), 207)


def _parse_body(raw: bytes, reject_exponent: bool) -> Any:
    exponent: list[str] = []

    def parse_float(text: str) -> Decimal:
        if "e" in text.lower():
            exponent.append(text)
        return Decimal(text)

    try:
        body = json.loads(raw or b"null", parse_float=parse_float, parse_int=Decimal)
    except ValueError as exc:
        raise apierrors.bad_request("request body format is invalid") from exc
    if exponent and reject_exponent:
        raise apierrors.invalid(f"invalid number {exponent[0]}: exponent notation is not accepted")
    return body


@endpoint("orders_submit", auth="trading")
async def submit_order(request: Request, ex: Exchange) -> Response:
    body = _parse_body(await request.body(), ex.options.reject_exponent)

    def run(now: datetime) -> dict[str, Any]:
        req = parse_order_request(body, ex.market.bases)
        return serialise.order_json(ex.engine.submit(req, now))

    return json_response(ex.transact(run))


def _filter_orders(request: Request, ex: Exchange) -> list[Order]:
    q = request.query_params
    status = q.get("status", "open")
    if status not in ("open", "closed", "all"):
        raise apierrors.invalid(f"invalid status: {status!r}")
    try:
        limit = int(q.get("limit", "50"))
    except ValueError as exc:
        raise apierrors.invalid("invalid limit") from exc
    limit = max(1, min(limit, 500))
    direction = q.get("direction", "desc")
    after, until = _query_time(request, "after"), _query_time(request, "until")
    side = q.get("side")
    bases: set[str] | None = None
    if q.get("symbols"):
        bases = {b for s in q["symbols"].split(",") if (b := base_from_any(s, ex.market.bases))}
    chosen = []
    for order in ex.engine.orders.values():
        if (status == "open" and not order.is_open) or (status == "closed" and order.is_open):
            continue
        if after is not None and order.submitted_at <= after:
            continue
        if until is not None and order.submitted_at >= until:
            continue
        if bases is not None and order.base not in bases:
            continue
        if side and order.side != side:
            continue
        chosen.append(order)
    chosen.sort(key=lambda o: o.submitted_at, reverse=direction != "asc")
    return chosen[:limit]


@endpoint("orders_list", auth="trading")
async def list_orders(request: Request, ex: Exchange) -> Response:
    return json_response(
        ex.transact(lambda _now: [serialise.order_json(o) for o in _filter_orders(request, ex)])
    )


@endpoint("orders_cancel_all", auth="trading")
async def cancel_all_orders(_request: Request, ex: Exchange) -> Response:
    def run(now: datetime) -> list[dict[str, Any]]:
        return [
            {"id": o.id, "status": 200, "body": serialise.order_json(o)} for o in ex.engine.cancel_all(now)
        ]

    return json_response(ex.transact(run), 207)


@endpoint("order_by_client_id", auth="trading")
async def get_order_by_client_id(request: Request, ex: Exchange) -> Response:
    coid = request.query_params.get("client_order_id", "")
    return json_response(ex.transact(lambda _now: serialise.order_json(ex.engine.get_by_client_id(coid))))


def _order_id(request: Request) -> str:
    raw = request.path_params["order_id"]
    try:
        return str(uuid.UUID(raw))
    except ValueError as exc:
        raise apierrors.not_found("order not found") from exc


@endpoint("order_get", auth="trading")
async def get_order(request: Request, ex: Exchange) -> Response:
    order_id = _order_id(request)
    return json_response(ex.transact(lambda _now: serialise.order_json(ex.engine.get(order_id))))


@endpoint("order_cancel", auth="trading")
async def cancel_order(request: Request, ex: Exchange) -> Response:
    order_id = _order_id(request)
    ex.transact(lambda now: ex.engine.cancel(order_id, now))
    return Response(status_code=204)


@endpoint("assets", auth="trading")
async def list_assets(request: Request, ex: Exchange) -> Response:
    q = request.query_params
    wanted_class = q.get("asset_class")
    status = q.get("status")

    def run(now: datetime) -> list[dict[str, Any]]:
        if wanted_class not in (None, "", "crypto") or status not in (None, "", "active"):
            return []
        return [serialise.asset_json(b, ex.engine.rule(b, now)) for b in ex.market.ordered_bases]

    return json_response(ex.transact(run))


@endpoint("asset", auth="trading")
async def get_asset(request: Request, ex: Exchange) -> Response:
    symbol = request.path_params["symbol"]

    def run(now: datetime) -> dict[str, Any]:
        base = base_from_any(symbol, ex.market.bases)
        if base is None:
            raise apierrors.not_found("asset not found")
        return serialise.asset_json(base, ex.engine.rule(base, now))

    return json_response(ex.transact(run))


def _activities(request: Request, ex: Exchange, activity_type: str | None) -> Response:
    query = dict(request.query_params)
    if activity_type is not None:
        query["activity_types"] = activity_type

    def run(now: datetime) -> list[dict[str, Any]]:
        items = activities.all_activities(ex.engine.orders.values(), ex.engine.account.id, now)
        return activities.select(items, query)

    return json_response(ex.transact(run))


@endpoint("activities", auth="trading")
async def list_activities(request: Request, ex: Exchange) -> Response:
    return _activities(request, ex, None)


@endpoint("activities_by_type", auth="trading")
async def list_activities_by_type(request: Request, ex: Exchange) -> Response:
    return _activities(request, ex, request.path_params["activity_type"])


@endpoint("clock", auth="trading")
async def get_clock(_request: Request, ex: Exchange) -> Response:
    return json_response(ex.transact(serialise.clock_json))


ROUTES = [
    Route("/v2/account", get_account, methods=["GET"]),
    Route("/v2/positions", list_positions, methods=["GET"]),
    Route("/v2/positions", close_all_positions, methods=["DELETE"]),
    Route("/v2/positions/{symbol:path}", get_position, methods=["GET"]),
    Route("/v2/positions/{symbol:path}", close_position, methods=["DELETE"]),
    Route("/v2/orders", submit_order, methods=["POST"]),
    Route("/v2/orders", list_orders, methods=["GET"]),
    Route("/v2/orders", cancel_all_orders, methods=["DELETE"]),
    Route("/v2/orders:by_client_order_id", get_order_by_client_id, methods=["GET"]),
    Route("/v2/orders/{order_id}", get_order, methods=["GET"]),
    Route("/v2/orders/{order_id}", cancel_order, methods=["DELETE"]),
    Route("/v2/assets", list_assets, methods=["GET"]),
    Route("/v2/assets/{symbol:path}", get_asset, methods=["GET"]),
    Route("/v2/clock", get_clock, methods=["GET"]),
    Route("/v2/account/activities", list_activities, methods=["GET"]),
    Route("/v2/account/activities/{activity_type}", list_activities_by_type, methods=["GET"]),
]
