"""The ``Broker`` port over alpaca-py (``TradingClient`` + ``CryptoHistoricalDataClient``).

Both clients run in raw mode (dicts, not pydantic models) so an enum Alpaca adds tomorrow cannot break
a whole list parse; we parse the few fields we need ourselves. This is the only
module that knows Alpaca's vocabulary: its status strings map onto ``ports.OrderStatus`` here, and
alpaca-py's and requests' exceptions onto the port's errors (import-linter keeps the worker, journal,
policy, model and replay packages from importing ``alpaca`` or this module).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from functools import partial
from typing import Any, TypeVar
from urllib.parse import urlparse

import pandas as pd
import requests

from cappuccino_daemon.broker.budget import RequestBudget, retry_after_s
from cappuccino_daemon.broker.http import ReadRetry, install_timeout
from cappuccino_daemon.broker.ports import (
    Activity,
    AmbiguousSubmitError,
    Asset,
    BrokerAccount,
    BrokerPosition,
    BrokerRejectedError,
    BrokerUnavailableError,
    ConfigError,
    DuplicateClientOrderIdError,
    OrderSnapshot,
    OrderStatus,
    RateLimitedError,
    Side,
    TransientBrokerError,
)
from cappuccino_daemon.broker.symbols import to_bare, to_pair
from cappuccino_daemon.logsetup import get_logger

log = get_logger(__name__)
T = TypeVar("T")

PAPER_TRADING_URL = "https://paper-api.alpaca.markets"
DATA_URL = "https://data.alpaca.markets"
EMULATOR_URL = "http://127.0.0.1:8765"
# Used against the local emulator when no keys are configured; never valid anywhere else.
EMULATOR_DUMMY_KEY = "EMULATORKEY"
EMULATOR_DUMMY_SECRET = "emulator-secret"

CREDENTIAL_FIX = (
    "Set ALPACA_API_KEY and ALPACA_API_SECRET to your Alpaca *paper* keys (or provide the systemd "
    "credentials alpaca_api_key / alpaca_api_secret via LoadCredential=), then restart the worker."
)


# Alpaca order statuses → ours. Anything not listed is treated as PENDING (still open):
# an order whose state we do not understand is never assumed to be over.
_STATUS: dict[str, OrderStatus] = {
    "new": OrderStatus.OPEN,
    "partially_filled": OrderStatus.PARTIALLY_FILLED,
    "filled": OrderStatus.FILLED,
    "done_for_day": OrderStatus.EXPIRED,
    "canceled": OrderStatus.CANCELED,
    "expired": OrderStatus.EXPIRED,
    "replaced": OrderStatus.CANCELED,
    "rejected": OrderStatus.REJECTED,
    "pending_cancel": OrderStatus.PENDING_CANCEL,
    "pending_replace": OrderStatus.PENDING,
    "pending_new": OrderStatus.PENDING,
    "accepted": OrderStatus.PENDING,
    "pending_review": OrderStatus.PENDING,
    "accepted_for_bidding": OrderStatus.PENDING,
    "held": OrderStatus.PENDING,
    "calculated": OrderStatus.PENDING,
    "stopped": OrderStatus.PENDING,
    "suspended": OrderStatus.PENDING,
}


def order_status(text: str) -> OrderStatus:
    """Alpaca's status string → ``OrderStatus`` (unknown → PENDING, logged)."""
    status = _STATUS.get(text.lower())
    if status is None:
        log.warning("unknown_order_status", status=text, mapped_to=OrderStatus.PENDING.value)
        return OrderStatus.PENDING
    return status


@dataclass(frozen=True)
class AlpacaEndpoints:
    trading_url: str
    data_url: str

    @property
    def is_loopback(self) -> bool:
        hosts = {urlparse(self.trading_url).hostname, urlparse(self.data_url).hostname}
        return hosts <= {"127.0.0.1", "localhost", "::1"}


