"""The broker's asset rules (minimum order size, quantity and price steps), kept fresh.

Alpaca can change a coin's ``min_order_size`` or increments at any time; an order off the new steps
gets a 422. So the rules are read through the port, reloaded at least every ``max_age`` (a day by
default) and at once after a 422 that talks about increments or minimums, and every quantity (and
price, should we ever send limit orders) is rounded onto them before it is sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from cappuccino_daemon.broker.ports import Asset, Broker, BrokerRejectedError
from cappuccino_daemon.clock import Clock
from cappuccino_daemon.logsetup import get_logger

log = get_logger(__name__)

RULE_WORDS = ("increment", "min_order_size", "minimum order size", "minimum")


def is_rule_rejection(exc: BrokerRejectedError) -> bool:
    """A 422 about an increment or a minimum: our copy of the asset rules is out of date."""
    text = str(exc).lower()
    return exc.status_code == 422 and any(word in text for word in RULE_WORDS)


def round_qty(qty: Decimal, asset: Asset) -> Decimal:
    """Floored onto ``min_trade_increment`` (never more than asked for)."""
    step = asset.min_trade_increment
    if qty <= 0:
        return Decimal(0)
    return qty if step <= 0 else (qty / step).to_integral_value(rounding=ROUND_FLOOR) * step


def round_price(price: Decimal, asset: Asset, side: str) -> Decimal:
    """Onto ``price_increment``, on the side that never pays more: buys down, sells up."""
    step = asset.price_increment
    if step <= 0:
        return price
    mode = ROUND_FLOOR if side == "buy" else ROUND_CEILING
    return (price / step).to_integral_value(rounding=mode) * step


class AssetRules:
    """The rules for the model's tickers, loaded lazily; ``invalidate`` forces a reload."""

    def __init__(
        self, broker: Broker, tickers: Sequence[str], clock: Clock, max_age: timedelta = timedelta(days=1)
    ) -> None:
        self.broker = broker
        self.tickers = list(tickers)
        self.clock = clock
        self.max_age = max_age
        self._assets: dict[str, Asset] | None = None
        self._loaded_at: datetime | None = None
        self.loads = 0

    def all(self) -> dict[str, Asset]:
        now = self.clock.now()
        if self._assets is None or self._loaded_at is None or now - self._loaded_at >= self.max_age:
            reason = "first load" if self._assets is None else "stale"
            self._assets = self.broker.get_assets(self.tickers)
            self._loaded_at = now
            self.loads += 1
            log.info("asset_rules_loaded", reason=reason, rules=_summary(self._assets))
        return self._assets

    def get(self, symbol: str) -> Asset:
        asset = self.all().get(symbol)
        if asset is None:
            return Asset(symbol, tradable=False, min_order_size=Decimal(0), min_trade_increment=Decimal(0))
        return asset

    def invalidate(self, reason: str) -> None:
        log.warning("asset_rules_invalidated", reason=reason)
        self._assets = None

    def note_rejection(self, exc: BrokerRejectedError) -> bool:
        """After a 422 about steps or minimums the next order reloads the rules; True if it was one."""
        if not is_rule_rejection(exc):
            return False
        self.invalidate(f"broker refused an order: {exc}")
        return True


def _summary(assets: dict[str, Asset]) -> dict[str, list[str]]:
    return {
        s: [str(a.min_order_size), str(a.min_trade_increment), str(a.price_increment)]
        for s, a in assets.items()
    }
