"""``cappuccino-paper emulator``: the local Alpaca paper exchange as a long-running process.

Imports nothing heavy at module level; the handler pulls in starlette/uvicorn/numpy when it runs.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from cappuccino_daemon.argtypes import at_least, finite_float, port, usd_amount
from cappuccino_daemon.errors import ConfigError

if TYPE_CHECKING:
    from cappuccino_daemon.emulator.options import EmulatorOptions


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
    p.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    p.add_argument("--port", type=port, default=8765, help="listen port; 0 picks a free one (default 8765)")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--bars-dir", type=Path, help="replay BASE-QUOTE_1h.csv files from this folder")
    source.add_argument(
        "--synthetic",
        type=int,
        metavar="SEED",
        default=None,
        help="seeded synthetic market for the seven coins (default, seed 1)",
    )
    p.add_argument(
        "--start", type=_iso, help="simulated start time (default: now, or 6 weeks into --bars-dir)"
    )
    p.add_argument(
        "--speed",
        type=finite_float(0.0, what="a speed"),
        default=1.0,
        help="simulated seconds per wall second; 0 freezes the clock (default 1)",
    )
    p.add_argument("--state", type=Path, metavar="FILE", help="SQLite file keeping account, orders and clock")
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
    p.add_argument("--ready-file", type=Path, help="write the base URL here once listening")
    p.add_argument("--log-level", default="INFO")
    p.add_argument("--log-file", type=Path, help="also write JSON logs here (rotating)")
    p.set_defaults(handler=_run_emulator)


def _add_strict_flags(p: argparse.ArgumentParser) -> None:
    """The strict behaviours; unset flags take the --profile's value (see EmulatorOptions.strict)."""
    from cappuccino_daemon.emulator.options import DEFAULT_PROFILE, PROFILES

    p.add_argument(
        "--profile",
        choices=PROFILES,
        default=DEFAULT_PROFILE,
        help="lenient (instant whole fills, no budget) or strict (Alpaca's rules); default "
        + DEFAULT_PROFILE,
    )
    p.add_argument(
        "--lenient",
        action="store_true",
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


def strict_overrides(args: argparse.Namespace) -> dict[str, object]:
    """The strict-behaviour flags given on the command line (unset ones keep the profile's value)."""
    given = {
        "rate_limit": args.rate_limit,
        "partial_fill_rate": args.partial_fill_rate,
        "position_lag_s": args.position_lag_s,
        "assets": args.assets,
    }
    return {name: value for name, value in given.items() if value is not None}


def build_options(args: argparse.Namespace) -> EmulatorOptions:
    """The parsed flags as ``EmulatorOptions``: the --profile, then explicit flags, then --lenient."""
    from decimal import Decimal

    from cappuccino_daemon.emulator.faults import parse_rule
    from cappuccino_daemon.emulator.options import EmulatorOptions

    try:
        faults = [parse_rule(spec) for spec in args.fault]
    except ValueError as exc:
        raise ConfigError(f"emulator --fault: {exc}. Example: --fault orders_submit:503:0.2") from exc
    options = EmulatorOptions.for_profile(
        args.profile,
        **strict_overrides(args),
        maker_fee=Decimal(str(args.maker_fee_pct)) / 100,
        host=args.host,
        port=args.port,
        bars_dir=args.bars_dir,
        synthetic_seed=1 if args.synthetic is None else args.synthetic,
        start=args.start,
        speed=args.speed,
        state_file=args.state,
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
        ready_file=args.ready_file,
    )
    return options.lenient() if args.lenient else options


def _run_emulator(args: argparse.Namespace) -> int:
    from cappuccino_daemon.emulator.server import EmulatorServer
    from cappuccino_daemon.logsetup import configure_logging

    configure_logging(level=args.log_level, log_file=args.log_file)
    EmulatorServer(build_options(args)).serve()
    return 0
