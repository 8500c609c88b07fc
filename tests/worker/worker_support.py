"""Worker test helpers (importable by name; conftest.py holds only fixtures)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cappuccino_daemon.broker.alpaca import AlpacaBroker, AlpacaEndpoints
from cappuccino_daemon.broker.http import ReadRetry
from cappuccino_daemon.emulator.testing import EmulatorThread
from cappuccino_daemon.model.spec import ModelSpec, Policy

START = datetime(2024, 3, 1, tzinfo=UTC)
TICKERS = ("BTC", "ETH", "LTC")


@dataclass
class Model:
    dir: Path
    spec: ModelSpec
    policy: Policy


def broker_for(emu: EmulatorThread, timeout_s: float = 5.0) -> AlpacaBroker:
    return AlpacaBroker(
        emu.key_id,
        emu.secret_key,
        AlpacaEndpoints(emu.base_url, emu.base_url),
        timeout_s=timeout_s,
        read_retry=ReadRetry(attempts=3, base_s=0.01, max_wait_s=0.05),
    )


def all_orders(emu: EmulatorThread) -> list[dict[str, Any]]:
    """Every order the emulator ever accepted (straight from its HTTP API)."""
    from alpaca.trading.client import TradingClient
    from alpaca.trading.enums import QueryOrderStatus
    from alpaca.trading.requests import GetOrdersRequest

    client = TradingClient(emu.key_id, emu.secret_key, paper=True, raw_data=True, url_override=emu.base_url)
    rows = client.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL, limit=500))
    return list(rows)


def rest_limit_order(emu: EmulatorThread, client_order_id: str) -> dict[str, Any]:
    """Place an ETH buy limit far below market (so it rests open) with the given client_order_id."""
    from alpaca.trading.client import TradingClient

    client = TradingClient(emu.key_id, emu.secret_key, paper=True, raw_data=True, url_override=emu.base_url)
    order = {"symbol": "ETH/USD", "qty": "2", "side": "buy", "type": "limit", "time_in_force": "gtc",
             "limit_price": "10", "client_order_id": client_order_id}  # fmt: skip
    return dict(client.post("/orders", order))  # type: ignore[arg-type]


def quick_options(model_dir: Path, state_dir: Path, **overrides: Any) -> Any:
    """``WorkerOptions`` for a test on the stepped emulator: the stub's tickers, no clock-skew guard
    (the emulator's clock is simulated), short polls and fill waits; ``overrides`` on top."""
    from cappuccino_daemon.worker.build import WorkerOptions

    fields: dict[str, Any] = {
        "model_dir": model_dir,
        "tickers": TICKERS,
        "state_dir": state_dir,
        "max_clock_skew_s": None,
        "poll_interval_s": 0.1,
        "grace_s": 5.0,
        "fill_timeout_s": 5.0,
    }
    return WorkerOptions(**(fields | overrides))
