"""Admin endpoints (no auth, loopback only): drive a subprocess emulator from tests and tools.

- ``GET  /admin/state``: simulated time, account summary, positions, orders, faults.
- ``POST /admin/clock/advance`` ``{"seconds": 3600}`` or ``{"to": "2024-01-02T00:00:00Z"}``.
- ``GET/POST/DELETE /admin/faults``: ``{"faults": ["orders_submit:503:1:2", {...}],
  "mode": "replace"|"add"}``.
- ``POST /admin/shock`` ``{"symbol": "BTC", "factor": 0.5}``: prices × factor from the forming bar on
  (a drill for risk limits; in memory only).
- ``GET /healthz``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cappuccino_daemon.emulator import apierrors, serialise
from cappuccino_daemon.emulator.endpoint import endpoint, json_response
from cappuccino_daemon.emulator.exchange import Exchange
from cappuccino_daemon.emulator.faults import parse_rule


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError as exc:
        raise apierrors.bad_request("request body is not JSON") from exc
    if not isinstance(body, dict):
        raise apierrors.bad_request("request body must be a JSON object")
    return body


def state_json(ex: Exchange, now: datetime) -> dict[str, Any]:
    engine = ex.engine
    account = serialise.account_json(engine, now)
    return {
        "now": now.isoformat(),
        "speed": ex.clock.speed,
        "market": ex.market.description,
        "symbols": [f"{b}/USD" for b in ex.market.ordered_bases],
        "state_file": str(ex.options.state_file) if ex.options.state_file else None,
        "resumed": ex.resumed,
        "cash": account["cash"],
        "equity": account["equity"],
        "positions": {b: str(p.qty) for b, p in sorted(engine.positions.items())},
        "orders": len(engine.orders),
        "open_orders": len(engine.open_orders()),
        "faults": [r.to_json() for r in ex.faults.rules()],
    }


@endpoint("admin_state", auth=None)
async def get_state(_request: Request, ex: Exchange) -> Response:
    return json_response(ex.transact(lambda now: state_json(ex, now)))


@endpoint("admin_advance", auth=None)
async def advance(request: Request, ex: Exchange) -> Response:
    body = await _json_body(request)
    try:
        if "to" in body:
            when = datetime.fromisoformat(str(body["to"]).replace("Z", "+00:00"))
            now = ex.set_time(when if when.tzinfo else when.replace(tzinfo=UTC))
        else:
            now = ex.advance(float(body.get("seconds", 0)))
    except (TypeError, ValueError) as exc:
        raise apierrors.invalid(f"cannot move the clock: {exc}") from exc
    return json_response({"now": now.isoformat()})


@endpoint("admin_faults", auth=None)
async def faults(request: Request, ex: Exchange) -> Response:
    if request.method == "DELETE":
        ex.faults.clear()
    elif request.method == "POST":
        body = await _json_body(request)
        try:
            rules = [parse_rule(spec) for spec in body.get("faults", [])]
        except (KeyError, TypeError, ValueError) as exc:
            raise apierrors.invalid(f"bad fault: {exc}") from exc
        if body.get("mode", "replace") == "add":
            ex.faults.add(rules)
        else:
            ex.faults.set(rules)
    return json_response({"faults": [r.to_json() for r in ex.faults.rules()]})


@endpoint("admin_shock", auth=None)
async def shock(request: Request, ex: Exchange) -> Response:
    body = await _json_body(request)
    base = str(body.get("symbol", "")).upper().split("/")[0]
    try:
        factor = float(body.get("factor", "nan"))
        start = ex.transact(lambda now: ex.market.shock(base, factor, now))
    except (TypeError, ValueError) as exc:
        raise apierrors.invalid(f"cannot shock the market: {exc}") from exc
    return json_response({"symbol": f"{base}/USD", "factor": factor, "from": start.isoformat()})


@endpoint("healthz", auth=None)
async def healthz(_request: Request, ex: Exchange) -> Response:
    return json_response({"status": "ok", "now": ex.now().isoformat()})


ROUTES = [
    Route("/admin/state", get_state, methods=["GET"]),
    Route("/admin/clock/advance", advance, methods=["POST"]),
    Route("/admin/faults", faults, methods=["GET", "POST", "DELETE"]),
    Route("/admin/shock", shock, methods=["POST"]),
    Route("/healthz", healthz, methods=["GET"]),
]
