"""``cappuccino-paper worker``: trade one model on the emulator or Alpaca paper. Imports nothing heavy."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "worker",
        help="run the trading worker for one model (normally started by `run`)",
        description="Trade one model bar by bar: reconcile, decide on each completed bar, send orders "
        "idempotently, journal everything. Exit 78 on configuration/credential problems.",
    )
    p.add_argument("--model-dir", type=Path, help="trial folder with actor.pth (default: [model] dir)")
    p.add_argument("--tickers", nargs="+", help="tickers (space or comma separated); the model's order wins")
    p.add_argument("--poll-interval", type=_positive, help="seconds between polls at most (default 60)")
    p.add_argument(
        "--history-hours", type=_positive_int, help="indicator history (raised to 300 bars if smaller)"
    )
    p.add_argument("--config", type=Path, help="daemon TOML (default config/daemon.toml when present)")
    p.add_argument("--heartbeat-file", type=Path, help="default <paths.state>/heartbeat.json")
    p.add_argument("--broker-url", help="trading API base URL (data too for the emulator)")
    p.add_argument("--data-url", help="market-data API base URL")
    p.add_argument("--broker", choices=["emulator", "alpaca-paper"], help="broker kind (default from config)")
    p.add_argument("--state-dir", type=Path, help="state folder (journal, heartbeat)")
    p.add_argument(
        "--journal", type=Path, help="journal SQLite file (default <state>/journal/<model>.sqlite)"
    )
    p.add_argument("--max-cycles", type=_positive_int, help="stop after N processed bars (tests, demos)")
    p.add_argument(
        "--max-clock-skew",
        type=float,
        help="refuse to trade beyond this local-vs-broker skew in seconds (default 30 for "
        "alpaca-paper; off for the emulator, whose clock is simulated)",
    )
    p.add_argument("--grace", type=float, help="seconds after a bar close before it counts as complete")
    p.add_argument("--fill-timeout", type=_positive, help="bounded wait for fills in seconds (default 30)")
    p.add_argument(
        "--exchange-ready-file",
        type=Path,
        help="wait for this file (written by the embedded emulator once it serves) before the first "
        "broker request; the model is loaded and checked meanwhile (set by `run`)",
    )
    p.add_argument(
        "--exchange-wait", type=_positive, default=120.0, help="seconds to wait for --exchange-ready-file"
    )
    p.add_argument("--log-level", default=None, choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    p.set_defaults(handler=_run_worker)


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def _split_tickers(values: list[str] | None) -> tuple[str, ...] | None:
    if not values:
        return None
    out = [t.strip().upper() for v in values for t in v.split(",") if t.strip()]
    return tuple(out) or None


def _run_worker(args: argparse.Namespace) -> int:
    from cappuccino_daemon.config import DEFAULT_CONFIG, load_settings
    from cappuccino_daemon.errors import ConfigError
    from cappuccino_daemon.logsetup import configure_logging
    from cappuccino_daemon.worker.build import WorkerOptions, build_from_options

    config_path = args.config or (DEFAULT_CONFIG if DEFAULT_CONFIG.is_file() else None)
    settings = load_settings(config_path, require_model_dir=False) if config_path else None
    configure_logging(
        level=args.log_level or (settings.logging.level if settings else "INFO"),
        json=settings.logging.json_output if settings else None,
        log_file=settings.paths.logs / "worker.log" if settings and settings.logging.file else None,
    )
    model_dir = args.model_dir or (settings.model.dir if settings else None)
    if model_dir is None:
        raise ConfigError(
            "No model: pass --model-dir DIR (a trial folder with actor.pth) or set [model] dir "
            "in config/daemon.toml."
        )
    model_dir = Path(model_dir).resolve()
    if not model_dir.is_dir():
        raise ConfigError(
            f"Model folder {model_dir} does not exist; pass --model-dir with a trial folder "
            "containing actor.pth."
        )
    tickers = _split_tickers(args.tickers) or (
        tuple(settings.model.tickers) if settings and settings.model.tickers else None
    )
    kind = args.broker or (settings.broker.kind if settings else "emulator")
    worker = settings.worker if settings else None
    state_dir = args.state_dir or (settings.paths.state if settings else Path("state"))
    skew = args.max_clock_skew
    if skew is None and kind == "alpaca-paper":
        skew = worker.max_clock_skew_s if worker else 30.0
    opts = WorkerOptions(
        model_dir=model_dir,
        tickers=tickers,
        state_dir=Path(state_dir).resolve(),
        broker_kind=kind,
        broker_url=args.broker_url or (settings.broker.url if settings else None),
        data_url=args.data_url or (settings.broker.data_url if settings else None),
        poll_interval_s=args.poll_interval or (worker.poll_interval_s if worker else 60.0),
        history_hours=args.history_hours or (worker.history_hours if worker else 500),
        grace_s=args.grace if args.grace is not None else (worker.bar_close_grace_s if worker else 5.0),
        max_clock_skew_s=skew if skew and skew > 0 else None,
        http_timeout_s=worker.http_timeout_s if worker else 10.0,
        heartbeat_file=args.heartbeat_file,
        journal_file=args.journal,
        max_cycles=args.max_cycles,
        fill_timeout_s=args.fill_timeout or (worker.fill_timeout_s if worker else 30.0),
        gap_wait_s=worker.gap_wait_s if worker else 300.0,
        exchange_ready_file=args.exchange_ready_file,
        exchange_wait_s=args.exchange_wait,
    )
    loop = build_from_options(opts)
    from cappuccino_daemon.worker.metrics import WorkerMetrics

    loop.metrics = WorkerMetrics.start(settings)
    loop.install_signal_handlers()
    return loop.run()
