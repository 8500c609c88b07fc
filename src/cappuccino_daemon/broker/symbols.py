"""Symbol forms: bare ``BTC`` inside the daemon, ``BTC/USD`` for orders and data, ``BTCUSD`` in positions."""

from __future__ import annotations

QUOTE = "USD"


def to_pair(symbol: str) -> str:
    """``BTC`` / ``BTCUSD`` / ``BTC/USD`` → ``BTC/USD``."""
    return f"{to_bare(symbol)}/{QUOTE}"


def to_compact(symbol: str) -> str:
    """``BTC`` / ``BTC/USD`` → ``BTCUSD`` (the position form)."""
    return f"{to_bare(symbol)}{QUOTE}"


def to_bare(symbol: str) -> str:
    """``BTC/USD`` / ``BTCUSD`` / ``BTC-USDT`` / ``BTC`` → ``BTC``."""
    text = symbol.strip().upper()
    for sep in ("/", "-"):
        if sep in text:
            return text.split(sep, 1)[0]
    for quote in ("USDT", "USDC", QUOTE):
        if text.endswith(quote) and len(text) > len(quote):
            return text[: -len(quote)]
    return text
