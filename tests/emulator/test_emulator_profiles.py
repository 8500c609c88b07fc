"""Profiles and flags: the CLI builds the options it documents, the strict profile runs end to end,
and a partial fill in progress survives an emulator restart."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, OrderStatus, TimeInForce
from alpaca.trading.requests import MarketOrderRequest

from cappuccino_daemon.cli import build_parser
from cappuccino_daemon.config import EmulatorSection
from cappuccino_daemon.emulator.commands import build_options
from cappuccino_daemon.emulator.options import DEFAULT_PROFILE, STRICT_RATE_LIMIT, default_assets_file
from cappuccino_daemon.emulator.testing import EmulatorThread

START = datetime(2024, 1, 1, tzinfo=UTC)


def _options(*flags: str) -> object:
    return build_options(build_parser().parse_args(["emulator", *flags]))


def test_cli_profile_flags_and_lenient() -> None:
    default = _options()
    assert DEFAULT_PROFILE == "strict" and default.rate_limit == STRICT_RATE_LIMIT  # type: ignore[attr-defined]
    assert default.assets == default_assets_file()  # type: ignore[attr-defined]
    strict = _options("--profile", "strict", "--position-lag-s", "7")
    assert strict.rate_limit == STRICT_RATE_LIMIT and strict.position_lag_s == 7  # type: ignore[attr-defined]
    assert strict.assets == default_assets_file()  # type: ignore[attr-defined]
    picked = _options("--rate-limit", "50", "--partial-fill-rate", "0.3", "--assets", "a.json")
    assert (picked.rate_limit, picked.partial_fill_rate, picked.assets) == (50, 0.3, Path("a.json"))  # type: ignore[attr-defined]
    off = _options("--profile", "strict", "--rate-limit", "50", "--lenient")
    assert (off.rate_limit, off.partial_fill_rate, off.position_lag_s, off.assets) == (0, 0.0, 0.0, None)  # type: ignore[attr-defined]
    assert _options("--maker-fee-pct", "0.1").maker_fee == Decimal("0.001")  # type: ignore[attr-defined]
    with pytest.raises(SystemExit) as bad:
        _options("--partial-fill-rate", "1.5")
    assert bad.value.code == 2


def test_config_section_takes_the_same_keys() -> None:
    section = EmulatorSection(
        profile="strict", rate_limit=100, partial_fill_rate=0.2, position_lag_s=2, assets=Path("a.json")
    )
    assert (section.profile, section.rate_limit, section.assets) == ("strict", 100, Path("a.json"))
    with pytest.raises(ValueError):
        EmulatorSection(partial_fill_rate=2)


def test_strict_profile_trades_end_to_end() -> None:
    with EmulatorThread(synthetic_seed=7, start=START, profile="strict", partial_fill_rate=0.0) as emu:
        client = TradingClient(emu.key_id, emu.secret_key, paper=True, url_override=emu.base_url)
        order = client.submit_order(
            MarketOrderRequest(symbol="BTC/USD", qty=0.002, side=OrderSide.BUY, time_in_force=TimeInForce.GTC)
        )
        assert client.get_order_by_id(order.id).status == OrderStatus.FILLED
        assert client.get_all_positions() == []  # the strict lag: not yet
        emu.advance(3)
        held = Decimal(client.get_open_position("BTCUSD").qty)
        assert held == Decimal("0.002") * (1 - Decimal("0.0025"))
        closing = client.close_position("BTCUSD")  # off-increment (fees) but a full close is allowed
        emu.advance(1)
        assert client.get_order_by_id(closing.id).status == OrderStatus.FILLED


def test_partial_fill_in_progress_survives_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "emu.sqlite"
    options = {"partial_fill_rate": 1.0, "fill_window_s": 120, "state_file": state}
    with EmulatorThread(synthetic_seed=7, start=START, **options) as emu:
        client = TradingClient(emu.key_id, emu.secret_key, paper=True, url_override=emu.base_url)
        order = client.submit_order(
            MarketOrderRequest(symbol="ETH/USD", qty=0.5, side=OrderSide.BUY, time_in_force=TimeInForce.GTC)
        )
        first = client.get_order_by_id(order.id)
        assert first.status == OrderStatus.PARTIALLY_FILLED
        stopped_at = emu.now()
    with EmulatorThread(synthetic_seed=7, start=None, **options) as emu:
        client = TradingClient(emu.key_id, emu.secret_key, paper=True, url_override=emu.base_url)
        assert client.get_order_by_id(order.id).filled_qty == first.filled_qty
        emu.set_time(stopped_at.replace(minute=5))
        done = client.get_order_by_id(order.id)
        assert done.status == OrderStatus.FILLED and Decimal(done.filled_qty) == Decimal("0.5")
        assert len(client.get("/account/activities/FILL")) >= 2
