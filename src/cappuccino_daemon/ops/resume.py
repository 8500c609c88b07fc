"""``cappuccino-paper resume-model NAME``: the one way a risk halt ends (journaled, with an optional note).

The worker keeps running while this writes to the model's journal (SQLite WAL lets a second writer in);
it reads the halt before every decision, so the model buys again from its next bar.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "resume-model",
        help="clear a model's risk halt (journaled)",
        description="A breached risk limit halts a model until this command: it journals the resume (with "
        "--note), restarts the drawdown and daily-loss marks from the next decision, and the running "
        "worker lets the model buy again from its next bar. A model that is not halted is left alone.",
    )
    p.add_argument("name", help="the model's name ([[models]] name or [model] folder) or its model id")
    p.add_argument("--config", type=Path, help="daemon TOML (default config/daemon.toml)")
    p.add_argument("--state-dir", type=Path, help="state directory (default: the config's paths.state)")
    p.add_argument("--note", default="", help="why, for the journal (e.g. who checked what)")
    p.set_defaults(handler=_run_resume)


def _run_resume(args: argparse.Namespace) -> int:
    from cappuccino_daemon.config import DEFAULT_CONFIG, load_settings
    from cappuccino_daemon.errors import ConfigError
    from cappuccino_daemon.journal.halts import resume
    from cappuccino_daemon.journal.store import Journal
    from cappuccino_daemon.ops.status import find_journal

    settings = load_settings(args.config or DEFAULT_CONFIG, require_model_dir=False)
    state = Path(args.state_dir or settings.paths.state)
    wanted = args.name.casefold()
    entry, path, note = None, None, ""
    for candidate in settings.models_list:  # its name, or its model id (the journal's, in logs and alerts)
        found, why = find_journal(state, candidate.dir)
        if wanted in (candidate.name.casefold(), found.stem.casefold() if found else ""):
            entry, path, note = candidate, found, why
            break
    if entry is None:
        raise ConfigError(
            f"{settings.source_file}: no model named {args.name!r}; the configured models are "
            f"{', '.join(e.name for e in settings.models_list)}. Pass one of those names or its model id "
            "(`cappuccino-paper status` lists them with their halts)."
        )
    if path is None or note != "journal of the configured model":
        raise ConfigError(
            f"{state}: model {entry.name!r} has no journal there yet, so it cannot be halted. Check "
            "--state-dir / [paths] state (the worker writes <state>/journal/)."
        )
    with Journal(path) as journal:
        halt = resume(journal, args.note)
    if halt is None:
        print(f"resume-model: {entry.name} is not halted; nothing written")
        return 0
    print(
        f"resume-model: {entry.name} resumed (halted since bar {halt.get('bar')}: {halt.get('message')}); "
        "it buys again from its next decision. Journaled in "
        f"{path}."
    )
    return 0
