"""The Starlette application: the routes, the 404/405 bodies and the checkpoint/liveness task.

Slash redirects are off (the SDK never follows redirects); unknown paths answer JSON 404s.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from cappuccino_daemon.emulator import routes_admin, routes_data, routes_trading
from cappuccino_daemon.emulator.endpoint import Context, json_response
from cappuccino_daemon.emulator.exchange import Exchange
from cappuccino_daemon.logsetup import get_logger

log = get_logger(__name__)


async def _http_error(_request: Request, exc: Exception) -> Response:
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
    ctx = Context(exchange)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
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
