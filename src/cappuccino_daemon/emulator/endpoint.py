"""How every route runs: fault injection, auth and JSON error rendering around a handler.

A leaf below ``app`` and the ``routes_*`` modules, so that the routes never import the application.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from cappuccino_daemon.emulator import apierrors
from cappuccino_daemon.emulator.apierrors import ApiError
from cappuccino_daemon.emulator.exchange import Exchange
from cappuccino_daemon.emulator.faults import ERROR_BODIES, FaultRule
from cappuccino_daemon.logsetup import get_logger

log = get_logger(__name__)
MEDIA = "application/json; charset=UTF-8"
Handler = Callable[[Request, Exchange], Awaitable[Response]]


class Context:
    """What every handler needs: the exchange and a way to drop the current connection."""

    def __init__(self, exchange: Exchange) -> None:
        self.exchange = exchange
        self.dropper: Callable[[Any], bool] | None = None  # set by the server runner

    def drop(self, request: Request) -> None:
        if self.dropper is None or not self.dropper(request.scope.get("client")):
            log.warning("emulator_drop_unavailable", path=request.url.path)


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(payload, separators=(",", ":"))
    all_headers = {"x-request-id": uuid.uuid4().hex}
    all_headers.update(headers or {})
    return Response(body, status_code=status, media_type=MEDIA, headers=all_headers)


def error_response(exc: ApiError) -> Response:
    return json_response(exc.body, exc.status, exc.headers)


def _fault_response(rule: FaultRule) -> Response:
    if rule.kind == "500text":
        return Response("Internal Server Error", status_code=500, media_type="text/plain")
    return json_response(ERROR_BODIES[rule.kind], int(rule.kind))


def check_trading_auth(request: Request, exchange: Exchange) -> None:
    key = request.headers.get("apca-api-key-id", "")
    secret = request.headers.get("apca-api-secret-key", "")
    bearer = request.headers.get("authorization", "")
    required = exchange.options.require_keys
    if not (key and secret):
        if bearer.lower().startswith("bearer ") and len(bearer) > 7 and required is None:
            return
        raise apierrors.not_authorized()
    if required is not None:
        if key != required[0]:
            raise apierrors.not_authorized()
        if secret != required[1]:
            raise apierrors.forbidden()


def check_data_auth(request: Request, exchange: Exchange) -> None:
    """Market data allows anonymous access; keys that ARE sent must be right."""
    key = request.headers.get("apca-api-key-id")
    secret = request.headers.get("apca-api-secret-key")
    required = exchange.options.require_keys
    if required is not None and (key is not None or secret is not None) and (key, secret) != required:
        raise apierrors.data_unauthorized()


def spend_budget(request: Request, exchange: Exchange) -> dict[str, str]:
    """Count a trading request against its key's budget: the X-RateLimit headers, or 429 past it."""
    limiter = exchange.limiter
    if limiter is None:
        return {}
    key = request.headers.get("apca-api-key-id") or request.headers.get("authorization", "")
    verdict = limiter.take(key)
    if not verdict.allowed:
        raise ApiError(
            429, {"code": apierrors.CODE_RATE_LIMIT, "message": "rate limit exceeded"}, verdict.headers
        )
    return verdict.headers


def endpoint(name: str, auth: str | None) -> Callable[[Handler], Callable[[Request], Awaitable[Response]]]:
    """Wrap a handler with fault injection, auth (``"trading"``/``"data"``/None) and error rendering."""

    def wrap(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            ctx: Context = request.app.state.ctx
            exchange = ctx.exchange
            rule = exchange.faults.pick(name) if auth is not None else None
            if rule is not None:
                log.info("emulator_fault", route=name, kind=rule.kind, path=request.url.path)
                if rule.kind in ("latency", "hang"):
                    await asyncio.sleep(rule.seconds or 0.0)
                elif rule.kind == "drop":
                    ctx.drop(request)
                    return Response(status_code=500)
                elif rule.kind != "ambiguous":
                    return _fault_response(rule)
            budget: dict[str, str] = {}
            try:
                if auth == "trading":
                    check_trading_auth(request, exchange)
                    budget = spend_budget(request, exchange)
                elif auth == "data":
                    check_data_auth(request, exchange)
                response = await handler(request, exchange)
            except ApiError as exc:
                response = error_response(exc)
            response.headers.update(budget)
            if rule is not None and rule.kind == "ambiguous":
                ctx.drop(request)
            return response

        run.__name__ = handler.__name__
        return run

    return wrap
