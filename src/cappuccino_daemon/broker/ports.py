"""What the worker needs from a broker, in our own frozen types: the boundary of the broker layer.

Nothing from alpaca-py crosses this line: the adapter (``broker/alpaca.py``) converts its dicts,
status strings and exceptions into these, and the worker, journal and tests only ever see these.
Quantities are ``Decimal`` so flooring onto the asset's increment is exact; symbols are bare bases
(``"BTC"``) everywhere. ``broker/memory.py`` implements the same port in memory for tests.

Errors a ``Broker`` raises (all are ``cappuccino_daemon.errors`` types, so callers that only care
what to *do* can catch the base classes):

- ``BrokerUnavailableError`` (a ``TransientBrokerError``): timeout, refused connection, 5xx or an
  unreadable answer to a read; reads are already retried inside, the caller gives up this attempt.
- ``RateLimitedError`` (an unavailable error): HTTP 429, with the server's ``retry_after_s`` hint.
- ``AmbiguousSubmitError``: a submit whose outcome is unknown; resolve by client_order_id.
- ``BrokerRejectedError``: refused for a reason retrying cannot fix (``status_code`` when HTTP).
- ``DuplicateClientOrderIdError`` (a rejection): the client_order_id is taken; look it up, adopt it.
- ``ConfigError``: the broker refused our credentials; a human must fix them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Literal, Protocol

import pandas as pd

from cappuccino_daemon.errors import (
    AmbiguousSubmitError,
    BrokerRejectedError,
    ConfigError,
    TransientBrokerError,
)

__all__ = [
    "Activity",
    "AmbiguousSubmitError",
    "Asset",
    "Broker",
    "BrokerAccount",
    "BrokerPosition",
    "BrokerRejectedError",
    "BrokerUnavailableError",
    "ConfigError",
    "DuplicateClientOrderIdError",
    "OrderSnapshot",
    "OrderStatus",
    "RateLimitedError",
    "Side",
    "TransientBrokerError",
]

Side = Literal["buy", "sell"]


class OrderStatus(StrEnum):
    """Where an order is in its life, as the worker needs to know it (not the broker's vocabulary)."""

    PENDING = "pending"  # accepted by the broker, not working yet (or a state we do not model)
    OPEN = "open"  # working, nothing filled yet
    PARTIALLY_FILLED = "partially_filled"
    PENDING_CANCEL = "pending_cancel"  # a cancel was asked for; it may still fill
    FILLED = "filled"
    CANCELED = "canceled"  # canceled or replaced: whatever filled before stays filled
    EXPIRED = "expired"  # the broker ended it (time in force, end of day)
    REJECTED = "rejected"

    @property
    def is_final(self) -> bool:
        """After a final status nothing about the order changes any more."""
        return self in _FINAL


_FINAL = frozenset({OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.EXPIRED, OrderStatus.REJECTED})


class BrokerUnavailableError(TransientBrokerError):
    """The broker did not answer usefully (timeout, connection, 5xx, unreadable body)."""


class RateLimitedError(BrokerUnavailableError):
    """HTTP 429; ``retry_after_s`` is the server's hint (None when it sent none)."""

    def __init__(self, message: str, retry_after_s: float | None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class DuplicateClientOrderIdError(BrokerRejectedError):
    """The broker already has an order with this client_order_id: look it up, never resubmit."""


@dataclass(frozen=True)
class BrokerAccount:
    cash: float
    equity: float
    status: str  # the broker's own word, for logs only; ``trading_blocked`` is what we act on
    trading_blocked: bool = False
    account_id: str = ""  # the broker's id of the account: keys the one-trader-per-account lock


@dataclass(frozen=True)
class BrokerPosition:
    symbol: str  # bare base, "BTC"
    qty: Decimal
    qty_available: Decimal
    avg_entry_price: float


@dataclass(frozen=True)
class Asset:
    symbol: str  # bare base, "BTC"
    tradable: bool
    min_order_size: Decimal
    min_trade_increment: Decimal
    price_increment: Decimal = Decimal(0)  # 0: no price step known (we only send market orders today)


@dataclass(frozen=True)
class OrderSnapshot:
    id: str
    client_order_id: str
    symbol: str  # bare base
    side: Side
    qty: Decimal
    filled_qty: Decimal
    filled_avg_price: float | None
    status: OrderStatus
    submitted_at: datetime | None = None

    @property
    def is_final(self) -> bool:
        return self.status.is_final

    @property
    def is_open(self) -> bool:
        return not self.is_final


@dataclass(frozen=True)
class Activity:
    """One row of the broker's account ledger that the fee audit needs.

    ``kind`` ``FILL``: one execution (``qty`` > 0 coins at ``price``, ``side``, ``order_id``).
    ``kind`` ``CFEE``: the crypto fee of one asset and UTC day; a fee taken in the coin has ``qty`` < 0
    coins (valued at ``price``), a fee taken in USD has ``net_amount`` < 0. ``fee_usd`` is its value.
    """

    id: str
    kind: Literal["FILL", "CFEE"]
    symbol: str  # bare base
    when: datetime
    qty: Decimal
    price: Decimal
    net_amount: Decimal = Decimal(0)
    side: Side | None = None
    order_id: str | None = None
    day: date | None = None  # CFEE: the UTC day whose fills it charges (posted after that day)

    @property
    def fee_usd(self) -> Decimal:
        if self.kind != "CFEE":
            return Decimal(0)
        return -self.net_amount if self.net_amount else -self.qty * self.price


class Broker(Protocol):
    """Every call is bounded in time; reads are retried inside, submits never are.

    Raises only the errors listed in this module's docstring.
    """

    def now(self) -> datetime:
        """The broker's clock (aware UTC)."""
        ...

    def get_account(self) -> BrokerAccount: ...

    def get_positions(self) -> dict[str, BrokerPosition]: ...

    def get_assets(self, symbols: list[str]) -> dict[str, Asset]: ...

    def list_open_orders(self) -> list[OrderSnapshot]: ...

    def list_orders_since(self, after: datetime) -> list[OrderSnapshot]:
        """Orders of any status submitted after ``after``, oldest first, at most one page (500): one
        read settles many orders at once; an order not in it is looked up by its client id."""
        ...

    def get_order_by_client_id(self, client_order_id: str) -> OrderSnapshot | None:
        """The order, or None when the broker has never heard of that id."""
        ...

    def submit_market_order(
        self, symbol: str, side: Side, qty: Decimal, client_order_id: str
    ) -> OrderSnapshot:
        """One POST, never retried. A lost response raises AmbiguousSubmitError; a taken
        client_order_id raises DuplicateClientOrderIdError."""
        ...

    def cancel_order(self, order_id: str) -> None:
        """Ask for a cancel; an order that is already final or unknown is not an error."""
        ...

    def list_activities(self, after: datetime | None = None) -> list[Activity]:
        """FILL and CFEE activities after ``after`` (all pages), oldest first."""
        ...

    def get_bars(
        self, symbols: list[str], timeframe: timedelta, start: datetime, end: datetime
    ) -> dict[str, pd.DataFrame]:
        """OHLCV per bare symbol indexed by UTC bar OPEN time (all pages); absent symbols map to empty."""
        ...
