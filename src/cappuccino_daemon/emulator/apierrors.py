"""Alpaca's error answers (status + JSON body), raised inside the emulator and rendered by the app.

Bodies follow the reference's table: trading errors carry ``code`` and ``message``; some 401/403
and every market-data error carry only ``message`` (so alpaca-py's ``APIError.code`` raises there too).
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An HTTP error answer: ``status`` and the JSON ``body`` Alpaca would send."""

    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status} {body.get('message', '')}")
        self.status = status
        self.body = body
        self.headers = headers or {}


CODE_UNAUTHORIZED = 40110000
CODE_FORBIDDEN = 40310000
CODE_NOT_FOUND = 40410000
CODE_INVALID = 40010001
CODE_BAD_REQUEST = 40010000
CODE_UNPROCESSABLE = 42210000
CODE_RATE_LIMIT = 42910000


def not_authorized() -> ApiError:
    return ApiError(401, {"code": CODE_UNAUTHORIZED, "message": "request is not authorized"})


def forbidden() -> ApiError:
    return ApiError(403, {"message": "forbidden."})


def data_unauthorized() -> ApiError:
    return ApiError(401, {"message": "unauthorized."})


def not_found(message: str) -> ApiError:
    return ApiError(404, {"code": CODE_NOT_FOUND, "message": message})


def invalid(message: str, code: int = CODE_INVALID) -> ApiError:
    """422: a request Alpaca understands but refuses (bad field, duplicate id, wrong TIF)."""
    return ApiError(422, {"code": code, "message": message})


def bad_request(message: str) -> ApiError:
    """400 on the trading API (unparseable body or query)."""
    return ApiError(400, {"code": CODE_BAD_REQUEST, "message": message})


def data_bad_request(message: str) -> ApiError:
    """400 on the market-data API: no ``code`` key, as the real service answers."""
    return ApiError(400, {"message": message})


def rejected(message: str, **extra: Any) -> ApiError:
    """403 with code 40310000: balance, minimum notional, wash trade."""
    return ApiError(403, {"code": CODE_FORBIDDEN, "message": message, **extra})
