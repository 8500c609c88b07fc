"""``cappuccino-paper replay``: check a model over CSV bars before deploying it (no broker)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from cappuccino_daemon.argtypes import MAX_USD


def log_level(text: str) -> str:
    """argparse type: a logging level name (a typo is a usage error, not a traceback)."""
    level = text.strip().upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a log level; use DEBUG, INFO, WARNING or ERROR")
    return level


def _tickers(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    return [t for v in values for t in v.replace(",", " ").split() if t]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "replay",
        help="replay a model over CSV bars with the training env's fill rules",
        description=(
            "Run the live decision path (TA-Lib features, state, actor, order planner) over CSV bars. "
            "Orders decided on bar r fill at the close of bar r+1, as in training. Writes one JSON object "
            "per decision and a final summary line."
        ),
    )
    p.add_argument("--model-dir", type=Path, required=True, help="trial folder with actor.pth + metadata")
    p.add_argument("--bars-dir", type=Path, required=True, help="folder of BASE-QUOTE_<tf>.csv files")
    p.add_argument("--tickers", nargs="+", help="tickers (space or comma separated); default: the model's")
    p.add_argument("--start", help="ISO time where the episode and p0 begin (default: first usable bar)")
    p.add_argument("--end", help="ISO time of the last bar used (default: last bar)")
    p.add_argument("--steps", type=int, help="stop after this many decisions")
    p.add_argument(
        "--profile", help="environment profile overriding the manifest's (finrl-crypto, cappuccino-nov2025)"
    )
    p.add_argument(
        "--capital", type=float, help="initial capital in USD (at most 1e12) overriding the profile's"
    )
    p.add_argument(
        "--norm-action", type=float, help="override norm_action (research only: rescales the policy)"
    )
    p.add_argument("--out", type=Path, required=True, help="output .jsonl")
    p.add_argument("--log-level", type=log_level, default="INFO", help="DEBUG, INFO, WARNING or ERROR")
    p.set_defaults(handler=_run_replay)


def _run_replay(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from cappuccino_daemon.errors import ConfigError
    from cappuccino_daemon.logsetup import configure_logging
    from cappuccino_daemon.model.actor import load_policy
    from cappuccino_daemon.model.loader import load_model_spec
    from cappuccino_daemon.replay import runner

    configure_logging(level=args.log_level)
    if args.steps is not None and args.steps < 1:
        raise ConfigError(f"--steps must be at least 1, got {args.steps}.")
    if args.norm_action is not None and not (math.isfinite(args.norm_action) and args.norm_action > 0):
        raise ConfigError(
            f"--norm-action must be a positive number, got {args.norm_action} (zero never trades, a negative "
            "value inverts every decision). Fix: drop the flag to use the trial's value, or pass e.g. "
            "--norm-action 1000."
        )
    if args.capital is not None and not (math.isfinite(args.capital) and 0 < args.capital <= MAX_USD):
        # Checked before any profile: 1e308 would overflow the account arithmetic far from the flag.
        raise ConfigError(
            f"--capital must be a positive number of USD up to {MAX_USD:g}, got {args.capital}; e.g. "
            "--capital 1000."
        )
    start = runner.parse_time(args.start, "--start")
    end = runner.parse_time(args.end, "--end")
    # Explicit --profile/--capital/--tickers go into the spec, so its warnings (logged and recorded in the
    # summary) say what is actually used instead of "assuming" what the flags replaced.
    spec = load_model_spec(args.model_dir, _tickers(args.tickers), profile=args.profile, capital=args.capital)
    policy = load_policy(args.model_dir)
    profile = spec.profile
    norms = spec.norms if args.norm_action is None else replace(spec.norms, action=float(args.norm_action))
    frames = runner.load_frames(args.bars_dir, spec.tickers, spec.timeframe)
    matrix = runner.build_matrix(frames, spec.tickers, args.bars_dir)
    summary = runner.replay_to_jsonl(
        spec,
        policy,
        matrix,
        args.out,
        profile=profile,
        norms=norms,
        start=start,
        end=end,
        max_steps=args.steps,
    )
    print(
        f"replay: {summary['decisions']} decisions -> {args.out}; final equity "
        f"{summary.get('final_equity', float('nan')):,.2f} ({summary.get('total_return', 0.0):+.2%}; "
        f"equal-weight {summary.get('equal_weight_return', 0.0):+.2%})"
    )
    return 0
