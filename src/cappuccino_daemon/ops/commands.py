"""``cappuccino-paper status`` and ``report``: read-only views of a daemon. Imports nothing heavy here."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cappuccino_daemon.config import DaemonSettings, ModelEntry

EXIT_RUNNING, EXIT_STALE, EXIT_NOT_RUNNING = 0, 1, 3  # --check codes (LSB init-script convention)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "status",
        help="show the daemon's state, last decision, positions, equity vs buy-and-hold",
        description="Read the supervisor state, the worker heartbeat and the journal (read-only, never "
        "blocks the worker) and show them on one screen, saying what is stale. Works whether or not the "
        "daemon runs. Exit 0 unless --check is given.",
    )
    p.add_argument("--config", type=Path, help="daemon TOML (default config/daemon.toml)")
    p.add_argument("--journal", type=Path, help="journal SQLite (default: the configured model's journal)")
    p.add_argument("--json", action="store_true", help="print one JSON object (stable keys) instead")
    p.add_argument(
        "--check",
        action="store_true",
        help="exit 0 when running with a fresh heartbeat and bars resolved, 1 when running but stale or "
        "stalled (no bar decided or skipped for two bar intervals), 3 when not running",
    )
    p.set_defaults(handler=_run_status)

    r = sub.add_parser(
        "report",
        help="draw a run (journal or replay output) as a PNG",
        description="Draw equity against equal-weight buy-and-hold, drawdown and per-ticker trade markers, "
        "from the live journal (default) or from `replay` output, to look at a model before deploying it.",
    )
    r.add_argument("--config", type=Path, help="daemon TOML (default config/daemon.toml)")
    source = r.add_mutually_exclusive_group()
    source.add_argument(
        "--journal", type=Path, help="journal SQLite (default: the configured model's journal)"
    )
    source.add_argument(
        "--replay", type=Path, metavar="FILE.jsonl", help="a `cappuccino-paper replay --out` file"
    )
    r.add_argument("--model", help="which model of a [[models]] tournament (default: the first)")
    r.add_argument("--out", type=Path, help="PNG to write (default: report.png, or FILE.png for --replay)")
    r.add_argument("--dpi", type=int, default=100, help="resolution (default 100)")
    r.set_defaults(handler=_run_report)

    lb = sub.add_parser(
        "leaderboard",
        help="every model of a tournament side by side",
        description="Per model: equity, return, max drawdown, Sharpe, trades, fees, return against "
        "buy-and-hold of its tickers, Optuna objective, and the gap between its live books and the "
        "training env's books after the same decisions. Reads the config and the journals only.",
    )
    lb.add_argument("--config", type=Path, help="daemon TOML (default config/daemon.toml)")
    lb.add_argument(
        "--state-dir", type=Path, help="state directory holding journal/ (default: the config's paths.state)"
    )
    lb.add_argument("--json", action="store_true", help="print the rows as JSON (stable keys)")
    lb.add_argument("--out", type=Path, help="also draw equity curves and gaps into this PNG")
    lb.add_argument("--sort", default="return", help="return (default), equity, sharpe, max_drawdown, "
                    "gap_usd, vs_buy_and_hold or name")  # fmt: skip
    lb.set_defaults(handler=_run_leaderboard)


def _pick_model(settings: DaemonSettings, name: str | None) -> ModelEntry:
    """The model ``--model`` names (default: the first); a tournament says which one was drawn."""
    from cappuccino_daemon.errors import ConfigError

    entries = settings.models_list
    names = ", ".join(e.name for e in entries)
    if name is None:
        if len(entries) > 1:
            print(
                f"report: drawing {entries[0].name}, the first of {len(entries)} models ({names}); "
                "pass --model for another"
            )
        return entries[0]
    found = [e for e in entries if e.name.lower() == name.lower()]
    if not found:
        where = settings.source_file or "the configuration"
        raise ConfigError(f"--model {name!r} is not a model of {where}; its models are {names}.")
    return found[0]


def _settings(config: Path | None) -> DaemonSettings:
    from cappuccino_daemon.config import DEFAULT_CONFIG, load_settings

    return load_settings(config or DEFAULT_CONFIG, require_model_dir=False)


def _run_status(args: argparse.Namespace) -> int:
    import json

    from cappuccino_daemon.logsetup import configure_logging
    from cappuccino_daemon.ops.status import StatusInputs, collect_status

    configure_logging(level="WARNING")
    settings = _settings(args.config)
    status = collect_status(StatusInputs.from_settings(settings, args.journal))
    if args.json:
        print(json.dumps(status, indent=2, sort_keys=False))
    else:
        from cappuccino_daemon.ops.render import render_status

        render_status(status)
    if not args.check:
        return 0
    if not status["running"]:
        return EXIT_NOT_RUNNING
    return EXIT_STALE if status["stale"] or status["stalled"] else EXIT_RUNNING


def _run_report(args: argparse.Namespace) -> int:
    from cappuccino_daemon.errors import ConfigError
    from cappuccino_daemon.logsetup import configure_logging
    from cappuccino_daemon.ops.report import render_report
    from cappuccino_daemon.ops.series import from_journal, read_replay

    configure_logging(level="WARNING")
    if args.dpi < 20 or args.dpi > 600:
        raise ConfigError(f"--dpi {args.dpi} is out of range; use a value between 20 and 600 (default 100).")
    if args.replay is not None:
        series = read_replay(args.replay)
        out = args.out or args.replay.with_suffix(".png")
    else:
        from cappuccino_daemon.ops.journal_view import read_journal
        from cappuccino_daemon.ops.labels import demo_label
        from cappuccino_daemon.ops.status import find_journal

        journal, label = args.journal, None
        if journal is None:
            settings = _settings(args.config)
            entry = _pick_model(settings, args.model)
            journal, note = find_journal(settings.paths.state, entry.dir)
            if journal is None:
                raise ConfigError(
                    f"No journal to draw: {note}. Start the daemon with `cappuccino-paper run` and let "
                    "it trade a few bars, pass --journal PATH, or draw a replay with --replay FILE.jsonl."
                )
            label = demo_label(entry.dir)
        series = from_journal(read_journal(journal))
        series.label = label
        out = args.out or Path("report.png")
    render_report(series, out, dpi=args.dpi)
    tag = f" ({series.label})" if series.label else ""
    print(f"report: {len(series.times)} bars, {len(series.trades)} trades{tag} -> {out}")
    return 0


def _with_state_dir(settings: DaemonSettings, state_dir: Path) -> DaemonSettings:
    """``--state-dir``: read the journals of another state directory (a copy, a finished run)."""
    from cappuccino_daemon.errors import ConfigError

    if not state_dir.is_dir():
        raise ConfigError(
            f"--state-dir {state_dir}: no such directory. The leaderboard reads each model's journal "
            "under <state>/journal/; pass the state directory the worker wrote (the config's "
            "[paths] state), or leave --state-dir out to use the config's."
        )
    paths = settings.paths.model_copy(update={"state": state_dir.resolve()})
    return settings.model_copy(update={"paths": paths})


def _run_leaderboard(args: argparse.Namespace) -> int:
    import json

    from cappuccino_daemon.logsetup import configure_logging
    from cappuccino_daemon.ops.leaderboard import leaderboard

    configure_logging(level="ERROR")
    settings = _settings(args.config)
    if args.state_dir is not None:
        settings = _with_state_dir(settings, args.state_dir)
    rows = leaderboard(settings, sort=args.sort)
    if args.out is not None:
        from cappuccino_daemon.ops.leaderboard_plot import render_leaderboard

        render_leaderboard(rows, args.out)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'model':<16} {'equity':>11} {'return':>8} {'max dd':>8} {'sharpe':>7} {'trades':>6} "
          f"{'fees':>8} {'vs b&h':>9} {'objective':>9} {'live-sim':>9}")  # fmt: skip
    for r in rows:
        print(
            f"{r['name'][:16]:<16} {_num(r['equity'], ',.2f'):>11} {_num(r['return'], '+.2%'):>8} "
            f"{_num(r['max_drawdown'], '.2%'):>8} {_num(r['sharpe'], '.2f'):>7} {r['trades']:>6} "
            f"{_num(r['fees_usd'], ',.2f'):>8} {_num(r['vs_buy_and_hold'], '+,.2f'):>9} "
            f"{_num(r['objective'], '.3f'):>9} {_num(r['gap_usd'], '+,.2f'):>9}"
            + (f"  HALTED ({r['halted']['limit']})" if r["halted"] else "")
            + (f"  ({r['problem']})" if r["problem"] else "")
        )
    if args.out is not None:
        print(f"leaderboard: {len(rows)} models -> {args.out}")
    return 0


def _num(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)
