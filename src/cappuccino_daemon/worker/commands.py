"""``cappuccino-paper worker``: trade one model on the emulator or Alpaca paper. Imports nothing heavy."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from cappuccino_daemon.argtypes import setting

if TYPE_CHECKING:
    from cappuccino_daemon.config import DaemonSettings

# Each flag overrides one setting (same rules as the TOML key, checked by argparse: exit 2 naming it).
OVERRIDES: dict[str, tuple[str, str]] = {
    "model_dir": ("model", "dir"),
    "tickers": ("model", "tickers"),
    "poll_interval": ("worker", "poll_interval_s"),
    "history_hours": ("worker", "history_hours"),
    "heartbeat_file": ("worker", "heartbeat_file"),
    "broker_url": ("broker", "url"),
    "data_url": ("broker", "data_url"),
    "broker": ("broker", "kind"),
    "state_dir": ("paths", "state"),
    "grace": ("worker", "bar_close_grace_s"),
    "fill_timeout": ("worker", "fill_timeout_s"),
    "exchange_ready_file": ("worker", "exchange_ready_file"),
    "log_level": ("logging", "level"),
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "worker",
        help="run the trading worker for the configured models (normally started by `run`)",
        description="Trade the configured model(s) bar by bar: reconcile, decide on each completed bar, "
        "send orders idempotently, journal everything. Settings come from --config (else the defaults); "
        "each flag overrides one setting. Exit 78 on configuration/credential problems.",
    )
    p.add_argument("--config", type=Path, help="daemon TOML (default config/daemon.toml when present)")
    _add_setting_flags(p)
    _add_run_flags(p)
    p.set_defaults(handler=_run_worker)


def _add_setting_flags(p: argparse.ArgumentParser) -> None:
    """Flags that override one setting each (see ``OVERRIDES``)."""
    w = "WorkerSection"
    p.add_argument("--model-dir", type=Path, help="trial folder with actor.pth (default: [model] dir)")
    p.add_argument("--tickers", nargs="+", help="tickers (space or comma separated); the model's order wins")
    p.add_argument(
        "--poll-interval",
        type=setting(w, "poll_interval_s"),
        help="seconds between polls at most (default [worker] poll_interval_s)",
    )
    p.add_argument(
        "--history-hours",
        type=setting(w, "history_hours"),
        help="indicator history (raised to 300 bars if smaller)",
    )
    p.add_argument("--heartbeat-file", type=Path, help="default <paths.state>/heartbeat.json")
    p.add_argument("--broker-url", help="trading API base URL (data too for the emulator)")
    p.add_argument("--data-url", help="market-data API base URL")
    p.add_argument(
        "--broker", type=setting("BrokerSection", "kind"), help="emulator or alpaca-paper ([broker] kind)"
    )
    p.add_argument("--state-dir", type=Path, help="state folder (journal, heartbeat)")
    p.add_argument(
        "--grace",
        type=setting(w, "bar_close_grace_s"),
        help="seconds after a bar close before it counts as complete ([worker] bar_close_grace_s)",
    )
    p.add_argument(
        "--fill-timeout",
        type=setting(w, "fill_timeout_s"),
        help="bounded wait for fills in seconds (default [worker] fill_timeout_s)",
    )
    p.add_argument(
        "--exchange-ready-file",
        type=Path,
        help="wait for this file (written by the embedded emulator once it serves) before the first "
        "broker request; the model is loaded and checked meanwhile (`run` sets it through "
        "CAPPUCCINO_WORKER__EXCHANGE_READY_FILE)",
    )
    p.add_argument("--log-level", default=None, choices=["DEBUG", "INFO", "WARNING", "ERROR"])


def _add_run_flags(p: argparse.ArgumentParser) -> None:
    """Flags of this run only, with no setting behind them."""
    p.add_argument(
        "--journal", type=Path, help="journal SQLite file (default <state>/journal/<model>.sqlite)"
    )
    p.add_argument("--max-cycles", type=_positive_int, help="stop after N processed bars (tests, demos)")
    p.add_argument(
        "--max-clock-skew",
        type=float,
        help="refuse to trade beyond this local-vs-broker skew in seconds (default [worker] "
        "max_clock_skew_s for alpaca-paper; off for the emulator, whose clock is simulated; <= 0: off)",
    )
    p.add_argument(
        "--exchange-wait",
        type=_positive,
        help="seconds to wait for the ready file (default twice [supervisor] emulator_ready_timeout_s)",
    )


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


def _split_tickers(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    out = [t.strip().upper() for v in values for t in v.split(",") if t.strip()]
    return out or None


def worker_settings(args: argparse.Namespace) -> DaemonSettings:
    """The settings this worker runs with: --config (or the defaults) with the flags applied on top."""
    from cappuccino_daemon.config import DEFAULT_CONFIG, apply_overrides, load_settings, settings_without_file
    from cappuccino_daemon.errors import ConfigError

    config_path = args.config or (DEFAULT_CONFIG if DEFAULT_CONFIG.is_file() else None)
    if config_path is None and args.model_dir is None:
        raise ConfigError(
            "No model: pass --model-dir DIR (a trial folder with actor.pth) or set [model] dir "
            "in config/daemon.toml."
        )
    settings = (
        load_settings(config_path, require_model_dir=False)
        if config_path
        else settings_without_file(args.model_dir)
    )
    values = {**vars(args), "tickers": _split_tickers(args.tickers)}
    flags = {key: ("--" + name.replace("_", "-"), values[name]) for name, key in OVERRIDES.items()}
    settings = apply_overrides(settings, flags)
    for entry in settings.models_list:  # a tournament: every model of it
        model_dir = Path(entry.dir).resolve()
        if not model_dir.is_dir():
            raise ConfigError(
                f"Model folder {model_dir} (model {entry.name!r}) does not exist; pass --model-dir with a "
                "trial folder containing actor.pth, or fix its dir in the configuration."
            )
    return settings


def _run_worker(args: argparse.Namespace) -> int:
    from cappuccino_daemon.logsetup import configure_logging
    from cappuccino_daemon.worker.build import build_from_options, freeze_startup_heap, worker_options

    settings = worker_settings(args)
    configure_logging(
        level=settings.logging.level,
        json=settings.logging.json_output,
        log_file=settings.paths.logs / "worker.log" if settings.logging.file else None,
    )
    opts = worker_options(
        settings,
        journal_file=args.journal,
        max_cycles=args.max_cycles,
        max_clock_skew_flag=args.max_clock_skew,
        exchange_wait_s=args.exchange_wait,
    )
    loop = build_from_options(opts)
    from cappuccino_daemon.worker.metrics import WorkerMetrics

    loop.metrics = WorkerMetrics.start(settings)
    from cappuccino_daemon.alerts.sender import sender_for

    loop.attach_alerts(sender_for(settings).start(), settings.notify.daily_summary)
    loop.install_signal_handlers()
    freeze_startup_heap()
    return loop.run()
