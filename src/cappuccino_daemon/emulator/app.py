"""The Starlette application: routing, auth, faults and JSON rendering around the route handlers.

Slash redirects are off (the SDK never follows redirects); unknown paths answer JSON 404s.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

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
    return json_response(exc.body, exc.status)


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
            try:
                if auth == "trading":
                    check_trading_auth(request, exchange)
                elif auth == "data":
                    check_data_auth(request, exchange)
                response = await handler(request, exchange)
            except ApiError as exc:
                response = error_response(exc)
            if rule is not None and rule.kind == "ambiguous":
                ctx.drop(request)
            return response

        run.__name__ = handler.__name__
        return run

    return wrap


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    if status == 404:
        return json_response({"code": 40410000, "message": "endpoint not found"}, 404)
    if status == 405:
        return json_response({"code": 40510000, "message": "method not allowed"}, 405)
    return json_response({"code": status * 100000, "message": "request failed"}, status)


def touch_ready_file(path: Path | None) -> None:
    """Liveness for the supervisor: the ready file's mtime advances while this event loop runs."""
    if path is not None:
        with contextlib.suppress(OSError):  # not written yet (before startup) or removed
            os.utime(path)


def build_app(exchange: Exchange, checkpoint_interval_s: float = 1.0) -> tuple[Starlette, Context]:
    from cappuccino_daemon.emulator import routes_admin, routes_data, routes_trading

    ctx = Context(exchange)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async def checkpoints() -> None:
            while True:
                await asyncio.sleep(checkpoint_interval_s)
                try:
                    exchange.checkpoint()
                except Exception as exc:  # keep serving; the next request will surface it
                    log.error("emulator_checkpoint_failed", error=repr(exc))
                touch_ready_file(exchange.options.ready_file)

        task = asyncio.create_task(checkpoints())
        try:
            yield
        finally:
            task.cancel()

    routes: list[BaseRoute] = [*routes_trading.ROUTES, *routes_data.ROUTES, *routes_admin.ROUTES]
    app = Starlette(
        routes=routes,
        exception_handlers={404: _http_error, 405: _http_error},
        lifespan=lifespan,
    )
    app.router.redirect_slashes = False
    app.state.ctx = ctx
    return app, ctx
