"""Everything that configures one emulator instance, shared by the CLI and ``EmulatorThread``.

Two profiles: ``lenient`` (the field defaults: no request budget, whole instant fills, positions
updated with the order, 1e-9 quantity steps and no price steps) and ``strict`` (Alpaca's documented
behaviour: 200 requests/min, some partial fills, positions lagging fills, per-asset increments from
the shipped asset file). ``EmulatorOptions()`` and ``EmulatorThread`` stay lenient (tests opt in to
each behaviour); the CLI and the ``[emulator]`` config pick a profile with ``DEFAULT_PROFILE``
(strict) as the default.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from cappuccino_daemon.config import DEFAULT_SYNTHETIC_SEED
from cappuccino_daemon.emulator.faults import FaultRule

DEFAULT_PAGE_SIZE = 1000
DEFAULT_HISTORY_DAYS = 120
PROFILES = ("lenient", "strict")
# The profile `cappuccino-paper emulator` (and so the supervisor's embedded exchange and the demo) runs
# without --profile: Alpaca's hard edges, so users and the daemon meet the real shape from the start.
DEFAULT_PROFILE = "strict"
STRICT_RATE_LIMIT = 200  # Alpaca trading API: 200 requests per minute per key
STRICT_PARTIAL_FILL_RATE = 0.1
STRICT_POSITION_LAG_S = 3.0  # Alpaca users report positions trailing fills by several seconds


def default_assets_file() -> Path:
    """The shipped asset rules (package data), used by the strict profile."""
    return Path(__file__).with_name("assets_default.json")


@dataclass
class EmulatorOptions:
    host: str = "127.0.0.1"
    port: int = 0  # 0 = pick a free port
    bars_dir: Path | None = None  # None = synthetic market
    synthetic_seed: int = DEFAULT_SYNTHETIC_SEED  # [emulator] synthetic_seed: one market everywhere
    start: datetime | None = None  # None = now (synthetic) or 6 weeks into the bars files
    speed: float = 1.0
    state_file: Path | None = None
    page_size: int = DEFAULT_PAGE_SIZE
    fill_delay_s: float = 0.0
    slippage_bps: float = 0.0
    taker_fee: Decimal = Decimal("0.0025")
    maker_fee: Decimal = Decimal("0.0015")  # a resting limit order that fills later
    initial_cash: Decimal = Decimal("100000")
    min_notional: Decimal = Decimal("10")
    max_notional: Decimal = Decimal("200000")
    history_days: int = DEFAULT_HISTORY_DAYS  # synthetic bars served before --start
    require_keys: tuple[str, str] | None = None
    reject_exponent: bool = False  # refuse qty/notional/limit_price written as 1e-05
    faults: list[FaultRule] = field(default_factory=list)
    fault_seed: int = 0
    ready_file: Path | None = None
    # strict behaviours (all off = lenient)
    rate_limit: int = 0  # trading requests per wall-clock minute per key; 0 = no budget
    partial_fill_rate: float = 0.0  # share of orders that fill in 2-4 parts
    fill_window_s: float = 60.0  # simulated seconds over which the parts of a partial fill land
    position_lag_s: float = 0.0  # simulated seconds before /v2/positions shows a fill
    assets: Path | None = None  # JSON asset rules; None = built-in rules with 1e-9 steps, no price step
    rate_clock: Callable[[], float] | None = None  # wall clock of the request budget (tests step it)

    @classmethod
    def strict(cls, **overrides: Any) -> EmulatorOptions:
        """Alpaca's documented behaviour; ``overrides`` set any field (including the strict ones)."""
        values: dict[str, Any] = {
            "rate_limit": STRICT_RATE_LIMIT,
            "partial_fill_rate": STRICT_PARTIAL_FILL_RATE,
            "position_lag_s": STRICT_POSITION_LAG_S,
            "assets": default_assets_file(),
        }
        values.update(overrides)
        return cls(**values)

    @classmethod
    def for_profile(cls, profile: str, **overrides: Any) -> EmulatorOptions:
        if profile not in PROFILES:
            raise ValueError(f"unknown emulator profile {profile!r}; use one of {', '.join(PROFILES)}")
        return cls.strict(**overrides) if profile == "strict" else cls(**overrides)

    def lenient(self) -> EmulatorOptions:
        """These options with every strict behaviour off (``--lenient``)."""
        return replace(self, rate_limit=0, partial_fill_rate=0.0, position_lag_s=0.0, assets=None)
