"""``cappuccino-paper emulator``: the local Alpaca paper exchange as a long-running process.

Imports nothing heavy at module level; the handler pulls in starlette/uvicorn/numpy when it runs. The
market and where it listens come from the ``[emulator]`` settings (``--config``, else the defaults), with
the flags as overrides, so ``run``'s embedded exchange and a standalone one serve the same market.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from cappuccino_daemon.argtypes import at_least, finite_float, port, setting, usd_amount
from cappuccino_daemon.errors import ConfigError

if TYPE_CHECKING:
    from cappuccino_daemon.config import DaemonSettings
    from cappuccino_daemon.emulator.options import EmulatorOptions

# Each flag overrides one [emulator] setting (None: not given).
OVERRIDES: dict[str, tuple[str, str]] = {
    "host": ("emulator", "host"),
    "port": ("emulator", "port"),
    "bars_dir": ("emulator", "bars_dir"),
    "synthetic": ("emulator", "synthetic_seed"),
    "start": ("emulator", "start"),
    "speed": ("emulator", "speed"),
    "state": ("emulator", "state_file"),
    "ready_file": ("emulator", "ready_file"),
    "profile": ("emulator", "profile"),
    "rate_limit": ("emulator", "rate_limit"),
    "partial_fill_rate": ("emulator", "partial_fill_rate"),
    "position_lag_s": ("emulator", "position_lag_s"),
    "assets": ("emulator", "assets"),
    "log_level": ("logging", "level"),
}


def _iso(text: str) -> datetime:
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO time such as 2024-01-01T00:00:00Z") from exc
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "emulator",
        help="run the local Alpaca-compatible paper exchange",
        description="A local paper exchange that alpaca-py talks to through url_override "
        "(trading under /v2, crypto data under /v1beta3, admin under /admin).",
    )
    p.add_argument("--config", type=Path, help="daemon TOML; its [emulator] section (default: the defaults)")
    _add_market_flags(p)
    _add_exchange_flags(p)
    p.add_argument("--ready-file", type=Path, help="write the base URL here once listening")
    p.add_argument("--log-level", type=setting("LoggingSection", "level"), help="default [logging] level")
    p.add_argument(
        "--log-file",
        type=Path,
        help="also write JSON logs here (default <paths.logs>/emulator.log when [logging] file = true in "
        "--config)",
    )
    p.set_defaults(handler=_run_emulator)


def _add_market_flags(p: argparse.ArgumentParser) -> None:
    """Overrides of the [emulator] settings: where it listens and which market it serves."""
    p.add_argument("--host", help="listen address (default [emulator] host, 127.0.0.1)")
    p.add_argument("--port", type=port, help="listen port; 0 picks a free one (default [emulator] port)")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--bars-dir", type=Path, help="replay BASE-QUOTE_1h.csv files from this folder")
    source.add_argument(
        "--synthetic",
        type=setting("EmulatorSection", "synthetic_seed"),
        metavar="SEED",
        help="seeded synthetic market for the seven coins (default, [emulator] synthetic_seed = 7)",
    )
    p.add_argument(
        "--start", type=_iso, help="simulated start time (default: now, or 6 weeks into --bars-dir)"
    )
    p.add_argument(
        "--speed",
        type=finite_float(0.0, what="a speed"),
        help="simulated seconds per wall second; 0 freezes the clock (default [emulator] speed, 1)",
    )
    p.add_argument("--state", type=Path, metavar="FILE", help="SQLite file keeping account, orders and clock")


def _add_exchange_flags(p: argparse.ArgumentParser) -> None:
    """The exchange's rules and fault injection (emulator-only; no setting behind them)."""
    p.add_argument(
        "--page-size", type=at_least(1), default=1000, help="market-data points per page (default 1000)"
    )
    p.add_argument(
        "--fill-delay-s",
        type=finite_float(0.0, what="a delay"),
        default=0.0,
        help="simulated seconds from accept to fill",
    )
    p.add_argument(
        "--slippage-bps",
        type=finite_float(0.0, 10_000.0, what="basis points"),
        default=0.0,
        help="fill price moved against the trader",
    )
    p.add_argument(
        "--fee-pct",
        type=finite_float(0.0, 100.0, what="a percentage"),
        default=0.25,
        help="taker fee in percent (default 0.25)",
    )
    p.add_argument("--cash", type=usd_amount, default=100_000.0, help="starting cash in USD (default 100000)")
    p.add_argument(
        "--min-notional",
        type=finite_float(0.0, what="an amount in USD"),
        default=10.0,
        help="minimum USD per buy (default 10)",
    )
    p.add_argument(
        "--require-keys",
        nargs=2,
        metavar=("KEY_ID", "SECRET"),
        help="accept only these keys (default: any non-empty keys)",
    )
    p.add_argument(
        "--reject-exponent", action="store_true", help="refuse order numbers written in exponent form (1e-05)"
    )
    p.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="ROUTE:KIND:RATE[:TIMES]",
        help="inject a fault, e.g. orders_submit:503:0.2 or bars:latency=2:1 (repeatable)",
    )
    p.add_argument("--fault-seed", type=int, default=0, help="seed of the fault dice")
    _add_strict_flags(p)


