"""``cappuccino-paper demo``: train the demo model (a real, tiny Optuna + PPO run). Imports stay light."""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="train the demo model: a short real PPO study on the synthetic market (not a strategy)",
        description=(
            "Run a small, genuine Optuna study whose trials train PPO actors on the emulator's synthetic "
            "market, writing the same artifacts a Cappuccino training run writes: DIR/databases/"
            "optuna_cappuccino.db (study 'cappuccino_demo'), DIR/train_results/cwd_tests/trial_<n>_1h/ "
            "(actor.pth, critic.pth, cappuccino_manifest.json) and DIR/best_model, a symlink to the best "
            "trial folder. The result is a demo model, not a strategy. Re-running adds trials to the study."
        ),
    )
    p.add_argument("--dir", type=Path, default=Path("demo"), help="output folder (default: ./demo)")
    p.add_argument("--trials", type=_positive_int, default=3, help="number of trials (default: 3)")
    p.add_argument(
        "--seconds",
        type=_positive_float,
        default=60.0,
        help="wall-time budget for the whole run (default: 60)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed for the sampler and the training (default: 0)")
    p.add_argument(
        "--max-updates",
        type=_positive_int,
        default=None,
        help="cap PPO updates per trial; when the cap, not the clock, ends training the run is reproducible",
    )
    p.add_argument("--log-level", type=_log_level, default="INFO", help="log level (default: INFO)")
    p.set_defaults(handler=_run_demo)


def _log_level(text: str) -> str:
    level = text.strip().upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a log level; use DEBUG, INFO, WARNING or ERROR")
    return level


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def _run_demo(args: argparse.Namespace) -> int:
    started = time.monotonic()
    from cappuccino_daemon.errors import ConfigError
    from cappuccino_daemon.logsetup import configure_logging

    configure_logging(level=str(args.log_level).upper())
    out_dir: Path = args.dir
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(
            f"--dir {out_dir} exists and is not a folder. Fix: pass another --dir, e.g. --dir demo."
        )
    from cappuccino_daemon.demo.layout import BEST_LINK, DB_RELPATH, TRIALS_RELDIR

    try:  # fail before training, not after: every folder the study writes must be creatable
        for folder in (out_dir / DB_RELPATH.parent, out_dir / TRIALS_RELDIR):
            folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"--dir {out_dir}: cannot create the demo folders there ({exc.strerror or exc}: "
            f"{exc.filename or out_dir}). Fix: pass a writable --dir, e.g. --dir demo."
        ) from None

    link = out_dir / BEST_LINK
    if link.exists() and not link.is_symlink():
        raise ConfigError(
            f"{link} exists and is not a symlink, so the demo cannot repoint it at the best trial. Fix: "
            f"move it away (`mv {link} {link}.old`) and re-run `cappuccino-paper demo --dir {out_dir}`."
        )
    from cappuccino_daemon.demo.study import LABEL, DemoOptions, run_demo

    opts = DemoOptions(out_dir=out_dir, trials=args.trials, seconds=args.seconds, seed=args.seed)
    if args.max_updates is not None:
        opts = DemoOptions(**{**opts.__dict__, "max_updates": args.max_updates})
    result = run_demo(opts, started=started)
    print(f"Demo study '{result.study_name}' in {result.db_path} ({LABEL}).")
    for o in result.outcomes:
        print(
            f"  trial {o.number}: value {o.value:+.3f}, {o.report.updates} PPO updates, "
            f"{o.report.env_steps} env steps in {o.report.train_seconds:.1f}s -> {o.folder}"
        )
    if result.best_link is None:
        print("No trial completed, so there is no best model yet.")
        return 1
    print(
        f"Best: trial {result.best_number} (value {result.best_value:+.3f}); {result.best_link} points at it."
    )
    print(f'Total {result.seconds:.1f}s. Serve it with: [model] dir = "{result.best_link}"')
    return 0
