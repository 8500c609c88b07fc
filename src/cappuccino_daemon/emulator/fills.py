"""How an order's quantity is cut into parts (partial fills) and the records a fill leaves behind.

Whether an order fills in parts is decided at submit from ``(seed, order sequence number)``, so a
replay with the same seed and the same orders splits the same orders the same way. A split order
fills in 2 to 4 parts spread evenly over ``fill_window_s`` of simulated time from its trigger.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_DOWN, Decimal
from typing import Any, Protocol

_FRACTION_STEP = Decimal("0.0001")


class SplitConfig(Protocol):
    partial_fill_rate: float
    seed: int


def plan_split(config: SplitConfig, sequence: int) -> list[Decimal]:
    """Fractions (summing to 1) of the parts order number ``sequence`` fills in; ``[1]`` = whole."""
    if config.partial_fill_rate <= 0:
        return [Decimal(1)]
    rng = random.Random(f"{config.seed}:{sequence}")
    if rng.random() >= config.partial_fill_rate:
        return [Decimal(1)]
    parts = rng.randint(2, 4)
    weights = [rng.uniform(0.2, 1.0) for _ in range(parts)]
    total = sum(weights)
    fractions = [
        (Decimal(repr(w / total))).quantize(_FRACTION_STEP, rounding=ROUND_DOWN) for w in weights[:-1]
    ]
    return [*fractions, Decimal(1) - sum(fractions, Decimal(0))]


def schedule(
    total: Decimal, fractions: list[Decimal], step: Decimal, start: datetime, window_s: float
) -> list[tuple[datetime, Decimal]]:
    """(time, qty) per part: quantities floored onto ``step`` (the last takes the rest), times spread
    evenly over the window. Parts that would round to nothing collapse into one whole fill."""
    qtys = [(total * f / step).to_integral_value(rounding=ROUND_DOWN) * step for f in fractions[:-1]]
    qtys.append(total - sum(qtys, Decimal(0)))
    if len(fractions) == 1 or any(q <= 0 for q in qtys):
        return [(start, total)]
    gap = window_s / (len(qtys) - 1)
    return [(start + timedelta(seconds=gap * i), q) for i, q in enumerate(qtys)]


@dataclass(frozen=True)
class PositionChange:
    """A fill's effect on a position, kept for ``position_lag_s`` so the positions view can trail it."""

    when: datetime
    base: str
    qty: Decimal
    cost: Decimal


def fill_record(when: datetime, qty: Decimal, price: Decimal, fee: Decimal, fee_asset: str) -> list[Any]:
    """One execution as stored in ``order.extra["fills"]`` (JSON-friendly, read by activities)."""
    return [when.isoformat(), _plain(qty), _plain(price), _plain(fee), fee_asset]


def _plain(value: Decimal) -> str:
    return "0" if value == 0 else format(value.normalize(), "f")
