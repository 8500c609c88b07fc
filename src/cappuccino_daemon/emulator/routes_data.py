"""Crypto market data under ``/v1beta3/crypto/{loc}``: bars, quotes, trades (paginated), latest, snapshots.

Pagination as Alpaca does it: ``limit`` counts points across ALL symbols, symbols come one after the
other in a page, and a page holds at most ``min(limit, page_size)`` points with an opaque
``next_page_token`` (base64 of the last symbol and time) whenever more data exists.
Quotes and trades are derived from bars: one of each at every bar's close, a 1 bp spread.
"""

from __future__ import annotations

import base64
import binascii
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cappuccino_daemon.emulator import apierrors, serialise
from cappuccino_daemon.emulator.endpoint import endpoint, json_response
from cappuccino_daemon.emulator.exchange import Exchange
from cappuccino_daemon.emulator.market import NS, BarWindow, to_ns
from cappuccino_daemon.emulator.symbols import QUOTE, is_data_symbol

_TIMEFRAME = re.compile(r"^(\d+)(Min|T|Hour|H|Day|D|Week|W|Month|M)$")
_UNIT_NS = {
    "Min": 60,
    "T": 60,
    "Hour": 3600,
    "H": 3600,
    "Day": 86_400,
    "D": 86_400,
    "Week": 604_800,
    "W": 604_800,
}
# Amounts Alpaca accepts per unit ({1-59}Min, {1-23}Hour, 1Day, 1Week, {1,2,3,6,12}Month): e.g. 7Day or
# 60Min is a 400 there, so it must not quietly work here.
_ALLOWED_AMOUNTS = {
    "Min": range(1, 60),
    "T": range(1, 60),
    "Hour": range(1, 24),
    "H": range(1, 24),
    "Day": (1,),
    "D": (1,),
    "Week": (1,),
    "W": (1,),
    "Month": (1, 2, 3, 6, 12),
    "M": (1, 2, 3, 6, 12),
}
_FRACTION = re.compile(r"(\.\d{6})\d+")
RATE_HEADERS_LIMIT = 10_000
Item = dict[str, Any]


def _rate_headers() -> dict[str, str]:
    return {
        "X-RateLimit-Limit": str(RATE_HEADERS_LIMIT),
        "X-RateLimit-Remaining": str(RATE_HEADERS_LIMIT - 1),
        "X-RateLimit-Reset": str(int(time.time()) + 60),
    }


def _symbols(request: Request, ex: Exchange) -> tuple[list[str], list[str]]:
    """(requested symbols in order, their bases where served: '' for unknown pairs)."""
    raw = request.query_params.get("symbols", "")
    symbols = [s for s in dict.fromkeys(p.strip() for p in raw.split(",")) if s]
    if not symbols:
        raise apierrors.data_bad_request("missing symbols")
    bases = []
    for symbol in symbols:
        if not is_data_symbol(symbol):
            raise apierrors.data_bad_request(f"invalid symbol: {symbol} does not match ^[A-Z]+/[A-Z]+$")
        base, _, quote = symbol.partition("/")
        bases.append(base if quote == QUOTE and base in ex.market.bases else "")
    return symbols, bases


