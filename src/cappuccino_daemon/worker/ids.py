"""Deterministic client_order_ids: the same decision always maps to the same id.

``cp-<model8>-<YYYYmmddTHHMM>-<SYM>-<b|s>``: ``model8`` is a hash of the model id (so two models
sharing one account never collide), the bar is the decision's bar open time, one order per symbol and
side per bar. About 35 characters, far below Alpaca's 128 limit. The broker refuses a second order
with the same id, which is what makes a resubmit after a lookup safe.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

PREFIX = "cp-"
MAX_LEN = 128


def model_tag(model_id: str) -> str:
    return hashlib.sha256(model_id.encode("utf-8")).hexdigest()[:8]


def our_prefix(model_id: str) -> str:
    """Every order this model sends starts with this."""
    return f"{PREFIX}{model_tag(model_id)}-"


def client_order_id(model_id: str, bar_time: datetime, symbol: str, side: str) -> str:
    stamp = bar_time.astimezone(UTC).strftime("%Y%m%dT%H%M")
    coid = f"{our_prefix(model_id)}{stamp}-{symbol.upper()}-{side[0].lower()}"
    if len(coid) > MAX_LEN:  # pragma: no cover - symbols are short
        raise ValueError(f"client_order_id too long: {coid}")
    return coid
