"""CLI: ``inspect``, ``validate``, ``trials``, ``trial-metadata``. Nothing heavy at import time."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any


def _tickers(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _positive_usd(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive finite amount of USD, got {text}")
    return value


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg,unused-ignore]
    p = sub.add_parser("inspect", help="Describe a trial folder (architecture, tickers, lookback, norms).")
    p.add_argument("model_dir", type=Path, metavar="MODEL_DIR")
    p.add_argument("--json", action="store_true", help="Machine-readable output.")
    p.add_argument("--generate-command", action="store_true", help="Print worker command + TOML.")
    p.add_argument("--tickers", help="Comma-separated tickers (needed for legacy non-7-ticker models).")
    p.set_defaults(handler=_run_inspect)

    p = sub.add_parser("validate", help="Load settings, model spec and policy; run one forward pass.")
    p.add_argument("--config", type=Path, default=None, help="config/daemon.toml (default).")
    p.add_argument("--model-dir", type=Path, default=None, help="Override [model] dir.")
    p.add_argument("--tickers", help="Override [model] tickers (comma-separated).")
    p.set_defaults(handler=_run_validate)

    _register_trials(sub)

    p = sub.add_parser("trial-metadata", help="Write cappuccino_manifest.json (+ best_trial).")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--trial-id", type=int, help="Global trial_id OR per-study number (ambiguity is refused).")
    g.add_argument("--number", type=int, help="Per-study trial number (with --study).")
    g.add_argument("--from-best-trial", action="store_true", help="Convert the folder's legacy best_trial.")
    p.add_argument("--study", default=None)
    p.add_argument("--output-dir", type=Path, required=True, help="The trial folder (holding actor.pth).")
    p.add_argument("--db", type=Path, default=None, help="Optuna SQLite file.")
    p.add_argument("--tickers", help="State-order tickers, comma-separated (required unless 7 tickers).")
    p.add_argument("--profile", default=None, help="Env profile: finrl-crypto | cappuccino-nov2025.")
    p.add_argument("--capital", type=float, default=None, help="Override the profile's initial capital.")
    p.add_argument("--no-pickle", action="store_true", help="Do not write the legacy best_trial pickle.")
    p.add_argument(
        "--force",
        action="store_true",
        help="Write anyway (noted in the manifest): params that disagree with actor.pth, a missing or "
        "non-PPO actor.pth, --tickers over the trial's ticker_list.",
    )
    p.set_defaults(handler=_run_trial_metadata)


def _register_trials(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg,unused-ignore]
    p = sub.add_parser("trials", help="Best COMPLETE trials of an Optuna DB, categoricals decoded.")
    p.add_argument("--db", type=Path, required=True, help="Optuna SQLite file.")
    p.add_argument("--study", default=None, help="Only this study.")
    p.add_argument("--top", type=_positive_int, default=10, help="Trials per study (default 10).")
    p.add_argument("--json", action="store_true")
    p.add_argument(
        "--results-dir",
        type=Path,
        default=None,
        help="train_results folder (default: ../train_results of DB).",
    )
    p.add_argument(
        "--write-config",
        type=Path,
        default=None,
        metavar="FILE",
        help="Write a tournament config ([[models]] per trial) for the top-N trials that can trade.",
    )
    p.add_argument(
        "--capital-each",
        type=_positive_usd,
        default=None,
        metavar="USD",
        help="With --write-config: every model's capital (default: its profile's initial capital).",
    )
    p.add_argument("--force", action="store_true", help="With --write-config: replace an existing FILE.")
    p.set_defaults(handler=_run_trials)


def _quiet_logging(level: str = "ERROR") -> None:
    from cappuccino_daemon.logsetup import configure_logging

    configure_logging(level=level)


def _run_inspect(args: argparse.Namespace) -> int:
    _quiet_logging()
    from cappuccino_daemon.model.inspect import format_report, inspect_model, toml_snippet, worker_command

    spec, report = inspect_model(args.model_dir, _tickers(args.tickers))
    if args.generate_command:
        report["worker_command"] = worker_command(spec)
        report["toml_snippet"] = toml_snippet(spec)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(format_report(report))
    if args.generate_command and report["worker_command"] is None:
        print("\nNo worker command: pin the tickers first (see the warning above).")
    elif args.generate_command:
        print("\nRun the worker with:\n  " + report["worker_command"])
        print("\nor put this in config/daemon.toml:\n" + report["toml_snippet"])
    return 0


def _run_validate(args: argparse.Namespace) -> int:
    _quiet_logging("WARNING")
    from cappuccino_daemon.config import DEFAULT_CONFIG, ModelEntry, load_settings
    from cappuccino_daemon.model.check import check_models

    tickers = _tickers(args.tickers)
    if args.model_dir is not None and args.config is None and not DEFAULT_CONFIG.is_file():
        entries: tuple[ModelEntry, ...] = (
            ModelEntry(args.model_dir.name, args.model_dir, tickers=tuple(tickers) if tickers else None),
        )
    else:
        settings = load_settings(args.config, require_model_dir=args.model_dir is None)
        entries = settings.models_list
        if args.model_dir is not None or tickers:
            one = settings.only_model() if args.model_dir is None else entries[0]
            entries = (
                ModelEntry(
                    args.model_dir.name if args.model_dir is not None else one.name,
                    args.model_dir or one.dir,
                    capital=one.capital if args.model_dir is None else None,
                    tickers=tuple(tickers) if tickers else one.tickers,
                    profile=one.profile if args.model_dir is None else None,
                ),
            )
    for checked in check_models(entries):
        entry, spec = checked.entry, checked.spec
        label = f"{entry.name}: " if len(entries) > 1 else ""
        print(
            f"OK {label}{spec.model_id}: {spec.algorithm} {spec.net_dim}/{spec.state_dim}/{spec.action_dim}, "
            f"lookback {spec.lookback}, {spec.timeframe}, tickers {','.join(spec.tickers)}, "
            f"params from {spec.source.origin}, capital {spec.profile.initial_capital:g}, "
            f"{len(spec.warnings)} warning(s)"
        )
    return 0


def _run_trials(args: argparse.Namespace) -> int:
    _quiet_logging()
    from cappuccino_daemon.model.optuna_db import best_trials, open_db, trial_folder

    results = args.results_dir or args.db.resolve().parent.parent / "train_results"
    if args.write_config is not None:
        return _write_config(args, results)
    if args.capital_each is not None or args.force:
        print("cappuccino-paper trials: --capital-each and --force need --write-config FILE", file=sys.stderr)
        return 2
    with open_db(args.db) as conn:
        trials = best_trials(conn, study=args.study, top=args.top)
    key_params = (
        "net_dimension", "lookback", "batch_size", "learning_rate", "norm_action", "use_lr_schedule",
    )  # fmt: skip
    rows: list[dict[str, Any]] = []
    for t in trials:
        folder = trial_folder(results, t)
        rows.append(
            {
                "study": t.study,
                "number": t.number,
                "trial_id": t.trial_id,
                "value": t.value,
                "direction": t.direction,
                "params": t.params,
                "folder": str(folder),
                "folder_exists": (folder / "actor.pth").is_file(),
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
        return 0
    if not rows:
        print(f"No COMPLETE trials in {args.db}.")
        return 0
    head = f"{'study':<36} {'number':>6} {'trial_id':>8} {'value':>10}  " + "  ".join(key_params) + "  folder"
    print(head)
    for r in rows:
        kp = "  ".join(f"{_fmt(r['params'].get(k)):>{len(k)}}" for k in key_params)
        print(
            f"{r['study']:<36} {r['number']:>6} {r['trial_id']:>8} {r['value']:>10.4f}  {kp}  "
            f"{'yes' if r['folder_exists'] else 'no'}"
        )
    note = f"(folders looked up under {results}/cwd_tests; 'yes' = trial_<number>_<tf>/actor.pth exists)"
    print(note, file=sys.stderr)
    return 0


def _write_config(args: argparse.Namespace, results: Path) -> int:
    from cappuccino_daemon.model.tournament_config import select_models, write_tournament_config

    models, notes = select_models(args.db, args.study, args.top, results, args.capital_each)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    write_tournament_config(args.write_config, models, force=args.force)
    short = f" (asked for {args.top}; fewer trials of the study can trade)" if len(models) < args.top else ""
    total = sum(m.capital for m in models)
    print(f"Wrote {args.write_config}: {len(models)} models{short}, capital {total:g} USD")
    for m in models:
        pinned = "manifest written now" if m.pinned_now else "manifest kept"
        print(
            f"  t{m.trial.number}: value {_fmt(m.trial.value)}, capital {m.capital:g}, {m.folder} ({pinned})"
        )
    print(f"Check it with `cappuccino-paper validate --config {args.write_config}`.")
    return 0


def _run_trial_metadata(args: argparse.Namespace) -> int:
    _quiet_logging("WARNING")
    from cappuccino_daemon.model.trial_metadata import write_trial_metadata

    path, manifest = write_trial_metadata(
        args.output_dir,
        db=args.db,
        trial_id=args.trial_id,
        study=args.study,
        number=args.number,
        from_best_trial=args.from_best_trial,
        tickers=_tickers(args.tickers),
        profile=args.profile,
        capital=args.capital,
        write_pickle=not args.no_pickle,
        force=args.force,
    )
    src = manifest.source
    print(
        f"Wrote {path} for study {src.study} number {src.number} (trial_id {src.trial_id}); tickers "
        f"{','.join(manifest.tickers)}; lookback {manifest.lookback}; "
        + (
            f"pinned to actor.pth sha256 {sha[:12]}"
            if (sha := manifest.actor_sha256)
            else "NOT pinned (no actor.pth)"
        )
    )
    for note in manifest.notes:
        print(f"  note: {note}")
    return 0
