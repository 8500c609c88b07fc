"""Worker test helpers: the tiny trial_7 fixture model wired to a real in-process emulator."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

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


@pytest.fixture(scope="session")
def trial7(shared_dir: Path) -> Model:
    from cappuccino_daemon.model.actor import load_policy
    from cappuccino_daemon.model.loader import load_model_spec

    model_dir = shared_dir / "fixtures" / "train_results" / "cwd_tests" / "trial_7_1h"
    return Model(model_dir, load_model_spec(model_dir, list(TICKERS)), load_policy(model_dir))


@pytest.fixture
def emulator(request: pytest.FixtureRequest) -> Iterator[EmulatorThread]:
    options: dict[str, Any] = getattr(request, "param", {}) or {}
    with EmulatorThread(synthetic_seed=3, start=START, **options) as emu:
        yield emu


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
