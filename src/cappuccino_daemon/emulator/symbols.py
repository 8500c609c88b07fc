"""Symbol forms and per-asset trading rules.

Alpaca uses three spellings of one pair: ``BTC/USD`` in orders and market data, ``BTCUSD`` in
positions (and accepted in orders), and an asset UUID. The emulator only lists USD pairs; a bars
file quoted in USDT is served as ``BASE/USD``.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from decimal import Decimal

QUOTE = "USD"
_PAIR = re.compile(r"^[A-Z]+/[A-Z]+$")
_NAMESPACE = uuid.UUID("5b1f7c1e-8f0e-4c55-9a51-3c2d8f0a6b11")


@dataclass(frozen=True)
class AssetRule:
    """Alpaca's crypto asset limits, as decimal strings on the wire."""

    min_order_size: Decimal
    min_trade_increment: Decimal
    price_increment: Decimal


_RULES: dict[str, AssetRule] = {
    "BTC": AssetRule(Decimal("0.0001"), Decimal("0.000000001"), Decimal("1")),
    "ETH": AssetRule(Decimal("0.001"), Decimal("0.000000001"), Decimal("0.1")),
    "LTC": AssetRule(Decimal("0.01"), Decimal("0.000000001"), Decimal("0.01")),
    "AAVE": AssetRule(Decimal("0.01"), Decimal("0.000000001"), Decimal("0.01")),
    "AVAX": AssetRule(Decimal("0.1"), Decimal("0.000000001"), Decimal("0.001")),
    "LINK": AssetRule(Decimal("0.1"), Decimal("0.000000001"), Decimal("0.001")),
    "UNI": AssetRule(Decimal("0.1"), Decimal("0.000000001"), Decimal("0.001")),
}


def rule_for(base: str, reference_price: float | None = None) -> AssetRule:
    """Known coins use fixed rules; others get a minimum size worth roughly one dollar."""
    if base in _RULES:
        return _RULES[base]
    if reference_price and reference_price > 0:
        exponent = -int(f"{reference_price:e}".split("e")[1])
        return AssetRule(Decimal(1).scaleb(exponent), Decimal("0.000000001"), Decimal("0.000001"))
    return AssetRule(Decimal("0.000000001"), Decimal("0.000000001"), Decimal("0.000001"))


def pair(base: str) -> str:
    return f"{base}/{QUOTE}"


def compact(base: str) -> str:
    return f"{base}{QUOTE}"


def asset_id(base: str) -> str:
    """A stable UUID per pair, so ids survive emulator restarts without being stored."""
    return str(uuid.uuid5(_NAMESPACE, f"crypto:{pair(base)}"))


def is_data_symbol(symbol: str) -> bool:
    """Market data accepts only the slash form (``BTC/USD``), as the real API does."""
    return bool(_PAIR.match(symbol))


def base_from_any(symbol: str, known: set[str] | frozenset[str]) -> str | None:
    """``BTC/USD``, ``BTCUSD`` or an asset id → ``BTC``; None if not a known USD pair."""
    text = symbol.strip().upper()
    if "/" in text:
        base, _, quote = text.partition("/")
        return base if quote == QUOTE and base in known else None
    if text.endswith(QUOTE) and text[: -len(QUOTE)] in known:
        return text[: -len(QUOTE)]
    lowered = symbol.strip().lower()
    for base in known:
        if asset_id(base) == lowered:
            return base
    return None


def base_from_compact_or_id(symbol: str, known: set[str] | frozenset[str]) -> str | None:
    """Position paths accept only ``BTCUSD`` or the asset id; ``BTC/USD`` is a 404 as on Alpaca."""
    if "/" in symbol:
        return None
    return base_from_any(symbol, known)