def _time(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if not raw:
        return None
    text = _FRACTION.sub(r"\1", raw.replace(" ", "+")).replace("Z", "+00:00")
    try:
        when = datetime.fromisoformat(text)
    except ValueError as exc:
        raise apierrors.data_bad_request(
            f"Invalid format for parameter {name}: error parsing '{raw}' as RFC3339 or 2006-01-02 time"
        ) from exc
    return to_ns(when if when.tzinfo else when.replace(tzinfo=UTC))


def _timeframe(request: Request, ex: Exchange) -> int:
    raw = request.query_params.get("timeframe", "")
    match = _TIMEFRAME.match(raw)
    if not match or int(match.group(1)) not in _ALLOWED_AMOUNTS[match.group(2)]:
        raise apierrors.data_bad_request(f"invalid timeframe: {raw!r}")
    if match.group(2) in ("Month", "M"):
        raise apierrors.data_bad_request(f"timeframe {raw} is not served by the emulator (use Hour/Day/Week)")
    tf_ns = int(match.group(1)) * _UNIT_NS[match.group(2)] * NS
    if tf_ns < ex.market.step_ns or tf_ns % ex.market.step_ns:
        raise apierrors.data_bad_request(
            f"timeframe {raw} is not a multiple of the emulator's {ex.market.step_ns // NS // 60}Min bars"
        )
    return tf_ns


def _limit(request: Request) -> int:
    raw = request.query_params.get("limit", "1000")
    try:
        limit = int(raw)
    except ValueError as exc:
        raise apierrors.data_bad_request(f"invalid limit: {raw}") from exc
    if not 1 <= limit <= 10_000:
        raise apierrors.data_bad_request(f"invalid limit: {raw} is out of range [1, 10000]")
    return limit


def _encode_token(symbol: str, t_ns: int) -> str:
    return base64.b64encode(f"{symbol}|{t_ns}".encode()).decode()


def _decode_token(token: str) -> tuple[str, int]:
    try:
        symbol, _, t = base64.b64decode(token.encode(), validate=True).decode().rpartition("|")
        return symbol, int(t)
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise apierrors.data_bad_request("invalid page_token") from exc


Series = tuple[np.ndarray, Callable[[int], Item]]  # times (sorted as served), item maker by index


def paginate(
    symbols: list[str], series: dict[str, Series], request: Request, page_size: int
) -> tuple[dict[str, list[Item]], str | None]:
    """One page of a multi-symbol series, honouring limit, page_token and sort."""
    budget = min(_limit(request), page_size)
    token = request.query_params.get("page_token")
    start_sym, start_after = 0, None
    if token:
        tok_symbol, tok_t = _decode_token(token)
        if tok_symbol not in symbols:
            raise apierrors.data_bad_request("invalid page_token")
        start_sym, start_after = symbols.index(tok_symbol), tok_t
    desc = request.query_params.get("sort", "asc") == "desc"
    page: dict[str, list[Item]] = {}
    last: tuple[str, int] | None = None
    for k in range(start_sym, len(symbols)):
        symbol = symbols[k]
        if symbol not in series:
            continue
        times, make = series[symbol]
        i = 0
        if k == start_sym and start_after is not None:
            if desc:
                i = int(np.searchsorted(-times, -start_after, side="right"))
            else:
                i = int(np.searchsorted(times, start_after, side="right"))
        if i >= times.size:
            continue
        if budget == 0:
            return page, _encode_token(*last) if last else None
        take = min(budget, times.size - i)
        page[symbol] = [make(j) for j in range(i, i + take)]
        budget -= take
        last = (symbol, int(times[i + take - 1]))
        if i + take < times.size:
            return page, _encode_token(*last)
    return page, None


def _window(request: Request, now: datetime, shift_ns: int = 0) -> tuple[int, int]:
    now_ns = to_ns(now)
    day = 86_400 * NS
    start = _time(request, "start")
    end = _time(request, "end")
    start_ns = now_ns // day * day if start is None else start
    end_ns = now_ns if end is None else end
    return start_ns - shift_ns, end_ns - shift_ns


def _series_for(request: Request, ex: Exchange, kind: str) -> Callable[[datetime], Response]:
    symbols, bases = _symbols(request, ex)
    tf_ns = _timeframe(request, ex) if kind == "bars" else ex.market.step_ns
    desc = request.query_params.get("sort", "asc") == "desc"
    step = ex.market.step_ns

    def run(now: datetime) -> Response:
        shift = step if kind != "bars" else 0  # quotes/trades are stamped at the bar's close
        start_ns, end_ns = _window(request, now, shift)
        series: dict[str, Series] = {}
        for symbol, base in zip(symbols, bases, strict=True):
            if not base:
                continue
            window = ex.market.bars(base, now, tf_ns, start_ns, end_ns)
            if desc:
                window = BarWindow(window.times[::-1], window.data[:, ::-1])
            series[symbol] = (window.times + shift, _maker(kind, window, shift))
        page, token = paginate(symbols, series, request, ex.options.page_size)
        return json_response({kind: page, "next_page_token": token}, headers=_rate_headers())

    return run


def _maker(kind: str, window: BarWindow, shift: int) -> Callable[[int], Item]:
    def make(i: int) -> Item:
        t = int(window.times[i])
        row = window.data[:, i]
        if kind == "bars":
            return serialise.bar_json(t, row)
        if kind == "quotes":
            return serialise.quote_json(t + shift, float(row[3]), float(row[4]))
        return serialise.trade_json(t + shift, float(row[3]), float(row[4]), bool(row[3] >= row[0]))

    return make


@endpoint("bars", auth="data")
async def bars(request: Request, ex: Exchange) -> Response:
    return ex.transact(_series_for(request, ex, "bars"))


@endpoint("quotes", auth="data")
async def quotes(request: Request, ex: Exchange) -> Response:
    return ex.transact(_series_for(request, ex, "quotes"))


@endpoint("trades", auth="data")
async def trades(request: Request, ex: Exchange) -> Response:
    return ex.transact(_series_for(request, ex, "trades"))


def _latest(
    request: Request, ex: Exchange, key: str, make: Callable[[int, np.ndarray, int], Any]
) -> Response:
    symbols, bases = _symbols(request, ex)

    def run(now: datetime) -> Response:
        out: dict[str, Any] = {}
        for symbol, base in zip(symbols, bases, strict=True):
            bar = ex.market.latest(base, now) if base else None
            if bar is not None:
                out[symbol] = make(bar[0], bar[1], ex.market.step_ns)
        return json_response({key: out}, headers=_rate_headers())

    return ex.transact(run)


def _book(t: int, row: np.ndarray, step: int) -> Item:
    quote = serialise.quote_json(t + step, float(row[3]), float(row[4]))
    bid, ask, size = quote["bp"], quote["ap"], quote["bs"]
    return {
        "t": quote["t"],
        "b": [{"p": round(bid * (1 - 0.0001 * k), 10), "s": size} for k in range(5)],
        "a": [{"p": round(ask * (1 + 0.0001 * k), 10), "s": size} for k in range(5)],
    }


@endpoint("latest_bars", auth="data")
async def latest_bars(request: Request, ex: Exchange) -> Response:
    return _latest(request, ex, "bars", lambda t, row, _step: serialise.bar_json(t, row))


@endpoint("latest_quotes", auth="data")
async def latest_quotes(request: Request, ex: Exchange) -> Response:
    return _latest(
        request, ex, "quotes", lambda t, r, step: serialise.quote_json(t + step, float(r[3]), float(r[4]))
    )


@endpoint("latest_trades", auth="data")
async def latest_trades(request: Request, ex: Exchange) -> Response:
    return _latest(
        request,
        ex,
        "trades",
        lambda t, r, s: serialise.trade_json(t + s, float(r[3]), float(r[4]), bool(r[3] >= r[0])),
    )


@endpoint("latest_orderbooks", auth="data")
async def latest_orderbooks(request: Request, ex: Exchange) -> Response:
    return _latest(request, ex, "orderbooks", _book)


@endpoint("snapshots", auth="data")
async def snapshots(request: Request, ex: Exchange) -> Response:
    symbols, bases = _symbols(request, ex)
    step = ex.market.step_ns

    def run(now: datetime) -> Response:
        out: dict[str, Any] = {}
        for symbol, base in zip(symbols, bases, strict=True):
            bar = ex.market.latest(base, now) if base else None
            if bar is None:
                continue
            t, row = bar
            today, yesterday = ex.market.day_bars(base, now)
            out[symbol] = {
                "latestTrade": serialise.trade_json(
                    t + step, float(row[3]), float(row[4]), bool(row[3] >= row[0])
                ),
                "latestQuote": serialise.quote_json(t + step, float(row[3]), float(row[4])),
                "minuteBar": serialise.bar_json(t, row),
                "dailyBar": serialise.window_bars(today)[0] if len(today) else serialise.bar_json(t, row),
                "prevDailyBar": serialise.window_bars(yesterday)[0] if len(yesterday) else None,
            }
        return json_response({"snapshots": out}, headers=_rate_headers())

    return ex.transact(run)


_PREFIX = "/v1beta3/crypto/{loc}"
ROUTES = [
    Route(f"{_PREFIX}/bars", bars, methods=["GET"]),
    Route(f"{_PREFIX}/quotes", quotes, methods=["GET"]),
    Route(f"{_PREFIX}/trades", trades, methods=["GET"]),
    Route(f"{_PREFIX}/latest/bars", latest_bars, methods=["GET"]),
    Route(f"{_PREFIX}/latest/quotes", latest_quotes, methods=["GET"]),
    Route(f"{_PREFIX}/latest/trades", latest_trades, methods=["GET"]),
    Route(f"{_PREFIX}/latest/orderbooks", latest_orderbooks, methods=["GET"]),
    Route(f"{_PREFIX}/snapshots", snapshots, methods=["GET"]),
]
