"""What the worker needs from a broker, in our own frozen types.

Nothing from alpaca-py crosses this line: the adapter converts its models into these, and the
worker, journal and tests only ever see these. Quantities are ``Decimal`` so flooring onto the
asset's increment is exact; symbols are bare bases (``"BTC"``) everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Literal, Protocol

import pandas as pd

Side = Literal["buy", "sell"]

# Order statuses after which nothing will change any more.
FINAL_STATUSES: frozenset[str] = frozenset(
    {"filled", "canceled", "expired", "rejected", "replaced", "done_for_day"}
)
OPEN_STATUSES: frozenset[str] = frozenset(
    {
        "new",
        "partially_filled",
        "pending_new",
        "accepted",
        "pending_cancel",
        "pending_replace",
        "pending_review",
        "accepted_for_bidding",
        "held",
        "calculated",
        "stopped",
        "suspended",
    }
)


@dataclass(frozen=True)
class BrokerAccount:
    cash: float
    equity: float
    status: str
    trading_blocked: bool = False


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


@dataclass(frozen=True)
class OrderSnapshot:
    id: str
    client_order_id: str
    symbol: str  # bare base
    side: Side
    qty: Decimal
    filled_qty: Decimal
    filled_avg_price: float | None
    status: str
    submitted_at: datetime | None = None

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def is_open(self) -> bool:
        return not self.is_final


class Broker(Protocol):
    """Every call is bounded in time; reads are retried inside, submits never are.

    Raises only ``cappuccino_daemon.errors`` types: TransientBrokerError (give up this attempt),
    AmbiguousSubmitError (submit outcome unknown), BrokerRejectedError, ConfigError (credentials).
    """

    def now(self) -> datetime:
        """The broker's clock (aware UTC)."""
        ...

    def get_account(self) -> BrokerAccount: ...

    def get_positions(self) -> dict[str, BrokerPosition]: ...

    def get_assets(self, symbols: list[str]) -> dict[str, Asset]: ...

    def list_open_orders(self) -> list[OrderSnapshot]: ...

    def get_order_by_client_id(self, client_order_id: str) -> OrderSnapshot | None:
        """The order, or None when the broker has never heard of that id."""
        ...

    def submit_market_order(
        self, symbol: str, side: Side, qty: Decimal, client_order_id: str
    ) -> OrderSnapshot:
        """One POST, never retried. A lost response raises AmbiguousSubmitError; a duplicate
        client_order_id raises BrokerRejectedError(status_code=422) with ``duplicate`` in the text."""
        ...

    def cancel_order(self, order_id: str) -> None: ...

    def get_bars(
        self, symbols: list[str], timeframe: timedelta, start: datetime, end: datetime
    ) -> dict[str, pd.DataFrame]:
        """OHLCV per bare symbol indexed by UTC bar OPEN time (all pages); absent symbols map to empty."""
        ...