def _add_strict_flags(p: argparse.ArgumentParser) -> None:
    """Alpaca's hard edges; each overrides the [emulator] key of the same name, unset ones take the
    profile's value (see EmulatorOptions.strict)."""
    from cappuccino_daemon.emulator.options import DEFAULT_PROFILE, PROFILES

    p.add_argument(
        "--profile",
        choices=PROFILES,
        help=f"lenient (instant whole fills, no budget) or strict (Alpaca's rules); default [emulator] "
        f"profile, else {DEFAULT_PROFILE}",
    )
    p.add_argument(
        "--lenient",
        action="store_true",
        default=None,
        help="no request budget, whole instant fills, no position lag, 1e-9 steps (overrides the others)",
    )
    p.add_argument(
        "--rate-limit", type=at_least(0), metavar="N", help="trading requests per minute per key; 0 = off"
    )
    p.add_argument(
        "--partial-fill-rate",
        type=finite_float(0.0, 1.0, what="a share"),
        metavar="P",
        help="share of orders filling in 2-4 parts (deterministic per seed)",
    )
    p.add_argument(
        "--position-lag-s",
        type=finite_float(0.0, what="a delay"),
        metavar="S",
        help="simulated seconds before /v2/positions shows a fill",
    )
    p.add_argument("--assets", type=Path, metavar="FILE.json", help="per-pair order size and price steps")
    p.add_argument(
        "--maker-fee-pct",
        type=finite_float(0.0, 100.0, what="a percentage"),
        default=0.15,
        help="fee of resting limit orders in percent (default 0.15)",
    )


def emulator_settings(args: argparse.Namespace) -> DaemonSettings:
    """--config (else the defaults and environment) with the flags applied as overrides."""
    from cappuccino_daemon.config import apply_overrides, load_settings, settings_without_file

    settings = load_settings(args.config, require_model_dir=False) if args.config else settings_without_file()
    values = vars(args)
    if args.synthetic is not None:  # the flags are exclusive; --synthetic replaces a configured bars_dir
        values = {**values, "bars_dir": None}
        settings = settings.model_copy(
            update={"emulator": settings.emulator.model_copy(update={"bars_dir": None})}
        )
    flags = {key: ("--" + name.replace("_", "-"), values[name]) for name, key in OVERRIDES.items()}
    if args.lenient:
        flags[("emulator", "lenient")] = ("--lenient", True)
    return apply_overrides(settings, flags)


def emulator_options(settings: DaemonSettings, args: argparse.Namespace) -> EmulatorOptions:
    """The emulator's composition root: the market from ``[emulator]``, the exchange rules from flags."""
    from decimal import Decimal

    from cappuccino_daemon.emulator.faults import parse_rule
    from cappuccino_daemon.emulator.options import DEFAULT_PROFILE, EmulatorOptions

    try:
        faults = [parse_rule(spec) for spec in args.fault]
    except ValueError as exc:
        raise ConfigError(f"emulator --fault: {exc}. Example: --fault orders_submit:503:0.2") from exc
    emu = settings.emulator
    strict = {
        "rate_limit": emu.rate_limit,
        "partial_fill_rate": emu.partial_fill_rate,
        "position_lag_s": emu.position_lag_s,
        "assets": emu.assets,
    }
    options = EmulatorOptions.for_profile(
        emu.profile or DEFAULT_PROFILE,
        **{name: value for name, value in strict.items() if value is not None},
        maker_fee=Decimal(str(args.maker_fee_pct)) / 100,
        host=emu.host,
        port=emu.port,
        bars_dir=emu.bars_dir,
        synthetic_seed=emu.synthetic_seed,
        start=emu.start,
        speed=emu.speed,
        state_file=emu.state_file,
        page_size=args.page_size,
        fill_delay_s=args.fill_delay_s,
        slippage_bps=args.slippage_bps,
        taker_fee=Decimal(str(args.fee_pct)) / 100,
        initial_cash=Decimal(str(args.cash)),
        min_notional=Decimal(str(args.min_notional)),
        require_keys=(args.require_keys[0], args.require_keys[1]) if args.require_keys else None,
        reject_exponent=args.reject_exponent,
        faults=faults,
        fault_seed=args.fault_seed,
        ready_file=emu.ready_file,
    )
    return options.lenient() if emu.lenient else options


def build_options(args: argparse.Namespace) -> EmulatorOptions:
    """Parsed flags (with their ``--config``) to the options the server runs with."""
    return emulator_options(emulator_settings(args), args)


def _run_emulator(args: argparse.Namespace) -> int:
    from cappuccino_daemon.emulator.server import EmulatorServer
    from cappuccino_daemon.logsetup import configure_logging

    settings = emulator_settings(args)
    log_file = args.log_file
    if log_file is None and args.config is not None and settings.logging.file:
        log_file = settings.paths.logs / "emulator.log"
    configure_logging(level=settings.logging.level, json=settings.logging.json_output, log_file=log_file)
    EmulatorServer(emulator_options(settings, args)).serve()
    return 0