def _body_fields(text: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except (ValueError, TypeError):
        return {}
    return data if isinstance(data, dict) else {}


def _status_of(exc: Exception) -> int | None:
    status = None
    try:
        status = getattr(exc, "status_code", None)
    except Exception:
        status = None
    return int(status) if isinstance(status, int) else None


def _retry_after(exc: Exception) -> float | None:
    """``Retry-After``, else ``X-RateLimit-Reset`` minus now (Alpaca sends the reset on every answer)."""
    try:
        response = getattr(exc, "response", None)
    except Exception:
        response = None
    headers = getattr(response, "headers", None) if response is not None else None
    if headers is None:
        return None
    return retry_after_s(headers, time.time())


def map_error(exc: Exception, call: str, *, is_submit: bool = False) -> Exception:
    """One alpaca-py/requests exception → one of our errors (returned, caller raises it)."""
    if isinstance(exc, requests.exceptions.Timeout | requests.exceptions.ConnectionError):
        if is_submit:
            return AmbiguousSubmitError(f"{call}: no response ({type(exc).__name__}); outcome unknown")
        return BrokerUnavailableError(f"{call}: {type(exc).__name__}: {exc}")
    status = _status_of(exc)
    if status is None:
        if is_submit:
            return AmbiguousSubmitError(f"{call}: unreadable response ({type(exc).__name__}: {exc})")
        return BrokerUnavailableError(f"{call}: unreadable response ({type(exc).__name__}: {exc})")
    text = str(exc)
    fields = _body_fields(text)
    message = str(fields.get("message", text))[:300]
    if status == 401 or (status == 403 and "code" not in fields):
        return ConfigError(
            f"The broker refused our credentials ({call}: HTTP {status} {message!r}). {CREDENTIAL_FIX}"
        )
    if status == 429:
        return RateLimitedError(f"{call}: rate limited (HTTP 429)", _retry_after(exc))
    if status >= 500:
        if is_submit:
            return AmbiguousSubmitError(f"{call}: HTTP {status} {message!r}; outcome unknown")
        return BrokerUnavailableError(f"{call}: HTTP {status} {message!r}")
    if status == 422 and "client_order_id" in message and ("unique" in message or "duplicate" in message):
        return DuplicateClientOrderIdError(f"{call}: {message}", status_code=status)
    return BrokerRejectedError(f"{call}: HTTP {status} {message!r}", status_code=status)


def _dec(value: Any, default: str = "0") -> Decimal:
    if value is None or value == "":
        return Decimal(default)
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return Decimal(default)


def _float_or_none(value: Any) -> float | None:
    if value is None or value == "":
        return None
    return float(value)


_FRACTION = re.compile(r"\.\d+")


def _parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    text = str(value).replace("Z", "+00:00")
    # Nanosecond fractions (Alpaca data) are cut to microseconds; the UTC offset after them is kept.
    text = _FRACTION.sub(lambda m: m.group(0)[:7], text)
    stamp = datetime.fromisoformat(text)
    if stamp.tzinfo is None:
        raise BrokerUnavailableError(f"broker sent a timestamp without a UTC offset: {value!r}")
    return stamp.astimezone(UTC)


def parse_order(data: dict[str, Any]) -> OrderSnapshot:
    side = str(data.get("side", "")).lower()
    if side not in ("buy", "sell"):
        raise BrokerUnavailableError(f"order {data.get('id')} has an unexpected side {side!r}")
    return OrderSnapshot(
        id=str(data["id"]),
        client_order_id=str(data.get("client_order_id", "")),
        symbol=to_bare(str(data.get("symbol", ""))),
        side="buy" if side == "buy" else "sell",
        qty=_dec(data.get("qty")),
        filled_qty=_dec(data.get("filled_qty")),
        filled_avg_price=_float_or_none(data.get("filled_avg_price")),
        status=order_status(str(data.get("status", ""))),
        submitted_at=_parse_time(data.get("submitted_at")),
    )


def parse_activity(data: dict[str, Any]) -> Activity | None:
    """One activity dict → ``Activity`` (FILL / CFEE only; other types are None)."""
    kind = str(data.get("activity_type", "")).upper()
    if kind not in ("FILL", "CFEE"):
        return None
    when = _parse_time(data.get("transaction_time") or data.get("created_at"))
    if when is None:
        day = str(data.get("date", ""))
        when = datetime.fromisoformat(day).replace(tzinfo=UTC) if day else datetime.fromtimestamp(0, UTC)
    side = str(data.get("side", "")).lower()
    return Activity(
        id=str(data.get("id", "")),
        kind="FILL" if kind == "FILL" else "CFEE",
        symbol=to_bare(str(data.get("symbol", ""))),
        when=when,
        qty=_dec(data.get("qty")),
        price=_dec(data.get("price")),
        net_amount=_dec(data.get("net_amount")),
        side="buy" if side == "buy" else "sell" if side == "sell" else None,
        order_id=str(data["order_id"]) if data.get("order_id") else None,
        day=date.fromisoformat(str(data["date"])[:10]) if data.get("date") else None,
    )


def _alpaca_timeframe(timeframe: timedelta) -> Any:
    from alpaca.data.timeframe import TimeFrame, TimeFrameUnit

    seconds = int(timeframe.total_seconds())
    if seconds % 86400 == 0:
        return TimeFrame(seconds // 86400, TimeFrameUnit.Day)
    if seconds % 3600 == 0:
        return TimeFrame(seconds // 3600, TimeFrameUnit.Hour)
    if seconds % 60 == 0:
        return TimeFrame(seconds // 60, TimeFrameUnit.Minute)
    raise ConfigError(f"Timeframe {timeframe} is not a whole number of minutes; Alpaca has no such bars.")


def _qty_text(qty: Decimal) -> str:
    """Fixed-point decimal text (never ``1e-05``, which Alpaca may refuse)."""
    return format(qty.normalize(), "f")


class AlpacaBroker:
    """``Broker`` over alpaca-py; see ``ports.Broker`` for the contract."""

    def __init__(
        self,
        key_id: str,
        secret_key: str,
        endpoints: AlpacaEndpoints,
        timeout_s: float = 10.0,
        read_retry: ReadRetry | None = None,
        budget: RequestBudget | None = None,
    ) -> None:
        from alpaca.data.historical.crypto import CryptoHistoricalDataClient
        from alpaca.trading.client import TradingClient

        self.endpoints = endpoints
        self._trading: Any = TradingClient(
            key_id, secret_key, paper=True, raw_data=True, url_override=endpoints.trading_url.rstrip("/")
        )
        self._data: Any = CryptoHistoricalDataClient(
            key_id, secret_key, raw_data=True, url_override=endpoints.data_url.rstrip("/")
        )
        trust_env = not endpoints.is_loopback
        self.budget = budget  # the trading API only: market data has its own, separate limit
        install_timeout(self._trading, timeout_s, trust_env=trust_env, budget=budget)
        install_timeout(self._data, timeout_s, trust_env=trust_env)
        self._retry = read_retry or ReadRetry()

    # -- plumbing ---------------------------------------------------------------------------------
    def _read(self, call: str, fn: Callable[[], T]) -> T:
        def once() -> T:
            try:
                return fn()
            except (ConfigError, TransientBrokerError, BrokerRejectedError):
                raise
            except Exception as exc:
                raise map_error(exc, call) from exc

        return self._retry.call(call, once)

    # -- reads ------------------------------------------------------------------------------------
    def now(self) -> datetime:
        data = self._read("get_clock", self._trading.get_clock)
        stamp = _parse_time(data.get("timestamp")) if isinstance(data, dict) else None
        if stamp is None:
            raise BrokerUnavailableError(f"broker clock returned no timestamp: {data!r}")
        return stamp

    def get_account(self) -> BrokerAccount:
        data = self._read("get_account", self._trading.get_account)
        return BrokerAccount(
            cash=float(data.get("cash") or 0.0),
            equity=float(data.get("equity") or data.get("portfolio_value") or 0.0),
            status=str(data.get("status", "")),
            trading_blocked=bool(data.get("trading_blocked") or data.get("account_blocked")),
            account_id=str(data.get("id") or data.get("account_number") or ""),
        )

    def get_positions(self) -> dict[str, BrokerPosition]:
        rows = self._read("get_all_positions", self._trading.get_all_positions)
        out: dict[str, BrokerPosition] = {}
        for row in rows or []:
            if str(row.get("asset_class", "crypto")) != "crypto":
                continue
            qty = _dec(row.get("qty"))
            out[to_bare(str(row["symbol"]))] = BrokerPosition(
                symbol=to_bare(str(row["symbol"])),
                qty=qty,
                qty_available=_dec(row.get("qty_available"), default=str(qty)),
                avg_entry_price=float(row.get("avg_entry_price") or 0.0),
            )
        return out

    def get_assets(self, symbols: list[str]) -> dict[str, Asset]:
        from alpaca.trading.enums import AssetClass
        from alpaca.trading.requests import GetAssetsRequest

        wanted = {to_pair(s) for s in symbols}
        rows = self._read(
            "get_all_assets",
            lambda: self._trading.get_all_assets(GetAssetsRequest(asset_class=AssetClass.CRYPTO)),
        )
        out: dict[str, Asset] = {}
        for row in rows or []:
            symbol = str(row.get("symbol", ""))
            if symbol not in wanted and to_pair(to_bare(symbol)) not in wanted:
                continue
            bare = to_bare(symbol)
            out[bare] = Asset(
                symbol=bare,
                tradable=bool(row.get("tradable", False)) and str(row.get("status", "active")) == "active",
                min_order_size=_dec(row.get("min_order_size")),
                min_trade_increment=_dec(row.get("min_trade_increment"), default="0.000000001"),
                price_increment=_dec(row.get("price_increment")),
            )
        return out

    def list_open_orders(self) -> list[OrderSnapshot]:
        from alpaca.trading.enums import QueryOrderStatus
        from alpaca.trading.requests import GetOrdersRequest

        rows = self._read(
            "get_orders",
            lambda: self._trading.get_orders(GetOrdersRequest(status=QueryOrderStatus.OPEN, limit=500)),
        )
        return [parse_order(row) for row in rows or []]

    def list_orders_since(self, after: datetime) -> list[OrderSnapshot]:
        from alpaca.common.enums import Sort
        from alpaca.trading.enums import QueryOrderStatus
        from alpaca.trading.requests import GetOrdersRequest

        request = GetOrdersRequest(status=QueryOrderStatus.ALL, after=after, limit=500, direction=Sort.ASC)
        rows = self._read("get_orders", lambda: self._trading.get_orders(request))
        return [parse_order(row) for row in rows or []]

    def get_order_by_client_id(self, client_order_id: str) -> OrderSnapshot | None:
        def lookup() -> dict[str, Any] | None:
            try:
                return dict(self._trading.get_order_by_client_id(client_order_id))
            except Exception as exc:
                if _status_of(exc) == 404:
                    return None
                raise

        data = self._read("get_order_by_client_id", lookup)
        return parse_order(data) if data is not None else None

    def list_activities(self, after: datetime | None = None) -> list[Activity]:
        """FILL and CFEE, oldest first, following Alpaca's ``page_token`` paging to the end."""
        out: list[Activity] = []
        token: str | None = None
        for _ in range(1000):  # 100 000 activities: far beyond a day's worth; never loop forever
            params: dict[str, Any] = {"activity_types": "FILL,CFEE", "direction": "asc", "page_size": 100}
            if after is not None:
                params["after"] = after.astimezone(UTC).isoformat().replace("+00:00", "Z")
            if token is not None:
                params["page_token"] = token
            rows: Any = self._read(
                "get_activities", partial(self._trading.get, "/account/activities", params)
            )
            page = [row for row in rows or [] if isinstance(row, dict)]
            out.extend(a for a in (parse_activity(row) for row in page) if a is not None)
            if len(page) < 100:
                break
            token = str(page[-1].get("id", ""))
        return out

    def get_bars(
        self, symbols: list[str], timeframe: timedelta, start: datetime, end: datetime
    ) -> dict[str, pd.DataFrame]:
        from alpaca.data.requests import CryptoBarsRequest

        request = CryptoBarsRequest(
            symbol_or_symbols=[to_pair(s) for s in symbols],
            timeframe=_alpaca_timeframe(timeframe),
            start=start,
            end=end,
        )
        raw = self._read("get_crypto_bars", lambda: self._data.get_crypto_bars(request))
        out: dict[str, pd.DataFrame] = {}
        for symbol in symbols:
            rows = (raw or {}).get(to_pair(symbol), [])
            out[symbol] = bars_frame(rows)
        return out

    # -- writes -----------------------------------------------------------------------------------
    def submit_market_order(
        self, symbol: str, side: Side, qty: Decimal, client_order_id: str
    ) -> OrderSnapshot:
        """Exactly one POST. Not retried: ambiguity is resolved by the executor via the client id."""
        body = {
            "symbol": to_pair(symbol),
            "qty": _qty_text(qty),
            "side": side,
            "type": "market",
            "time_in_force": "gtc",
            "client_order_id": client_order_id,
        }
        try:
            data = self._trading.post("/orders", body)
        except Exception as exc:
            raise map_error(exc, f"submit {client_order_id}", is_submit=True) from exc
        if not isinstance(data, dict) or "id" not in data:
            raise AmbiguousSubmitError(f"submit {client_order_id}: response without an order id: {data!r}")
        return parse_order(data)

    def cancel_order(self, order_id: str) -> None:
        def cancel() -> None:
            try:
                self._trading.cancel_order_by_id(order_id)
            except Exception as exc:
                if _status_of(exc) in (404, 422):  # already gone / not cancelable: nothing to do
                    log.info("cancel_noop", order_id=order_id, status=_status_of(exc))
                    return
                raise

        self._read("cancel_order", cancel)


def bars_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Alpaca bar dicts → float64 OHLCV frame indexed by UTC open time, sorted, de-duplicated."""
    columns = ["open", "high", "low", "close", "volume"]
    if not rows:
        return pd.DataFrame(
            {c: pd.Series(dtype="float64") for c in columns},
            index=pd.DatetimeIndex([], tz="UTC", name="timestamp"),
        )
    index = pd.DatetimeIndex(pd.to_datetime([r["t"] for r in rows], utc=True), name="timestamp")
    frame = pd.DataFrame(
        {
            "open": [float(r["o"]) for r in rows],
            "high": [float(r["h"]) for r in rows],
            "low": [float(r["l"]) for r in rows],
            "close": [float(r["c"]) for r in rows],
            "volume": [float(r["v"]) for r in rows],
        },
        index=index,
    )
    frame = frame[~frame.index.duplicated(keep="last")].sort_index()
    return frame


def default_endpoints(kind: str, url: str | None, data_url: str | None) -> AlpacaEndpoints:
    if kind == "alpaca-paper":
        return AlpacaEndpoints(url or PAPER_TRADING_URL, data_url or DATA_URL)
    base = url or EMULATOR_URL
    return AlpacaEndpoints(base, data_url or base)
