"""Everything that configures one emulator instance, shared by the CLI and ``EmulatorThread``."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from cappuccino_daemon.config import DEFAULT_SYNTHETIC_SEED
from cappuccino_daemon.emulator.faults import FaultRule

DEFAULT_PAGE_SIZE = 1000
DEFAULT_HISTORY_DAYS = 120


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
    initial_cash: Decimal = Decimal("100000")
    min_notional: Decimal = Decimal("10")
    max_notional: Decimal = Decimal("200000")
    history_days: int = DEFAULT_HISTORY_DAYS  # synthetic bars served before --start
    require_keys: tuple[str, str] | None = None
    reject_exponent: bool = False  # refuse qty/notional/limit_price written as 1e-05
    faults: list[FaultRule] = field(default_factory=list)
    fault_seed: int = 0
    ready_file: Path | None = None
